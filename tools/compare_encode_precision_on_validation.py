"""The retrieval stage's bulk encoding precision (``retrieval.encode_precision``) compared on the
validation queries: the catalogue encoded by the zero-shot MiniLM in float32 and in bfloat16
autocast, searched exactly (top 100) by the two dense retrievers that read those product
embeddings, ``minilm_zero_shot`` and ``dual_encoder`` (its product side is the zero-shot one);
recall@100 and NDCG@10 of each, and bfloat16 minus float32 with a 95% interval (paired bootstrap
over the validation queries). No test label is read.

    python tools/compare_encode_precision_on_validation.py --run-dir RUN --out SCRATCH_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from graphrel.intervals import PairedBootstrap
from graphrel.pipeline.report import markdown_table
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.measures.evaluation import per_query_metrics, run_frame
from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries, normalised_threshold
from graphrel.retrieval.search.topk import top_k
from graphrel.run import load_run_pairs

DEPTH = 100


def validation_setup(description: str, out_help: str):
    """Parse ``--run-dir`` / ``--out``; return ``(args, stage directory, catalogue, pairs without
    test labels, the validation queries with a relevant product)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run with a finished retrieval stage")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    args = parser.parse_args()
    stage = args.run_dir / "retrieval"
    catalogue = Catalogue.load(stage)
    pairs = load_run_pairs(args.run_dir)  # validation labels only
    scale = json.loads((args.run_dir / "label_scale.json").read_text())
    val = judged_test_queries(pairs, threshold=normalised_threshold(RetrievalConfig().relevance_threshold, scale),
                              splits=("val",))
    return args, stage, catalogue, pairs, val


def difference_row(label: dict, per: dict, boot: PairedBootstrap) -> dict:
    """``label`` plus, for recall@100 and NDCG@10, the float32 and bfloat16 means and bf16 - fp32
    with its 95% interval; ``per``: precision -> per-query metrics frame (same query order)."""
    row = dict(label)
    for key in ("recall@100", "ndcg@10"):
        fast, exact = per["bfloat16"][key].to_numpy(), per["float32"][key].to_numpy()
        low, high = boot.mean_interval(fast, exact)
        row[f"{key} float32"] = f"{exact.mean():.4f}"
        row[f"{key} bfloat16"] = f"{fast.mean():.4f}"
        row[f"{key} bf16 - fp32 [95%]"] = f"{fast.mean() - exact.mean():+.4f} [{low:+.4f}, {high:+.4f}]"
    return row


def main() -> None:
    args, stage, catalogue, pairs, val = validation_setup(__doc__.splitlines()[0], "scratch directory for the two encodings")
    args.out.mkdir(parents=True, exist_ok=True)
    zero = load_encoder(RetrievalConfig().backbone)
    products, seconds = {}, {}
    for precision in ("float32", "bfloat16"):
        path = args.out / f"catalogue_{precision}.npy"
        if path.is_file():
            products[precision] = np.load(path)
            continue
        start = time.perf_counter()
        products[precision] = encode(zero, catalogue.texts, batch_size=128, precision=precision)
        seconds[precision] = time.perf_counter() - start
        np.save(path, products[precision])
    cosine = (products["float32"] * products["bfloat16"]).sum(axis=1)
    ids = sorted(map(str, val.qrels))
    boot = PairedBootstrap(np.array(ids), np.zeros(len(ids)), resamples=1000, seed=0)
    rows = []
    for name, encoder in (("minilm_zero_shot", zero),
                          ("dual_encoder", load_encoder(stage / "retrievers" / "dual_encoder" / "query_encoder"))):
        queries = encode(encoder, list(val.queries), batch_size=128)  # queries: float32, as served
        per = {}
        for precision, vectors in products.items():
            indices, scores = top_k(queries @ vectors.T, DEPTH)
            run = run_frame(val.query_ids, catalogue.product_ids, indices, scores)
            per[precision] = per_query_metrics(run, val.qrels).reindex(ids)
        row = difference_row({"retriever": name}, per, boot)
        rows.append(row)
    print(f"{len(catalogue):,} products, {len(ids):,} validation queries with a relevant product; cosine of each "
          f"product's two embeddings: lowest {cosine.min():.5f}, mean {cosine.mean():.6f}; encoding seconds "
          f"{ {k: round(v) for k, v in seconds.items()} or '(cached)'}\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
