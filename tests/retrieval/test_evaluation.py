import numpy as np
import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries, normalised_threshold
from graphrel.retrieval.measures.evaluation import retrieval_metrics, run_frame, write_trec_run
from graphrel.retrieval.search.topk import top_k

from .conftest import toy_pairs


def test_top_k_breaks_ties_by_column_even_across_the_cut():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]])
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[1, 0, 2], [0, 1, 2]]
    assert val.tolist() == [[0.9, 0.5, 0.5], [1.0, 1.0, 1.0]]
    assert top_k(scores, 99)[0].shape == (2, 5)  # clamped
    with pytest.raises(ValueError):
        top_k(scores, 0)


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(20, 50)).astype(float)  # many ties
    idx, _ = top_k(scores, 7)
    for row in range(20):
        expected = sorted(range(50), key=lambda j: (-scores[row, j], j))[:7]
        assert idx[row].tolist() == expected


def test_catalogue_is_sorted_unique_and_round_trips(tmp_path):
    pairs = toy_pairs()
    catalogue = Catalogue.from_pairs(pairs.sample(frac=1.0, random_state=1))
    assert list(catalogue.product_ids) == sorted(set(pairs.product_id))
    catalogue.save(tmp_path)
    again = Catalogue.load(tmp_path)
    assert list(again.product_ids) == list(catalogue.product_ids) and list(again.texts) == list(catalogue.texts)
    with pytest.raises(GraphrelInputError, match="catalogue.parquet"):
        Catalogue.load(tmp_path / "nowhere")


def test_judged_queries_use_the_threshold_and_drop_queries_without_relevant_products():
    pairs = toy_pairs()
    pairs.loc[(pairs.query_id == "paint") & (pairs.split == "test"), "label"] = 0.5
    judged = judged_test_queries(pairs, threshold=0.75)
    assert list(judged.query_ids) == ["door", "drill", "garden hose", "led light"]
    assert judged.without_relevant == 1 and judged.qrels["drill"] == {"p01", "p07"}
    assert normalised_threshold(2.5, {"label_min": 1.0, "label_max": 3.0}) == pytest.approx(0.75)
    with pytest.raises(GraphrelInputError, match="outside the label scale"):
        normalised_threshold(4.0, {"label_min": 1.0, "label_max": 3.0})


def test_metrics_match_hand_computed_values():
    # query a: relevant {x, y}; ranking x, n1, n2, ..., y at rank 50 -> recall@10 = 0.5, recall@100 = 1
    # query b: relevant {z}; ranking n1 z ... -> recall@10 = 1; NDCG@10 = 1/log2(3)
    ids = np.array(["n%02d" % i for i in range(200)] + ["x", "y", "z"], dtype=object)
    where = {p: i for i, p in enumerate(ids)}
    ranking_a = ["x"] + [f"n{i:02d}" for i in range(48)] + ["y"]
    ranking_b = ["n00", "z"] + [f"n{i:02d}" for i in range(1, 49)]
    indices = np.array([[where[p] for p in ranking_a], [where[p] for p in ranking_b]])
    scores = np.zeros(indices.shape)  # all tied: the ranking itself must be what is evaluated
    run = run_frame(["a", "b"], ids, indices, scores)
    metrics = retrieval_metrics(run, {"a": {"x", "y"}, "b": {"z"}})
    ndcg_a = 1.0 / (1 + 1 / np.log2(3))
    assert metrics["recall@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["recall@100"] == pytest.approx(1.0) and metrics["recall@1000"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx((ndcg_a + 1 / np.log2(3)) / 2)
    assert metrics["queries"] == 2


def test_a_query_missing_from_the_run_counts_as_zero():
    ids = np.array(["x", "y"], dtype=object)
    run = run_frame(["a"], ids, np.array([[0, 1]]), np.array([[1.0, 0.5]]))
    metrics = retrieval_metrics(run, {"a": {"x"}, "b": {"y"}})
    assert metrics["recall@10"] == pytest.approx(0.5)


def test_trec_run_file(tmp_path):
    run = run_frame(["garden hose"], np.array(["p1", "p2"], dtype=object), np.array([[1, 0]]), np.array([[0.9, 0.1]]))
    write_trec_run(run, tmp_path / "x.trec", tag="bm25")
    lines = (tmp_path / "x.trec").read_text().splitlines()
    assert lines == ["garden_hose Q0 p2 1 0.900000 bm25", "garden_hose Q0 p1 2 0.100000 bm25"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.trec"]


def test_two_stage_table_shows_a_fully_delegated_student_as_its_text_student():
    from graphrel.retrieval.two_stage import two_stage_markdown

    result = {"retriever": "dual_encoder", "depth": 100,
              "first_stage": {"ndcg@10": 0.3, "recall@10": 0.4, "recall@depth": 0.7},
              "rerankers": {"teacher": {"ndcg@10": 0.29, "recall@10": 0.4, "pairs": 200, "pairs_per_second": 300.0,
                                        "paths": {}},
                            "student_korder": {"ndcg@10": 0.32, "recall@10": 0.41, "pairs": 200,
                                               "pairs_per_second": 9000.0,
                                               "paths": {"graph": 0, "text_fallback": 200}},
                            "student_x": {"ndcg@10": 0.31, "recall@10": 0.41, "pairs": 200, "pairs_per_second": 8e3,
                                          "paths": {"graph": 150, "text_fallback": 50}}}}
    table = two_stage_markdown(result)
    assert "student_korder (= its text-only student: text fallback for 200 of 200 pairs) | 0.320 | 0.410 |" in table
    assert "9,000" not in table  # no speed of its own
    assert "student_x (text fallback for 50 of 200 pairs)" in table


# Judged-only figures (condensed lists, Sakai 2007). u = unjudged, r = relevant, n = judged non-relevant.
# a: [u1, r1, u2, n1, r2] -> condensed [r1, n1, r2]
# b: [u00..u09, r3, n2, u10, r4] -> condensed [r3, n2, r4] (both relevant ones below rank 10 before condensing)
# c: [u20, u21] -> condensed [] (its relevant r5 is not retrieved)
# d: no relevant product (left out, as the main figures leave it out)
HAND_RANKINGS = {"a": ["u1", "r1", "u2", "n1", "r2"],
                 "b": [f"u{i:02d}" for i in range(10)] + ["r3", "n2", "u10", "r4"],
                 "c": ["u20", "u21"], "d": ["n4", "u22"]}
HAND_QRELS = {"a": {"r1", "r2"}, "b": {"r3", "r4"}, "c": {"r5"}, "d": set()}
HAND_JUDGED = {"a": {"r1", "n1", "r2"}, "b": {"r3", "n2", "r4"}, "c": {"r5", "n3"}, "d": {"n4"}}
IDEAL = 1 + 1 / np.log2(3)  # DCG@10 of two relevant products at ranks 1 and 2


def hand_run(rankings=HAND_RANKINGS) -> pd.DataFrame:
    rows = [(q, rank, p, float(len(ranking) - rank)) for q, ranking in rankings.items()
            for rank, p in enumerate(ranking, start=1)]
    return pd.DataFrame(rows, columns=["query_id", "rank", "product_id", "score"])


def judged_only_of(qrels=HAND_QRELS, judged=HAND_JUDGED, **options):
    from graphrel.retrieval.measures.judged_only import JudgedOnly

    return JudgedOnly(qrels, judged, **{"resamples": 200, "seed": 0, **options})


def test_condensed_run_keeps_the_judged_products_in_order_and_renumbers_ranks():
    from graphrel.retrieval.measures.judged_only import condensed_run

    run = hand_run()
    condensed = condensed_run(run.sample(frac=1.0, random_state=3), HAND_JUDGED)  # row order must not matter
    by_query = condensed.groupby("query_id", sort=False)["product_id"].agg(list).to_dict()
    assert set(by_query) == {"a", "b", "d"}
    assert by_query["a"] == ["r1", "n1", "r2"] and by_query["b"] == ["r3", "n2", "r4"] and by_query["d"] == ["n4"]
    assert condensed.groupby("query_id")["rank"].agg(list).to_dict()["b"] == [1, 2, 3]
    assert list(condensed.columns) == list(run.columns)
    assert condensed.loc[condensed.product_id == "r2", "score"].item() == 0.0  # other columns kept


def test_judged_only_figures_match_hand_computed_values():
    figures = judged_only_of().figures(hand_run())
    ndcg_condensed = (1 + 1 / np.log2(4)) / IDEAL  # [r, n, r]
    assert figures["recall@10"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-12)
    assert figures["ndcg@10"] == pytest.approx((ndcg_condensed + ndcg_condensed + 0) / 3, abs=1e-12)
    assert figures["precision@10"] == pytest.approx((0.2 + 0.2 + 0) / 3, abs=1e-12)
    assert figures["recall@100"] == pytest.approx(2 / 3, abs=1e-12)
    assert set(figures["intervals"]) == {"recall@10", "recall@100", "recall@1000", "ndcg@10", "precision@10"}
    for key, (low, high) in figures["intervals"].items():
        assert 0 <= low <= figures[key] <= high <= 1, key
    assert figures["intervals"]["recall@10"][0] < figures["intervals"]["recall@10"][1]  # queries differ
    judged_non_relevant_only = {q: products - HAND_QRELS[q] for q, products in HAND_JUDGED.items()}
    assert judged_only_of(judged=judged_non_relevant_only).figures(hand_run()) == figures  # relevant = judged
    only = judged_only_of().figures(hand_run(), ("recall@10", "ndcg@10"))
    assert set(only) == {"recall@10", "ndcg@10", "intervals"} and set(only["intervals"]) == {"recall@10", "ndcg@10"}


def test_the_main_figures_still_count_unjudged_products_as_misses_and_the_run_is_not_changed():
    run = hand_run()
    before = run.copy()
    main = retrieval_metrics(run, HAND_QRELS)
    judged_only_of().figures(run)
    pd.testing.assert_frame_equal(run, before)
    assert retrieval_metrics(run, HAND_QRELS) == main
    ndcg_a = (1 / np.log2(3) + 1 / np.log2(6)) / IDEAL  # r1 at rank 2, r2 at rank 5
    assert main["recall@10"] == pytest.approx(1 / 3, abs=1e-12)  # b's relevant products are at ranks 11 and 14
    assert main["ndcg@10"] == pytest.approx(ndcg_a / 3, abs=1e-12)
    assert main["precision@10"] == pytest.approx(0.2 / 3, abs=1e-12) and main["queries"] == 3


def test_judged_only_intervals_are_the_paired_bootstrap_of_the_per_query_figures():
    from graphrel.intervals import PairedBootstrap
    from graphrel.retrieval.measures.evaluation import per_query_metrics
    from graphrel.retrieval.measures.judged_only import condensed_run

    figures = judged_only_of(seed=7).figures(hand_run())
    per_query = per_query_metrics(condensed_run(hand_run(), HAND_JUDGED), HAND_QRELS)
    assert list(per_query.index) == ["a", "b", "c"]
    boot = PairedBootstrap(["a", "b", "c"], np.zeros(3), resamples=200, seed=7)
    for key in ("recall@10", "ndcg@10"):
        assert figures["intervals"][key] == list(boot.mean_interval(per_query[key].to_numpy()))
    assert judged_only_of(seed=7).figures(hand_run()) == figures  # same seed, same intervals


def test_main_intervals_are_the_paired_bootstrap_of_the_main_per_query_figures_and_contain_them():
    from graphrel.intervals import PairedBootstrap
    from graphrel.retrieval.measures.evaluation import per_query_metrics

    run = hand_run()
    intervals = judged_only_of(seed=3).intervals(run)
    per_query = per_query_metrics(run, HAND_QRELS)  # unjudged products count as misses here
    boot = PairedBootstrap(["a", "b", "c"], np.zeros(3), resamples=200, seed=3)
    main = retrieval_metrics(run, HAND_QRELS)
    assert set(intervals) == {"recall@10", "recall@100", "ndcg@10"}
    for key, (low, high) in intervals.items():
        assert [low, high] == list(boot.mean_interval(per_query[key].to_numpy())), key
        assert 0 <= low <= main[key] <= high <= 1, key
    assert intervals["ndcg@10"] != judged_only_of(seed=3).figures(run)["intervals"]["ndcg@10"]  # not judged-only
    assert intervals["recall@10"][0] < intervals["recall@10"][1]  # the queries differ


def test_differences_are_paired_over_the_same_queries():
    from graphrel.intervals import PairedBootstrap
    from graphrel.retrieval.measures.evaluation import per_query_metrics

    run = hand_run()
    better = hand_run({**HAND_RANKINGS, "b": ["r3", "r4"], "c": ["r5"]})  # b and c improved
    j = judged_only_of(seed=5)
    out = j.differences(better, {"base": run, "same": better})
    boot = PairedBootstrap(["a", "b", "c"], np.zeros(3), resamples=200, seed=5)
    mine, theirs = per_query_metrics(better, HAND_QRELS), per_query_metrics(run, HAND_QRELS)
    for key in ("recall@100", "ndcg@10"):
        d = out["base"][key]
        gain = retrieval_metrics(better, HAND_QRELS)[key] - retrieval_metrics(run, HAND_QRELS)[key]
        assert d["difference"] == pytest.approx(gain, abs=1e-12) and d["difference"] > 0
        assert d["interval"] == list(boot.mean_interval(mine[key].to_numpy(), theirs[key].to_numpy()))
        assert d["interval"][0] <= d["difference"] <= d["interval"][1]
        assert out["same"][key] == {"difference": 0.0, "interval": [0.0, 0.0]}  # a run against itself


def test_per_query_metrics_average_to_the_aggregate_figures():
    from graphrel.retrieval.measures.evaluation import per_query_metrics

    run = hand_run()
    per_query = per_query_metrics(run, HAND_QRELS)
    main = retrieval_metrics(run, HAND_QRELS)
    for key in per_query.columns:
        assert per_query[key].mean() == pytest.approx(main[key], abs=1e-12), key
    assert per_query.loc["b", "recall@10"] == 0.0 and per_query.loc["a", "recall@10"] == 1.0


def test_unjudged_products_never_lower_the_judged_only_figures():
    from graphrel.retrieval.measures.evaluation import per_query_metrics
    from graphrel.retrieval.measures.judged_only import condensed_run

    rng = np.random.default_rng(0)
    products = [f"p{i:03d}" for i in range(300)]
    qrels, judged, rankings = {}, {}, {}
    for q in range(40):
        chosen = list(rng.choice(products, size=6, replace=False))
        qrels[f"q{q}"], judged[f"q{q}"] = set(chosen[:2]), set(chosen[:4])  # 2 relevant, 2 judged non-relevant
        rankings[f"q{q}"] = list(rng.choice(products, size=30, replace=False))
    padded = {}  # the same rankings with unjudged products slipped in anywhere
    for q, ranking in rankings.items():
        out = list(ranking)
        for extra in rng.choice([p for p in products if p not in judged[q] and p not in ranking], size=25,
                                replace=False):
            out.insert(int(rng.integers(len(out) + 1)), extra)
        padded[q] = out
    j = judged_only_of(qrels, judged)
    plain, more = j.figures(hand_run(rankings)), j.figures(hand_run(padded))
    for key in ("recall@10", "recall@100", "ndcg@10", "precision@10"):
        assert more[key] == pytest.approx(plain[key], abs=1e-12), key
    main = per_query_metrics(hand_run(padded), qrels)
    condensed = per_query_metrics(condensed_run(hand_run(padded), judged), qrels)
    assert (condensed >= main - 1e-12).all().all()
    assert (condensed["ndcg@10"] > main["ndcg@10"] + 1e-6).any()  # the unjudged products did cost the main figure


def test_judged_products_are_the_labelled_pairs_of_test_queries():
    from graphrel.retrieval.measures.judged_only import judged_products

    pairs = toy_pairs()
    pairs.loc[(pairs.query_id == "paint") & (pairs.product_id == "p03") & (pairs.split == "test"), "label"] = np.nan
    judged = judged_products(pairs)
    assert set(judged) == {"door", "drill", "garden hose", "led light", "paint"}  # no train query
    drill = pairs[(pairs.query_id == "drill") & (pairs.split == "test")]
    assert judged["drill"] == set(drill.product_id) and len(judged["drill"]) == 3  # the non-relevant one too
    assert judged["paint"] == {"p08"} | set(pairs[(pairs.query_id == "paint") & (pairs.label == 0.25)].product_id)


def test_fill_reads_the_run_files_of_entries_without_judged_only(tmp_path):
    run = hand_run({"garden hose": HAND_RANKINGS["a"], "b": HAND_RANKINGS["b"]})
    qrels = {"garden hose": HAND_QRELS["a"], "b": HAND_QRELS["b"]}
    judged = {"garden hose": HAND_JUDGED["a"], "b": HAND_JUDGED["b"]}
    write_trec_run(run, tmp_path / "fused.trec", tag="fused")
    j = judged_only_of(qrels, judged)
    entries = {"fused": {"recall@10": 0.5}, "kept": {"judged_only": {"recall@10": 0.25}}}
    j.fill(entries, tmp_path)
    assert entries["kept"]["judged_only"] == {"recall@10": 0.25}  # not recomputed (no run file)
    assert entries["fused"]["judged_only"] == j.figures(run)
    assert entries["fused"]["intervals"] == j.intervals(run) and "intervals" not in entries["kept"]
    assert entries["fused"]["judged_only"]["recall@10"] == pytest.approx(1.0)


def test_read_trec_run_maps_query_ids_back_and_refuses_ambiguous_ones(tmp_path):
    from graphrel.retrieval.measures.evaluation import read_trec_run

    run = hand_run({"garden  hose": ["NA", "p2"], "other": ["p3"]})
    write_trec_run(run, tmp_path / "x.trec", tag="x")
    back = read_trec_run(tmp_path / "x.trec", ["garden  hose"])
    assert back["query_id"].tolist() == ["garden  hose"] * 2 and back["product_id"].tolist() == ["NA", "p2"]
    assert back["rank"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="both written"):
        read_trec_run(tmp_path / "x.trec", ["garden hose", "garden_hose"])


class FakeCatalogue:
    def __init__(self, product_ids):
        self.product_ids = np.array(product_ids, dtype=object)
        self.texts = self.product_ids

    def __len__(self):
        return len(self.product_ids)


class FakeRetriever:
    """Returns each query's hand-made ranking (a retriever directory is not needed)."""

    name, manifest = "fake", {"parameters": 3}

    def __init__(self, rankings):
        self.rankings = rankings
        self.catalogue = FakeCatalogue(sorted({p for r in rankings.values() for p in r} | {"r5", "n3"}))
        self.xmc = type("Size", (), {"size_bytes": lambda self: 10})()

    def search(self, queries, k, *, query_ids=None):
        return hand_run({q: self.rankings[q][:k] for q in query_ids})

    def search_rows(self, queries, k):
        where = {p: i for i, p in enumerate(self.catalogue.product_ids)}
        width = min(k, min(len(self.rankings[q]) for q in queries))
        rows = np.array([[where[p] for p in self.rankings[q][:width]] for q in queries])
        return rows, -np.tile(np.arange(width, dtype=float), (len(queries), 1))

    def time_search(self, queries, k, *, repeats, warmup):
        return {"query_encodings_per_second": 1.0, "queries_per_second": 1.0}


def test_every_retriever_entry_gets_judged_only_figures_beside_unchanged_ones(tmp_path, monkeypatch):
    from graphrel.retrieval import report
    from graphrel.retrieval.search.catalogue import JudgedQueries

    # every ranking 4 long (search_rows returns a full (Q, 4) block)
    rankings = {"a": HAND_RANKINGS["a"][:4], "b": HAND_RANKINGS["b"][:4], "c": ["u20", "u21", "u98", "u99"]}
    monkeypatch.setattr(report.Retriever, "load", classmethod(lambda cls, d, threads=1: FakeRetriever(rankings)))
    ids = np.array(["a", "b", "c"], dtype=object)
    judged = JudgedQueries(ids, ids, {q: HAND_QRELS[q] for q in ids}, without_relevant=0)
    kwargs = dict(warmup=["a"], repeats=1, timing_k=4, threads=1)
    plain = report.evaluate_retrievers({"fake": tmp_path}, judged, tmp_path / "runs", **kwargs)
    entries = report.evaluate_retrievers({"fake": tmp_path}, judged, tmp_path / "runs", **kwargs,
                                         judged_only=judged_only_of())
    assert "judged_only" not in plain["fake"] and "intervals" not in plain["fake"]
    assert {k: v for k, v in entries["fake"].items() if k not in ("judged_only", "intervals")} == plain["fake"]
    assert entries["fake"]["intervals"] == judged_only_of().intervals(hand_run({q: r for q, r in rankings.items()}))
    # top 4: a [u1, r1, u2, n1] -> [r1, n1]; b [u00..u03] -> []; c -> []
    figures = entries["fake"]["judged_only"]
    assert figures["recall@10"] == pytest.approx(0.5 / 3, abs=1e-12)
    assert figures["ndcg@10"] == pytest.approx(1 / IDEAL / 3, abs=1e-12)
    assert plain["fake"]["ndcg@10"] == pytest.approx(1 / np.log2(3) / IDEAL / 3, abs=1e-12)
    table = report.retrieval_markdown(entries, {"test_queries": 3, "relevance_threshold": 2.5,
                                                "test_queries_without_relevant": 0, "catalogue_products": 30})
    assert "### Judged-only figures" in table and "Sakai" in table and "counts unjudged products as misses" in table
    low, high = figures["intervals"]["recall@10"]
    assert f"| fake | {plain['fake']['recall@10']:.3f} | {figures['recall@10']:.3f} [{low:.3f}, {high:.3f}] |" in table
    low, high = entries["fake"]["intervals"]["ndcg@10"]  # the main table's cells carry the intervals
    assert f"| {plain['fake']['ndcg@10']:.3f} [{low:.3f}, {high:.3f}] |" in table and "Brackets: 95% interval" in table
    assert "Judged-only" not in report.retrieval_markdown(plain, {"test_queries": 3, "relevance_threshold": 2.5,
                                                                  "test_queries_without_relevant": 0,
                                                                  "catalogue_products": 30})


def test_two_stage_reports_judged_only_figures_of_the_first_stage_and_each_re_ranker(tmp_path, monkeypatch):
    from graphrel.retrieval import two_stage
    from graphrel.retrieval.search.catalogue import JudgedQueries

    rankings = {"a": HAND_RANKINGS["a"], "c": HAND_RANKINGS["c"]}
    order = {"n1": 5, "u1": 4, "r1": 3, "r2": 2, "u2": 1, "u20": 1, "u21": 0}  # a re-ranked: [n1, u1, r1, r2, u2]

    def load(directory, graph=None):
        return lambda qids, queries, pids, texts: np.array([order[p] for p in pids], dtype=float)

    monkeypatch.setattr(two_stage.Retriever, "load", classmethod(lambda cls, d, threads=None: FakeRetriever(rankings)))
    monkeypatch.setattr(two_stage, "load_pair_scorer", load)
    ids = np.array(["a", "c"], dtype=object)
    qrels = {q: HAND_QRELS[q] for q in ids}
    judged = JudgedQueries(ids, ids, qrels, without_relevant=0)
    j = judged_only_of(qrels, {q: HAND_JUDGED[q] for q in ids})
    result = two_stage.two_stage_metrics(tmp_path, judged, {"model": (tmp_path, None)}, depth=5,
                                         cache_dir=tmp_path / "cache", key="k", judged_only=j)
    first, model = result["first_stage"], result["rerankers"]["model"]
    assert first["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(6)) / IDEAL / 2, abs=1e-12)  # unchanged
    assert model["ndcg@10"] == pytest.approx((1 / np.log2(4) + 1 / np.log2(5)) / IDEAL / 2, abs=1e-12)
    assert first["judged_only"]["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4)) / IDEAL / 2, abs=1e-12)  # [r1, n1, r2]
    assert model["judged_only"]["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / IDEAL / 2,
                                                            abs=1e-12)  # [n1, r1, r2]
    assert first["judged_only"]["recall@10"] == model["judged_only"]["recall@10"] == pytest.approx(0.5)
    assert set(model["judged_only"]["intervals"]) == {"ndcg@10", "recall@10"}
    table = two_stage.two_stage_markdown(result, teacher="model")
    assert "judged-only NDCG@10 | judged-only recall@10" in table and "Sakai 2007" in table
    low, high = model["judged_only"]["intervals"]["ndcg@10"]
    main = {k: model["intervals"][k] for k in ("ndcg@10", "recall@10")}
    assert set(first["intervals"]) == set(main) == {"ndcg@10", "recall@10"}
    assert main["ndcg@10"][0] <= model["ndcg@10"] <= main["ndcg@10"][1]
    assert f"| {model['ndcg@10']:.3f} [{main['ndcg@10'][0]:.3f}, {main['ndcg@10'][1]:.3f}] | " \
           f"{model['recall@10']:.3f} [{main['recall@10'][0]:.3f}, {main['recall@10'][1]:.3f}] | " \
           f"{model['judged_only']['ndcg@10']:.3f} [{low:.3f}, {high:.3f}] |" in table
    difference = model["differences"]["first_stage"]["ndcg@10"]  # the re-ranker minus the first stage
    assert difference["difference"] == pytest.approx(model["ndcg@10"] - first["ndcg@10"], abs=1e-12)
    assert difference["interval"][0] <= difference["difference"] <= difference["interval"][1]
    assert f"- NDCG@10 of model minus: the first stage {difference['difference']:+.4f}" in table
    assert "judged_only" not in two_stage.two_stage_metrics(
        tmp_path, judged, {"model": (tmp_path, None)}, depth=5, cache_dir=tmp_path / "cache", key="k")["first_stage"]
