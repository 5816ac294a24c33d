"""Real-data test on a slice of Home Depot: BM25 and the shipped all-MiniLM-L6-v2 retrieve judged
relevant products far above chance, and ``graphrel retrieve`` serves the saved retriever."""

import numpy as np
import pandas as pd
import pytest

from graphrel.cli import main
from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.measures.evaluation import retrieval_metrics
from graphrel.retrieval.serving.retriever import Retriever, save_bm25_retriever, save_dense_retriever


@pytest.mark.real_data
def test_bm25_and_zero_shot_minilm_on_a_home_depot_slice(home_depot_path, tmp_path):
    from graphrel.data import load_home_depot

    frame = load_home_depot(home_depot_path).frame
    queries = np.random.default_rng(0).choice(np.sort(frame["query_id"].unique()), size=120, replace=False)
    pairs = frame[frame["query_id"].isin(queries)].assign(split="test")
    catalogue = Catalogue.from_pairs(pairs)
    judged = judged_test_queries(pairs, threshold=0.75)
    assert len(catalogue) > 300 and len(judged) > 60
    save_bm25_retriever(tmp_path / "bm25", catalogue=catalogue)
    encoder = load_encoder("minilm-l6")
    save_dense_retriever(tmp_path / "minilm", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="minilm")
    chance = 10 / len(catalogue)
    for name in ("bm25", "minilm"):
        run = Retriever.load(tmp_path / name).search(list(judged.queries), 100, query_ids=judged.query_ids)
        metrics = retrieval_metrics(run, judged.qrels)
        assert metrics["recall@10"] > 20 * chance and metrics["ndcg@10"] > 0.2, (name, metrics)
        assert metrics["recall@100"] >= metrics["recall@10"]
    pd.DataFrame({"query": list(judged.queries[:5])}).to_csv(tmp_path / "q.csv", index=False)
    assert main(["retrieve", "--model", str(tmp_path / "minilm"), "--queries", str(tmp_path / "q.csv"),
                 "--k", "10", "--output", str(tmp_path / "top.parquet")]) == 0
    top = pd.read_parquet(tmp_path / "top.parquet")
    assert len(top) == 50 and top.groupby("query_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
