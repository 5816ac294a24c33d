"""Which dense retriever the hybrid should fuse with BM25, chosen on the validation queries only
(``retrieval.hybrid_dense``): for each dense retriever of a finished retrieval stage, the fusion
chosen for it on the run's validation queries (the stage's grid and rule: recall@100, then
NDCG@10), its validation recall@100 / NDCG@10, and the difference from the dual encoder's hybrid
with a 95% interval (paired bootstrap over the validation queries). No test label is read.

    python tools/choose_hybrid_dense_on_validation.py --run-dir runs/home_depot
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from graphrel.intervals import PairedBootstrap
from graphrel.run import load_run_pairs
from graphrel.retrieval.search.catalogue import judged_test_queries, normalised_threshold
from graphrel.retrieval.serving.retriever import Retriever
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.serving.hybrid import DEPTH, choose_setting, fuse_setting
from graphrel.retrieval.measures.evaluation import per_query_metrics, retrieval_metrics

CANDIDATES = ("dual_encoder", "embeddistill", "embeddistill_symmetric")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run with a finished retrieval stage")
    args = parser.parse_args()
    run = args.run_dir
    root = run / "retrieval" / "retrievers"
    pairs = load_run_pairs(run)  # validation labels only: no test label is read
    scale = json.loads((run / "label_scale.json").read_text())
    threshold = normalised_threshold(RetrievalConfig().relevance_threshold, scale)
    val = judged_test_queries(pairs, threshold=threshold, splits=("val",))
    texts = list(val.queries)
    runs = {n: Retriever.load(root / n, threads=2).search(texts, DEPTH, query_ids=val.query_ids)
            for n in ("bm25", *CANDIDATES)}
    ids = sorted(map(str, val.qrels))
    boot = PairedBootstrap(np.array(ids), np.zeros(len(ids)), resamples=1000, seed=0)
    per, rows = {}, []
    for name in CANDIDATES:
        setting, _ = choose_setting(runs["bm25"], runs[name], val.qrels)
        fused = fuse_setting(runs["bm25"], runs[name], setting)
        per[name] = per_query_metrics(fused, val.qrels).reindex(ids)
        alone = retrieval_metrics(runs[name], val.qrels)
        rows.append((name, setting, alone["recall@100"], per[name]["recall@100"].mean(), per[name]["ndcg@10"].mean()))
    print(f"{len(ids)} validation queries")
    for name, setting, alone, r100, n10 in rows:
        line = (f"{name}: alone recall@100 {alone:.3f}; hybrid {setting['method']} {setting['norm']} "
                f"{setting['weight']}: recall@100 {r100:.3f}, ndcg@10 {n10:.3f}")
        if name != "dual_encoder":
            for k in ("recall@100", "ndcg@10"):
                lo, hi = boot.mean_interval(per[name][k].to_numpy(), per["dual_encoder"][k].to_numpy())
                difference = per[name][k].mean() - per["dual_encoder"][k].mean()
                line += f"; {k} - dual_encoder hybrid {difference:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(line)


if __name__ == "__main__":
    main()
