import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.measures.evaluation import retrieval_metrics
from graphrel.retrieval.serving.fusion import fuse_runs


def run(rankings: dict) -> pd.DataFrame:
    rows = [(q, r + 1, p, 10.0 - r) for q, ps in rankings.items() for r, p in enumerate(ps)]
    return pd.DataFrame(rows, columns=["query_id", "rank", "product_id", "score"])


def test_rrf_equals_the_hand_computed_fusion_of_two_runs():
    a = run({"q": ["p1", "p2", "p3"]})
    b = run({"q": ["p3", "p4"]})
    fused = fuse_runs([a, b], method="rrf", depth=3)
    # p3: 1/63 + 1/61; p1: 1/61; p2 and p4: 1/62 (tie -> product id); cut at 3
    assert list(fused["product_id"]) == ["p3", "p1", "p2"]
    assert fused["score"].tolist() == pytest.approx([1 / 63 + 1 / 61, 1 / 61, 1 / 62])
    assert fused["rank"].tolist() == [1, 2, 3]


def test_combsum_adds_min_max_normalised_scores():
    a = pd.DataFrame({"query_id": "q", "rank": [1, 2, 3], "product_id": ["p1", "p2", "p3"], "score": [0.9, 0.5, 0.1]})
    b = pd.DataFrame({"query_id": "q", "rank": [1, 2], "product_id": ["p3", "p2"], "score": [4.0, 2.0]})
    fused = fuse_runs([a, b], method="combsum", depth=10)
    assert dict(zip(fused["product_id"], fused["score"])) == pytest.approx({"p3": 1.0, "p1": 1.0, "p2": 0.5})
    assert list(fused["product_id"]) == ["p1", "p3", "p2"]


def test_wsum_weights_each_run_after_its_normalisation():
    a = pd.DataFrame({"query_id": "q", "rank": [1, 2, 3], "product_id": ["p1", "p2", "p3"], "score": [0.9, 0.5, 0.1]})
    b = pd.DataFrame({"query_id": "q", "rank": [1, 2], "product_id": ["p3", "p2"], "score": [4.0, 2.0]})
    fused = fuse_runs([a, b], method="wsum", norm="min-max", weights=[0.3, 0.7], depth=10)
    # min-max: a -> p1 1, p2 0.5, p3 0; b -> p3 1, p2 0; absent products add 0
    assert dict(zip(fused["product_id"], fused["score"])) == pytest.approx({"p3": 0.7, "p1": 0.3, "p2": 0.15})
    assert list(fused["product_id"]) == ["p3", "p1", "p2"]
    zmuv = fuse_runs([a, b], method="wsum", norm="zmuv", weights=[1.0, 0.0], depth=10)
    z = (a["score"] - a["score"].mean()) / a["score"].std(ddof=0)
    assert dict(zip(zmuv["product_id"], zmuv["score"])) == pytest.approx(dict(zip(a["product_id"], z)))


def test_ties_at_the_cut_are_broken_by_product_id_not_by_ranx_order():
    # every product fuses to 0.5 (min-max: z 1/0, m 0.5/0.5, a 0/1): the top 1 is the smallest id
    a = pd.DataFrame({"query_id": "q", "rank": [1, 2, 3], "product_id": ["z", "m", "a"], "score": [1.0, 0.5, 0.0]})
    b = pd.DataFrame({"query_id": "q", "rank": [1, 2, 3], "product_id": ["a", "m", "z"], "score": [1.0, 0.5, 0.0]})
    for depth, expected in ((1, ["a"]), (2, ["a", "m"]), (3, ["a", "m", "z"])):
        fused = fuse_runs([a, b], method="wsum", norm="min-max", weights=[0.5, 0.5], depth=depth)
        assert fused["product_id"].tolist() == expected and fused["rank"].tolist() == list(range(1, depth + 1))


def test_runs_converted_once_fuse_as_the_frames_do():
    from graphrel.retrieval.serving.fusion import RanxRuns

    a, b = run({"q": ["p1", "p2", "p3"], "r": ["p4", "p1"]}), run({"q": ["p3", "p4"], "r": ["p1", "p2"]})
    converted = RanxRuns([a, b])
    for kwargs in ({"method": "rrf"}, {"method": "combsum"}, {"method": "wsum", "norm": "sum", "weights": [0.4, 0.6]}):
        assert fuse_runs(converted, **kwargs).equals(fuse_runs([a, b], **kwargs)), kwargs


def test_fusion_bad_input():
    with pytest.raises(GraphrelInputError, match="at least two"):
        fuse_runs([run({"q": ["p1"]})])
    with pytest.raises(GraphrelInputError, match="unknown fusion"):
        fuse_runs([run({"q": ["p1"]})] * 2, method="max")
    with pytest.raises(GraphrelInputError, match="normalisation"):
        fuse_runs([run({"q": ["p1"]})] * 2, method="wsum", norm="max", weights=[1, 1])
    with pytest.raises(GraphrelInputError, match="one finite weight"):
        fuse_runs([run({"q": ["p1"]})] * 2, method="wsum", norm="sum", weights=[1])
    with pytest.raises(GraphrelInputError, match="options of wsum"):
        fuse_runs([run({"q": ["p1"]})] * 2, method="rrf", weights=[0.5, 0.5])


def test_precision_at_10_is_reported_beside_recall():
    metrics = retrieval_metrics(run({"q": ["p1", "p2", "p3"]}), {"q": {"p1", "p3", "p9"}})
    assert metrics["precision@10"] == pytest.approx(0.2) and metrics["recall@10"] == pytest.approx(2 / 3)


def test_retrieve_command_serves_the_rank_fusion_of_two_models(tmp_path, capsys):
    from graphrel.cli import main
    from graphrel.retrieval.search.catalogue import Catalogue
    from graphrel.retrieval.serving.command import retrieve_file
    from graphrel.retrieval.serving.retriever import Retriever, save_bm25_retriever, save_xmc_retriever
    from graphrel.retrieval.encoding.xmc import XMCModel, xmc_training_examples

    from .conftest import toy_pairs

    catalogue = Catalogue.from_pairs(toy_pairs())
    save_bm25_retriever(tmp_path / "bm25", catalogue=catalogue)
    queries, labels, _ = xmc_training_examples(toy_pairs(), threshold=0.75)
    save_xmc_retriever(tmp_path / "xmc", model=XMCModel.fit(queries, labels, tmp_path / "fit"), catalogue=catalogue)
    pd.DataFrame({"query": ["garden hose", "door"]}).to_csv(tmp_path / "q.csv", index=False)
    assert main(["retrieve", "--fusion", "rrf", "--model", str(tmp_path / "bm25"), "--model", str(tmp_path / "xmc"),
                 "--queries", str(tmp_path / "q.csv"), "--k", "4", "--output", str(tmp_path / "top.parquet")]) == 0
    top = pd.read_parquet(tmp_path / "top.parquet")
    runs = [Retriever.load(tmp_path / m).search(["garden hose", "door"], 4, query_ids=["garden hose", "door"])
            for m in ("bm25", "xmc")]
    expected = fuse_runs(runs, method="rrf", depth=4)
    assert top["query_id"].tolist() == ["garden hose"] * 4 + ["door"] * 4
    assert top.set_index(["query_id", "rank"]).sort_index().equals(expected.set_index(["query_id", "rank"]).sort_index())
    with pytest.raises(GraphrelInputError, match="needs two or more models"):
        retrieve_file([tmp_path / "bm25"], tmp_path / "q.csv", tmp_path / "one.parquet", fusion="rrf")
    with pytest.raises(GraphrelInputError, match="no fusion method"):
        retrieve_file([tmp_path / "bm25", tmp_path / "xmc"], tmp_path / "q.csv", tmp_path / "two.parquet")
