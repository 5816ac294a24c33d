import json

import numpy as np
import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.measures.evaluation import retrieval_metrics
from graphrel.retrieval.serving.hybrid import (FORMAT, HybridRetriever, choose_setting, fuse_setting, load_hybrid, read_config,
                                       save_hybrid, settings_grid)

from .conftest import toy_pairs


def scored_run(lists: dict) -> pd.DataFrame:
    """Run frame of ``{query: [(product, score), ...]}`` (best first)."""
    rows = [(q, r + 1, p, float(s)) for q, items in lists.items() for r, (p, s) in enumerate(items)]
    return pd.DataFrame(rows, columns=["query_id", "rank", "product_id", "score"])


def opposed_runs(queries, relevant_first_in: str):
    """BM25 and dense lists of the same five products in opposite orders; the relevant product
    ``R`` is first in ``relevant_first_in``'s list and last in the other's."""
    order = ["R", "x1", "x2", "x3", "x4"]
    dense_scores, bm25_scores = [0.9, 0.7, 0.5, 0.3, 0.1], [12.0, 9.0, 6.0, 3.0, 0.0]
    first, last = order, order[1:] + ["R"]
    dense_order, bm25_order = (first, last) if relevant_first_in == "dense" else (last, first)
    lexical = scored_run({q: [(f"{q}-{p}", s) for p, s in zip(bm25_order, bm25_scores)] for q in queries})
    dense = scored_run({q: [(f"{q}-{p}", s) for p, s in zip(dense_order, dense_scores)] for q in queries})
    return lexical, dense, {q: {f"{q}-R"} for q in queries}


def best_by_hand(lexical, dense, qrels) -> dict:
    """The grid point with the highest (recall@100, NDCG@10), first in grid order on a tie."""
    scored = []
    for setting in settings_grid():
        m = retrieval_metrics(fuse_setting(lexical, dense, setting, depth=1000), qrels)
        scored.append(((m["recall@100"], m["ndcg@10"]), setting))
    top = max(s for s, _ in scored)
    return next(setting for s, setting in scored if s == top)


def test_the_setting_is_the_validation_winner_even_where_the_test_queries_favour_another():
    # validation: the relevant product is the dense retriever's first and BM25's last (a high
    # dense weight wins); test: the other way round (a low dense weight wins)
    val = opposed_runs([f"v{i}" for i in range(4)], relevant_first_in="dense")
    test = opposed_runs([f"t{i}" for i in range(4)], relevant_first_in="bm25")
    setting, grid = choose_setting(*val)
    test_setting, _ = choose_setting(*test)
    assert setting == best_by_hand(*val) and test_setting == best_by_hand(*test)
    assert setting["method"] == "wsum" and setting["weight"] >= 0.6  # dense-heavy
    assert test_setting["method"] == "wsum" and test_setting["weight"] <= 0.4 and test_setting != setting
    point = next(p for p in grid if all(p[k] == setting[k] for k in setting))
    assert point["ndcg@10"] == pytest.approx(1.0) and len(grid) == 28
    on_test = retrieval_metrics(fuse_setting(*test[:2], setting), test[2])["ndcg@10"]
    assert on_test < retrieval_metrics(fuse_setting(*test[:2], test_setting), test[2])["ndcg@10"]
    assert grid[0]["method"] == "rrf" and grid[0]["ndcg@10"] < 1  # RRF puts x1 (ranks 2 and 1) above R (1 and 5)


def test_ties_go_to_ndcg_then_to_the_first_setting_of_the_grid():
    # every setting finds the relevant product (recall@100 ties at 1): NDCG@10 decides, and among
    # the settings with the best NDCG@10 the first of the grid (not RRF, which ranks it second)
    setting, grid = choose_setting(*opposed_runs(["q"], relevant_first_in="dense"))
    assert all(p["recall@100"] == 1.0 for p in grid)
    best = max(p["ndcg@10"] for p in grid)
    assert grid[0]["ndcg@10"] < best
    first_best = next(p for p in grid if p["ndcg@10"] == best)
    assert setting == {k: first_best[k] for k in setting}
    same = scored_run({"q": [("a", 1.0), ("b", 0.5)]})
    setting, grid = choose_setting(same, same, {"q": {"a"}})  # every setting: a first
    assert setting == settings_grid()[0] and all(p["ndcg@10"] == 1.0 for p in grid)


@pytest.mark.parametrize("setting", settings_grid(), ids=lambda s: f"{s['method']}-{s['norm']}-{s['weight']}")
def test_the_hybrid_of_two_identical_runs_is_that_run(setting):
    rng = np.random.default_rng(0)
    lists = {f"q{i}": [(f"p{j:02d}", s) for j, s in zip(rng.permutation(30), np.sort(rng.random(30))[::-1])]
             for i in range(3)}
    run = scored_run(lists)
    fused = fuse_setting(run, run, setting, depth=30)
    expected = run.sort_values(["query_id", "rank"]).reset_index(drop=True)
    assert fused[["query_id", "rank", "product_id"]].equals(expected[["query_id", "rank", "product_id"]])


@pytest.fixture
def two_retrievers(tmp_path, tiny_encoder_dir):
    """``retrievers/bm25`` and ``retrievers/dense`` over the toy catalogue."""
    from graphrel.retrieval.search.catalogue import Catalogue
    from graphrel.retrieval.encoding.encoders import encode, load_encoder
    from graphrel.retrieval.serving.retriever import Retriever, save_bm25_retriever, save_dense_retriever

    catalogue, root = Catalogue.from_pairs(toy_pairs()), tmp_path / "retrievers"
    save_bm25_retriever(root / "bm25", catalogue=catalogue)
    encoder = load_encoder(tiny_encoder_dir)
    save_dense_retriever(root / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="dense")
    return root, [Retriever.load(root / n) for n in ("bm25", "dense")]


QUERIES = ["garden hose", "cordless drill", "door", "paint brush"]


def test_a_saved_hybrid_round_trips_and_serves_its_fusion_exactly(two_retrievers):
    from graphrel.retrieval.serving.retriever import Retriever

    root, inputs = two_retrievers
    setting = {"method": "wsum", "norm": "zmuv", "weight": 0.3, "rrf_k": None}
    written = save_hybrid(root / "hybrid", inputs=inputs, input_names=["bm25", "dense"], setting=setting,
                          grid=[{**setting, "recall@100": 0.5, "ndcg@10": 0.25}], build_key="k",
                          validation={"split": "val", "queries": 3, "figures": None, "inputs": None})
    config = read_config(root / "hybrid")
    assert config == json.loads(json.dumps(written)) and config["format"] == FORMAT == "graphrel-hybrid/1"
    assert config["inputs"] == ["bm25", "dense"] and config["weights"] == pytest.approx([0.7, 0.3])
    hybrid = Retriever.load(root / "hybrid")  # what graphrel retrieve --model DIR calls
    assert isinstance(hybrid, HybridRetriever) and hybrid.name == "hybrid"
    assert hybrid.manifest["parameters"] == inputs[1].manifest["parameters"]
    ids = ["a", "b", "c", "d"]
    runs = [r.search(QUERIES, 12, query_ids=list(range(4))) for r in inputs]  # 12 products: all of them
    expected = fuse_setting(*runs, setting, depth=5)
    expected["query_id"] = expected["query_id"].map(dict(zip(map(str, range(4)), ids)))
    served = hybrid.search(QUERIES, 5, query_ids=ids)
    assert served["query_id"].tolist() == [q for q in ids for _ in range(5)]
    order = served.set_index(["query_id", "rank"]).sort_index()
    assert order.equals(expected.set_index(["query_id", "rank"]).sort_index())
    rows, scores = hybrid.search_rows(QUERIES, 5)
    assert rows.shape == scores.shape == (4, 5)
    assert list(hybrid.catalogue.product_ids[rows[0]]) == served[served.query_id == "a"]["product_id"].tolist()
    rrf = {"method": "rrf", "norm": None, "weight": None, "rrf_k": 60}  # another setting serves another ranking
    save_hybrid(root / "other", inputs=inputs, input_names=["bm25", "dense"], setting=rrf, grid=[],
                validation={"split": "val", "queries": 0})
    again = load_hybrid(root / "other").search(QUERIES, 5, query_ids=list(range(4)))
    by_hand = fuse_setting(*runs, rrf, depth=5)
    assert again.drop(columns="query_id").equals(by_hand.drop(columns="query_id"))
    assert again["query_id"].tolist() == by_hand["query_id"].astype(int).tolist()
    assert not np.allclose(again["score"], served["score"])


def test_graphrel_retrieve_serves_the_saved_hybrid(two_retrievers, tmp_path):
    from graphrel.cli import main
    from graphrel.retrieval.serving.retriever import Retriever

    root, inputs = two_retrievers
    setting = {"method": "wsum", "norm": "min-max", "weight": 0.6, "rrf_k": None}
    save_hybrid(root / "hybrid", inputs=inputs, input_names=["bm25", "dense"], setting=setting, grid=[],
                validation={"split": "val", "queries": 0})
    pd.DataFrame({"query": QUERIES}).to_csv(tmp_path / "q.csv", index=False)
    assert main(["retrieve", "--model", str(root / "hybrid"), "--queries", str(tmp_path / "q.csv"), "--k", "4",
                 "--output", str(tmp_path / "top.parquet")]) == 0
    top = pd.read_parquet(tmp_path / "top.parquet")
    expected = Retriever.load(root / "hybrid").search(QUERIES, 4, query_ids=QUERIES)
    assert top[["query_id", "rank", "product_id"]].equals(expected[["query_id", "rank", "product_id"]])
    assert np.allclose(top["score"], expected["score"])


@pytest.mark.parametrize("change, message", [
    ({"format": "graphrel-hybrid/0"}, "unknown hybrid format"),
    ({"inputs": ["bm25"]}, "two retriever directory names"),
    ({"weight": 1.5}, "weight in"),
    ({"norm": "max"}, "norm of"),
    ({"method": "combsum"}, "method must be"),
    ({"depth": 0}, "depth"),
    ({"inputs": ["bm25", "missing"]}, "input retriever is missing"),
    ({"inputs": ["bm25", "hybrid"]}, "a hybrid's input is a hybrid"),
])
def test_a_bad_hybrid_config_is_refused(two_retrievers, change, message):
    root, inputs = two_retrievers
    save_hybrid(root / "hybrid", inputs=inputs, input_names=["bm25", "dense"], grid=[],
                setting={"method": "wsum", "norm": "sum", "weight": 0.5, "rrf_k": None},
                validation={"split": "val", "queries": 0})
    config = json.loads((root / "hybrid" / "hybrid.json").read_text())
    (root / "hybrid" / "hybrid.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(GraphrelInputError, match=message):
        load_hybrid(root / "hybrid")
