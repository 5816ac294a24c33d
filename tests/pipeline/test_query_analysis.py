"""Per-query analysis: per-query figures, query slices with intervals, worst queries, TREC export.

Every frame here is synthetic and tiny.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score, roc_auc_score

from graphrel.metrics import auc, spearman
from graphrel.pipeline.query_analysis import (per_query_figures, per_query_records, query_slices, slice_figures,
                                              slices_markdown, worst_queries, worst_queries_markdown,
                                              write_trec_runs)

THRESHOLD = 0.75


def hand_made():
    """Four queries, rows interleaved: a (4 pairs, both classes), b (2 pairs), c (3 pairs, one
    label), d (3 pairs, constant scores)."""
    rows = [("a", "p1", 1.0, 0.9), ("b", "p5", 1.0, 0.3), ("a", "p2", 0.5, 0.2), ("c", "p7", 0.5, 0.1),
            ("a", "p3", 0.0, 0.4), ("d", "p1", 1.0, 0.5), ("c", "p8", 0.5, 0.6), ("a", "p4", 0.75, 0.6),
            ("b", "p6", 0.0, 0.7), ("d", "p2", 0.0, 0.5), ("c", "p9", 0.5, 0.3), ("d", "p3", 0.5, 0.5)]
    return pd.DataFrame(rows, columns=["query_id", "product_id", "label", "score"])


def test_per_query_figures_equal_sklearn_and_scipy_and_nan_where_undefined():
    frame = hand_made()
    out = per_query_figures(frame, frame.score, threshold=THRESHOLD, min_pairs=3).set_index("query_id")
    assert list(out.index) == ["a", "b", "c", "d"]
    assert out.pairs.to_dict() == {"a": 4, "b": 2, "c": 3, "d": 3}
    a = frame[frame.query_id == "a"]
    assert out.auc["a"] == pytest.approx(roc_auc_score(a.label >= THRESHOLD, a.score))
    assert out.spearman["a"] == pytest.approx(spearmanr(a.score, a.label).statistic)
    assert out.ndcg["a"] == pytest.approx(ndcg_score([a.label], [a.score]))
    b = frame[frame.query_id == "b"]
    assert out.auc["b"] == pytest.approx(roc_auc_score(b.label >= THRESHOLD, b.score)) == 0.0
    assert math.isnan(out.spearman["b"]) and math.isnan(out.ndcg["b"])  # 2 pairs: < 3, < min_pairs
    assert math.isnan(out.auc["c"]) and math.isnan(out.spearman["c"])  # one class; constant labels
    assert out.ndcg["c"] == pytest.approx(1.0)
    assert math.isnan(out.spearman["d"]) and out.auc["d"] == 0.5  # constant scores
    with pytest.raises(ValueError, match="NaN"):
        per_query_figures(frame.assign(label=np.nan), frame.score, threshold=THRESHOLD, min_pairs=3)
    with pytest.raises(ValueError, match="min_pairs"):
        per_query_figures(frame, frame.score, threshold=THRESHOLD, min_pairs=1)


def test_per_query_auc_and_spearman_equal_sklearn_and_scipy_on_many_queries_with_ties():
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 9, size=80)
    frame = pd.DataFrame({"query_id": np.repeat([f"q{i}" for i in range(80)], sizes),
                          "label": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=sizes.sum())})
    scores = rng.choice(np.linspace(0, 1, 6), size=len(frame))  # many ties
    order = rng.permutation(len(frame))  # queries' rows scattered
    frame, scores = frame.iloc[order].reset_index(drop=True), scores[order]
    out = per_query_figures(frame, scores, threshold=THRESHOLD, min_pairs=2).set_index("query_id")
    defined = {"auc": 0, "spearman": 0}
    for query, rows in frame.groupby("query_id").indices.items():
        y, s = frame.label.to_numpy()[rows], scores[rows]
        relevant = y >= THRESHOLD
        if relevant.any() and not relevant.all():
            assert out.auc[query] == pytest.approx(roc_auc_score(relevant, s)), query
            defined["auc"] += 1
        else:
            assert math.isnan(out.auc[query]), query
        if len(rows) >= 3 and np.ptp(y) > 0 and np.ptp(s) > 0:
            assert out.spearman[query] == pytest.approx(spearmanr(s, y).statistic), query
            defined["spearman"] += 1
        else:
            assert math.isnan(out.spearman[query]), query
        assert out.pairs[query] == len(rows)
    assert defined["auc"] > 20 and defined["spearman"] > 20


def test_per_query_records_are_json_ready_with_none_for_undefined():
    frame = hand_made()
    records = per_query_records(frame.assign(other=1 - frame.score), ["score", "other"], threshold=THRESHOLD,
                                min_pairs=3)
    assert list(records) == ["score", "other"]
    json.dumps(records, allow_nan=False)
    by_query = {r["query_id"]: r for r in records["score"]}
    assert by_query["b"]["spearman"] is None and by_query["b"]["ndcg"] is None and by_query["c"]["auc"] is None
    a = frame[frame.query_id == "a"]
    assert by_query["a"]["auc"] == pytest.approx(auc(a.score, a.label, threshold=THRESHOLD), abs=1e-6)
    assert by_query["a"]["pairs"] == 4 and isinstance(by_query["a"]["pairs"], int)


def test_head_torso_tail_split_by_share_of_evaluated_pairs_ties_by_id():
    evaluated = ["a"] * 6 + ["b"] * 2 + ["c"] * 2 + ["d"] * 2  # 12 pairs: thirds of 4
    log = pd.Series({"a": 100, "b": 50, "c": 50, "d": 3, "x": 9})  # b, c tie: b first
    texts = {"a": "drill", "b": "cordless drill", "c": "  cordless   drill bits ", "d": "a b c d e", "x": "?"}
    out = query_slices(np.array(evaluated, dtype=object), log, texts).set_index("query_id")
    # a starts at 0 (head); b at 6/12 (torso); c at 8/12 = 2/3 (tail); d tail
    assert out.frequency.to_dict() == {"a": "head", "b": "torso", "c": "tail", "d": "tail"}
    assert out.evaluated_pairs.to_dict() == {"a": 6, "b": 2, "c": 2, "d": 2}
    assert out.log_pairs.to_dict() == {"a": 100, "b": 50, "c": 50, "d": 3}
    assert out.length.to_dict() == {"a": "1 word", "b": "2 words", "c": "3 words", "d": "4+ words"}
    even = query_slices([f"q{i}" for i in range(6) for _ in range(2)], {f"q{i}": 10 - i for i in range(6)},
                        {f"q{i}": "x" for i in range(6)})
    assert even.frequency.tolist() == ["head", "head", "torso", "torso", "tail", "tail"]
    with pytest.raises(ValueError, match="no log count or text"):
        query_slices(evaluated, log.drop("d"), texts)
    with pytest.raises(ValueError, match="fewer pairs in the log"):
        query_slices(evaluated, log.replace(100, 5), texts)


def synthetic(queries=36, seed=0):
    """Queries of 2-7 pairs, labels on a 1-3 scale's thirds; the 4+ word queries have no
    relevant pair (AUC undefined on that slice)."""
    rng = np.random.default_rng(seed)
    rows, texts, counts = [], {}, {}
    for q in range(queries):
        words = 1 + q % 4
        texts[f"q{q:02d}"] = " ".join(["word"] * words)
        n = int(rng.integers(2, 8))
        counts[f"q{q:02d}"] = n + int(rng.integers(0, 20))
        for p in range(n):
            label = rng.choice([0.0, 0.5, 1.0]) if words < 4 else rng.choice([0.0, 0.5])
            rows.append((f"q{q:02d}", f"p{p}", label))
    frame = pd.DataFrame(rows, columns=["query_id", "product_id", "label"])
    noise = rng.normal(size=(3, len(frame)))
    frame["teacher"] = 1 / (1 + np.exp(-(4 * frame.label - 2 + noise[0])))
    frame["student:new_query"] = 1 / (1 + np.exp(-(3 * frame.label - 1.5 + 1.5 * noise[1])))
    frame["student:new_pairs"] = 1 / (1 + np.exp(-(2 * frame.label - 1 + 2 * noise[2])))
    return frame, texts, counts


def test_slice_intervals_hold_the_figure_and_the_baseline_differs_from_itself_by_zero():
    frame, texts, counts = synthetic()
    slices = query_slices(frame.query_id, counts, texts)
    models = ["teacher", "student:new_query", "student:new_pairs"]
    figures = slice_figures(frame, {m: frame[m].to_numpy() for m in models}, slices, threshold=THRESHOLD,
                            label_range=2.0, resamples=100, seed=0, min_pairs=3)
    json.dumps(figures, allow_nan=False)
    assert list(figures) == ["frequency", "length"]
    assert list(figures["frequency"]) == ["head", "torso", "tail"]
    assert list(figures["length"]) == ["1 word", "2 words", "3 words", "4+ words"]
    for kind in figures:
        assert sum(e["pairs"] for e in figures[kind].values()) == len(frame)
        assert sum(e["queries"] for e in figures[kind].values()) == frame.query_id.nunique()
    of_query = slices.set_index("query_id").length.reindex(frame.query_id).to_numpy()
    two = frame[of_query == "2 words"]
    entry = figures["length"]["2 words"]
    assert entry["models"]["teacher"]["auc"] == pytest.approx(auc(two.teacher, two.label, threshold=THRESHOLD))
    assert entry["models"]["student:new_query"]["spearman"] == pytest.approx(spearman(two["student:new_query"],
                                                                                      two.label))
    checked = 0
    for kind, by_slice in figures.items():
        for value, entry in by_slice.items():
            for name, m in entry["models"].items():
                for figure in ("auc", "spearman", "ndcg"):
                    if m[figure] is None:
                        continue
                    low, high = m["intervals"][figure]
                    assert low <= m[figure] <= high, (kind, value, name, figure)
                    checked += 1
            base = entry["models"]["teacher"]["differences"]["teacher"]
            for figure, d in base.items():
                if entry["models"]["teacher"][figure] is not None:
                    assert d["difference"] == 0.0 and d["interval"] == [0.0, 0.0], (kind, value, figure)
    assert checked > 40
    four = figures["length"]["4+ words"]["models"]["student:new_query"]
    assert four["auc"] is None and four["intervals"]["auc"] == [None, None]  # no relevant pair there
    assert four["differences"]["teacher"]["auc"]["difference"] is None
    text = slices_markdown(figures, models)
    assert "Queries by frequency:" in text and "Queries by length:" in text
    assert text.count("| 4+ words ") == 1 and "–" in text
    worse = figures["frequency"]["torso"]["models"]["student:new_pairs"]["differences"]["teacher"]["auc"]
    assert worse["interval"][1] < 0 and " ▼ |" in text  # a difference whose interval is below 0 is marked
    head = figures["frequency"]["head"]["models"]["teacher"]
    assert f"{head['auc']:.3f} [{head['intervals']['auc'][0]:.2f}, {head['intervals']['auc'][1]:.2f}]" in text
    with pytest.raises(ValueError, match="baseline"):
        slice_figures(frame, ["student:new_query"], slices, threshold=THRESHOLD, label_range=2.0, resamples=10,
                      seed=0, min_pairs=3)
    with pytest.raises(ValueError, match="no slice"):
        slice_figures(frame, models, slices.iloc[1:], threshold=THRESHOLD, label_range=2.0, resamples=10,
                      seed=0, min_pairs=3)


def test_worst_queries_most_negative_first_ties_by_id_single_pair_and_flat_queries_left_out():
    rows = [  # query, product, label, teacher, student
        ("z", "p1", 1.0, 0.9, 0.1), ("z", "p2", 0.5, 0.5, 0.5), ("z", "p3", 0.0, 0.1, 0.9),  # reversed
        ("m", "p1", 1.0, 0.9, 0.4), ("m", "p2", 0.0, 0.1, 0.6),  # swapped: same loss as "k"
        ("k", "p1", 1.0, 0.8, 0.3), ("k", "p2", 0.0, 0.2, 0.7),
        ("g", "p1", 1.0, 0.9, 0.8), ("g", "p2", 0.0, 0.1, 0.2),  # student as good: difference 0
        ("s", "p1", 0.0, 0.9, 0.1),  # single pair
        ("f", "p1", 0.5, 0.9, 0.1), ("f", "p2", 0.5, 0.1, 0.9),  # labels all equal
    ]
    frame = pd.DataFrame(rows, columns=["query_id", "product_id", "label", "teacher", "student:new_query"])
    texts = {q: f"text of {q}" for q in "zmkgsf"}
    worst = worst_queries(frame, "student:new_query", texts=texts, threshold=THRESHOLD, min_pairs=2, count=20)
    order = list(dict.fromkeys(worst.query_id))
    assert order[0] == "z" and order[1:3] == ["k", "m"] and order == ["z", "k", "m", "g"]
    per_query = worst.drop_duplicates("query_id").set_index("query_id")
    z = frame[frame.query_id == "z"]
    expected = ndcg_score([z.label], [z["student:new_query"]]) - ndcg_score([z.label], [z.teacher])
    assert per_query.ndcg_difference["z"] == pytest.approx(expected)
    assert per_query.ndcg_difference["g"] == 0.0 and per_query["query"]["z"] == "text of z"
    assert worst[worst.query_id == "z"].product_id.tolist() == ["p3", "p2", "p1"]  # the student's order
    assert list(dict.fromkeys(worst_queries(frame, "student:new_query", texts=texts, threshold=THRESHOLD,
                                            min_pairs=3, count=1).query_id)) == ["z"]
    text = worst_queries_markdown(worst)
    assert "`student:new_query`" in text and "text of z" in text and "text of s" not in text
    assert text.index("text of z") < text.index("text of k") < text.index("text of m")
    assert len([line for line in text.splitlines() if line.startswith("|")]) == 2 + len(worst)


def test_trec_runs_and_qrels_read_back_by_ir_measures(tmp_path):
    import ir_measures
    from ir_measures import nDCG

    # labels on a 1-3 scale: 1, 1.67, 2.33, 3 -> grades 0..3 (query ids with spaces, as Home Depot's)
    frame = pd.DataFrame({"query_id": ["cordless drill"] * 4 + ["saw"] * 3,
                          "product_id": ["p1", "p2", "p3", "p4", "p1", "p5", "p6"],
                          "label": [1.0, 0.335, 0.665, 0.0, 0.0, 1.0, 0.665],
                          "model:new_query": [0.2, 0.9, 0.5, 0.1, 0.7, 0.7, 0.3]})
    tmp = tmp_path / "trec"
    written = write_trec_runs(frame, ["model:new_query"], tmp, label_scale=(1.0, 3.0))
    assert written["grades"] == {0: 1.0, 1: 1.67, 2: 2.33, 3: 3.0}
    assert written["runs"]["model:new_query"].endswith("model.new_query.trec")
    assert (tmp / "qrels.txt").read_text().splitlines()[:2] == ["cordless_drill 0 p1 3", "cordless_drill 0 p2 1"]
    qrels = list(ir_measures.read_trec_qrels(str(tmp / "qrels.txt")))
    run = list(ir_measures.read_trec_run(written["runs"]["model:new_query"]))
    assert [(r.doc_id, r.score) for r in run if r.query_id == "saw"] == [("p1", 3.0), ("p5", 2.0), ("p6", 1.0)]

    def ndcg(grades_in_run_order):  # trec_eval: gain = grade, discount log2(rank + 1)
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(grades_in_run_order))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(grades_in_run_order, reverse=True)))
        return dcg / ideal

    expected = (ndcg([1, 2, 3, 0]) + ndcg([0, 3, 2])) / 2  # tie p1 / p5 at 0.7: p1 first (product id)
    value = ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]
    assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="become the same"):
        write_trec_runs(pd.concat([frame, frame.assign(query_id="cordless_drill")]), ["model:new_query"], tmp,
                        label_scale=(1.0, 3.0))
