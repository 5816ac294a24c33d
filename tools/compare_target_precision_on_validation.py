"""The EmbedDistill students' training-target precision (``retrieval.target_precision``) compared
on the validation queries.

Both students of the retrieval preset (``embeddistill``, ``embeddistill_symmetric``) are trained
twice from a finished retrieval stage's dual encoder and training examples, once with the dual
encoder's embeddings of their training queries and extra matching queries computed in float32 and
once in bfloat16 autocast, everything else (seed, data, steps) the same. Each student searches the
catalogue exactly (top 100) for the validation queries with a relevant product; recall@100 and
NDCG@10 of each, and bfloat16 minus float32 with a 95% interval (paired bootstrap over the
validation queries). No test label is read: the extra matching queries leave out every test
query's text (the stage leaves out those of the judged test queries), so the set can differ from
the stage's by a few generated queries.

    python tools/compare_target_precision_on_validation.py --run-dir RUN --out SCRATCH_DIR
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd

from compare_encode_precision_on_validation import difference_row, validation_setup  # tools/, beside this file
from graphrel.intervals import PairedBootstrap
from graphrel.pipeline.report import markdown_table
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.measures.evaluation import per_query_metrics
from graphrel.retrieval.search.catalogue import TEST_SPLITS
from graphrel.retrieval.serving.retriever import Retriever
from graphrel.retrieval.student_builders import build_students

DEPTH = 100
PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    args, stage, catalogue, pairs, val = validation_setup(__doc__.splitlines()[0], "scratch directory for the students")
    config = RetrievalConfig()
    test_texts = list(pairs.loc[pairs["split"].isin(TEST_SPLITS), "query"].astype(str).unique())
    examples = pd.read_parquet(stage / "training_examples.parquet")
    dual_encoder = stage / "retrievers" / "dual_encoder"
    teacher_key = json.loads((dual_encoder / "manifest.json").read_text())["build_key"]
    weights = {"embeddistill": (config.label_weight, config.score_weight, config.embedding_weight)}
    ids = sorted(map(str, val.qrels))
    per, seconds = {}, {}
    for precision in PRECISIONS:
        out = args.out / precision
        (out / "retrievers").mkdir(parents=True, exist_ok=True)
        link = out / "retrievers" / "dual_encoder"
        if not link.exists():
            link.symlink_to(dual_encoder.resolve(), target_is_directory=True)
        start = time.perf_counter()
        names = build_students(weights, examples, pairs, catalogue, dataclasses.replace(config, target_precision=precision),
                               out, teacher_key, test_queries=test_texts)
        seconds[precision] = time.perf_counter() - start
        for name in names:
            retriever = Retriever.load(out / "retrievers" / name)
            run = retriever.search(list(val.queries), DEPTH, query_ids=list(val.query_ids))
            per[precision, name] = per_query_metrics(run, val.qrels).reindex(ids)
    boot = PairedBootstrap(np.array(ids), np.zeros(len(ids)), resamples=1000, seed=0)
    rows = []
    for name in sorted({name for _, name in per}):
        row = difference_row({"student": name}, {p: per[p, name] for p in PRECISIONS}, boot)
        rows.append(row)
    print(f"{len(ids):,} validation queries with a relevant product; build seconds (targets + both students) "
          f"{ {k: round(v) for k, v in seconds.items()} } (a cached target encoding is not timed again)\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
