"""tools/bench_latency.py: its pure parts (percentile summary, request sampling, tables, option
checks). Nothing here times anything or asserts on speed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT

from graphrel.errors import GraphrelInputError

spec = importlib.util.spec_from_file_location("bench_latency", REPO_ROOT / "tools" / "bench_latency.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def catalogue_pairs(test_queries: int = 6, products: int = 300, own: int = 3) -> pd.DataFrame:
    """Pairs of a fake run: ``own`` test pairs per test query, train pairs over the catalogue."""
    rows = [{"query_id": f"q{q}", "query": f"query {q}", "product_id": f"p{(7 * q + k) % products}",
             "product_text": f"product {(7 * q + k) % products}", "split": "test"}
            for q in range(test_queries) for k in range(own)]
    rows += [{"query_id": f"t{p % 10}", "query": f"train {p % 10}", "product_id": f"p{p}",
              "product_text": f"product {p}", "split": "train"} for p in range(products)]
    return pd.DataFrame(rows)


def test_summarise_gives_percentiles_extremes_and_pairs_per_second_in_ms():
    seconds = np.arange(1, 101) / 1000.0  # 1 .. 100 ms
    figures = bench.summarise(seconds[::-1], candidates=100)
    assert figures["p50_ms"] == pytest.approx(50.5)
    assert figures["p99_ms"] == pytest.approx(99.01)
    assert (figures["min_ms"], figures["max_ms"], figures["timings"]) == (pytest.approx(1.0), pytest.approx(100.0), 100)
    assert figures["pairs_per_second_p50"] == pytest.approx(100 / 0.0505)


def test_summarise_of_one_timing_is_that_timing_everywhere():
    figures = bench.summarise([0.004], candidates=50)
    assert figures["p50_ms"] == figures["p99_ms"] == figures["min_ms"] == figures["max_ms"] == pytest.approx(4.0)
    assert figures["pairs_per_second_p50"] == pytest.approx(12_500)


def test_requests_hold_their_query_own_pairs_and_catalogue_products_up_to_the_candidates():
    pairs = catalogue_pairs()
    timed, warmup = bench.sample_requests(pairs, queries=3, warmup=2, candidates=40, seed=0)
    assert (len(timed), len(warmup)) == (3, 2)
    test = pairs[pairs.split == "test"]
    query_ids = []
    for request in timed + warmup:
        assert list(request.columns) == bench.COLUMNS and len(request) == 40
        assert request.query_id.nunique() == 1 and request.product_id.is_unique
        query_id = request.query_id.iloc[0]
        own = set(test.loc[test.query_id == query_id, "product_id"])
        assert own <= set(request.product_id)
        texts = dict(zip(pairs.product_id, pairs.product_text))
        assert all(texts[p] == t for p, t in zip(request.product_id, request.product_text))
        assert (request["query"] == test.loc[test.query_id == query_id, "query"].iloc[0]).all()
        query_ids.append(query_id)
    assert len(set(query_ids)) == 5 and set(query_ids) <= set(test.query_id)  # warm-up queries are other queries


def test_requests_are_seeded():
    pairs = catalogue_pairs()
    first = bench.sample_requests(pairs, queries=2, warmup=1, candidates=30, seed=3)
    again = bench.sample_requests(pairs, queries=2, warmup=1, candidates=30, seed=3)
    other = bench.sample_requests(pairs, queries=2, warmup=1, candidates=30, seed=4)
    for a, b in zip(first[0] + first[1], again[0] + again[1]):
        pd.testing.assert_frame_equal(a, b)
    assert any(not a.equals(b) for a, b in zip(first[0] + first[1], other[0] + other[1]))


def test_a_query_with_more_pairs_than_candidates_keeps_a_subset_of_them():
    timed, _ = bench.sample_requests(catalogue_pairs(test_queries=2, own=8), queries=1, warmup=1, candidates=5,
                                     seed=0)
    assert len(timed[0]) == 5 and timed[0].product_id.is_unique


@pytest.mark.parametrize("settings", [{"queries": 5, "warmup": 2, "candidates": 10},
                                      {"queries": 1, "warmup": 1, "candidates": 1000}])
def test_too_few_test_queries_or_products_is_a_user_error(settings):
    with pytest.raises(GraphrelInputError, match="fewer than"):
        bench.sample_requests(catalogue_pairs(test_queries=6), seed=0, **settings)


def rows():
    def row(model, backend, p50, p99, threads=1):
        return {"model": model, "threads": threads, "backend": backend, "p50_ms": p50, "p99_ms": p99,
                "min_ms": p50 / 2, "max_ms": p99 * 2, "pairs_per_second_p50": 100 / (p50 / 1000)}

    return [row("teacher", "fp32", 400.0, 500.0), row("teacher", "bf16", 100.0, 150.0),
            row("student_korder", "-", 4.0, 12.0), row("student_bert2dnn", "bf16", 1.0, 2.0),
            row("student_korder", "-", 2.0, 3.0, threads=2)]


def test_the_table_has_one_formatted_row_per_model_threads_and_backend():
    table = bench.render_table(rows()).splitlines()
    assert [c.strip() for c in table[0].strip("|").split("|")] == [
        "model", "threads", "backend", "p50 ms", "p99 ms", "min ms", "max ms", "pairs/s at p50"]
    assert len(table) == 2 + len(rows())
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells == ["teacher", "1", "fp32", "400.00", "500.00", "200.00", "1,000.00", "250"]


def test_speedups_are_teacher_p50_over_student_p50_on_fp32_and_the_fast_backend():
    ups = {(u["model"], u["threads"]): u for u in bench.speedups(rows(), "bf16")}
    assert set(ups) == {("student_korder", 1), ("student_bert2dnn", 1), ("student_korder", 2)}
    assert (ups[("student_korder", 1)]["vs_fp32"], ups[("student_korder", 1)]["vs_fast"]) == (100.0, 25.0)
    assert ups[("student_korder", 2)]["vs_fp32"] is None  # no teacher timed on 2 threads


def test_acceptance_checks_the_one_thread_p99_limits_with_the_teacher_beside():
    accepted = {a["model"]: a for a in bench.acceptance(rows(), "bf16")}
    assert (accepted["student_korder"]["passes"], accepted["student_bert2dnn"]["passes"]) == (False, True)
    assert accepted["student_korder"]["teacher"]["bf16"] == {"p50_ms": 100.0, "p99_ms": 150.0}


@pytest.mark.parametrize("option", [["--queries", "0"], ["--repeats", "1.5"], ["--threads", "1", "x"],
                                    ["--candidates", "-3"], ["--seed", "-1"]])
def test_options_must_be_whole_numbers_of_at_least_one(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--run-dir", str(tmp_path), *option])
    assert exit_.value.code == 2 and "whole number" in capsys.readouterr().err


def test_a_missing_run_directory_is_one_error_line_and_exit_code_2(tmp_path, capsys):
    assert bench.main(["--run-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_latency: error:") and "pairs.parquet" in err[0]


def test_a_missing_model_is_a_user_error_with_a_suggestion(tmp_path):
    (tmp_path / "student_korder").mkdir()
    (tmp_path / "student_korder" / "student.json").write_text("{}")
    with pytest.raises(GraphrelInputError, match="did you mean 'student_korder'"):
        bench.load_models(tmp_path, ["student_kordr"], "new_query", ["fp32"])


def test_each_teacher_row_runs_on_the_backend_it_names(tmp_path_factory, tmp_path):
    """The teacher scorer scores on its run's labelling backend (teacher_backend.json); the
    benchmark's fp32 row must still be eager fp32, each other row its own backend."""
    import json
    import shutil

    from helpers import tiny_run_dir

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir(tmp_path_factory) / "teacher", run / "teacher")
    (run / "teacher_backend.json").write_text(json.dumps({"backend": "int8_all"}))
    models = bench.load_models(run, ["teacher"], "new_query", ["fp32", "int8_all"])
    assert list(models) == [("teacher", "fp32"), ("teacher", "int8_all")]
    from graphrel.scoring.teacher_labelling import teacher_logits

    queries, products = ["pvc pipe elbow", "deck screws"] * 8, ["charlotte pipe 1/2 in. pvc elbow", "led bulb"] * 8
    fp32 = teacher_logits(models[("teacher", "fp32")].teacher, queries, products, progress=False, backend="fp32")
    scores = {b: models[("teacher", b)].score(None, queries, None, products) for b in ("fp32", "int8_all")}
    np.testing.assert_allclose(scores["fp32"], 1 / (1 + np.exp(-fp32.astype(np.float64))), atol=1e-6)  # eager fp32
    assert not np.allclose(scores["int8_all"], scores["fp32"], atol=1e-6)  # each row its own backend
