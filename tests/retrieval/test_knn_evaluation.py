"""The CE k-NN evaluation end to end on a toy run (tiny random CE teacher and dual encoder), its
options, and ``graphrel knn`` on the index it saves."""

import json

import numpy as np
import pandas as pd
import pytest

from graphrel.cli import main
from graphrel.errors import GraphrelInputError
from graphrel.retrieval.knn.config import KnnConfig
from graphrel.retrieval.knn.evaluation import run_knn_evaluation

METHODS = ["axn_mf_ind", "axn_mf_trns", "retrieve_rerank_de", "retrieve_rerank_bm25", "anncur", "adacur"]


def tiny_knn_config(**overrides):
    values = dict(n_items=12, test_queries=5, train_queries=5, items_per_query=4, index_query_counts=(2,),
                  anchor_queries=(2, 4), budgets=(4, 10), rounds=(1, 2), report_rounds=2, top_ks=(1, 10), epochs=2,
                  batch_size=8, chunk_pairs=16, threads=1, teacher_batch_size=8)
    values.update(overrides)
    return KnnConfig(**values)


@pytest.fixture(scope="module")
def knn_run(tmp_path_factory, tiny_encoder_dir):
    """A toy run with a tiny random teacher, dual encoder and BM25 retrievers, and its k-NN evaluation."""
    from graphrel.models.teacher import CrossEncoderTeacher
    from graphrel.retrieval.search.catalogue import Catalogue
    from graphrel.retrieval.encoding.encoders import encode, load_encoder
    from graphrel.retrieval.serving.retriever import save_bm25_retriever, save_dense_retriever

    from .conftest import TINY, toy_pairs

    run = tmp_path_factory.mktemp("knn_run")
    pairs = toy_pairs()
    pairs.insert(0, "row_id", np.arange(len(pairs)))
    pairs.to_parquet(run / "pairs.parquet", index=False)
    CrossEncoderTeacher(backbone_config=TINY).save_pretrained(run / "teacher")
    catalogue = Catalogue.from_pairs(pairs)
    encoder = load_encoder(tiny_encoder_dir)
    root = run / "retrieval" / "retrievers"
    save_dense_retriever(root / "dual_encoder", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="dual_encoder")
    save_bm25_retriever(root / "bm25", catalogue=catalogue)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    out = tmp_path_factory.mktemp("knn_out") / "knn"
    result = run_knn_evaluation(run, out, tiny_knn_config())
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before  # the run is read only
    return run, out, result


def teacher_logits_of(run, query, texts):
    from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits

    return teacher_logits(load_teacher(run / "teacher"), [query] * len(texts), list(texts), progress=False)


def test_evaluation_reports_every_method_budget_and_cost(knn_run):
    run, out, result = knn_run
    entries = result["knn"]
    assert list(entries) == METHODS
    for method, entry in entries.items():
        assert set(entry["B=4"]) >= {"top1_recall", "ce_calls_search", "search_seconds"}, method
        assert "top10_recall" not in entry["B=4"] and "top10_recall" in entry["B=10"]  # k <= B only
        assert "top100_recall" not in entry["B=10"]  # 100 > B and > 12 items
        assert entry["B=4"]["ce_calls_search"] == 4 and entry["B=10"]["ce_calls_search"] == 10
        assert all(0 <= v <= 1 for b in ("B=4", "B=10") for k, v in entry[b].items() if k.endswith("_recall"))
    assert entries["axn_mf_ind"]["ce_calls_index"] == 5 * 4 and entries["axn_mf_trns"]["ce_calls_index"] == 20
    assert entries["anncur"]["ce_calls_index"] == 4 * 12 and entries["adacur"]["ce_calls_index"] == 48
    assert entries["retrieve_rerank_de"]["ce_calls_index"] == 0
    # a budget of the whole item set (10 of 12 is not; 12 would be) -> search at B=10 of 12 items finds most
    assert entries["retrieve_rerank_de"]["B=10"]["top1_recall"] >= 0.0
    meta = result["evaluation"]
    assert meta["ground_truth"]["ce_calls"] == 5 * 12 and meta["items"] == 12
    assert meta["index_scores"]["dual_encoder"]["ce_calls"] == 20 and meta["anchor_scores"]["ce_calls"] == 48
    grid = result["grid"]
    assert {r["index_queries"] for r in grid if r["method"] == "axn_mf_ind"} == {2, 5}  # the index-cost curve
    assert {r["first_round"] for r in grid if r["method"] == "axn_mf_ind"} == {"dual_encoder", "bm25"}
    assert {r["blend"] for r in grid if r["method"] == "axn_mf_ind" and r["rounds"] == 2} == {0.0, 0.8}
    curve = result["targets"]["index_cost"]["axn_curve"]
    assert [p["index_queries"] for p in curve] == [2, 5] and [p["ce_calls_index"] for p in curve] == [8, 20]
    assert [p["anchor_queries"] for p in result["targets"]["index_cost"]["anncur_curve"]] == [2, 4]
    saved = json.loads((out / "knn.json").read_text())
    assert set(saved) == {"knn", "grid", "targets", "evaluation"} and saved["knn"]["anncur"]["ce_calls_index"] == 48
    report = (out / "knn.md").read_text()
    assert "| axn_mf_ind | 4 |" in report and "### Targets" in report and "Index cost" in report
    assert (out / "knn.png").stat().st_size > 1000
    manifest = json.loads((out / "index" / "mf_ind" / "manifest.json").read_text())
    assert manifest["dual_encoder"] == "retrieval/retrievers/dual_encoder"  # relative to the run: portable
    assert manifest["ce_calls_index"] == 20


def _judged_products(run, out) -> set:
    """Product ids judged for the evaluation's test queries, read back from the run's pairs."""
    pairs, queries = pd.read_parquet(run / "pairs.parquet"), pd.read_parquet(out / "queries.parquet")
    tests = set(queries.loc[queries.role == "test", "query_id"].astype(str))
    return set(pairs.loc[pairs.query_id.astype(str).isin(tests), "product_id"].astype(str))


def _check_item_set(run, out, result, *, items, test_queries):
    """The item set's counts are right and stated in knn.json, every metrics entry, knn.md and knn.png."""
    from PIL import Image

    from graphrel.retrieval.knn.report import item_set_note

    frame, judged = pd.read_parquet(out / "items.parquet"), _judged_products(run, out)
    assert frame.judged.tolist() == [p in judged for p in frame.product_id]  # judged ones all in, flagged
    counts = {"items": items, "catalogue": 12, "judged": len(judged), "sampled": items - len(judged),
              "test_queries": test_queries, "whole_catalogue": items == 12}
    stated = result["evaluation"]["item_set"]
    assert {k: stated[k] for k in counts} == counts and stated["note"] == item_set_note(counts)
    assert all(entry["item_set"] == stated for entry in result["knn"].values())  # metrics.json's knn entries
    saved = json.loads((out / "knn.json").read_text())
    assert saved["evaluation"]["item_set"] == stated and saved["knn"]["anncur"]["item_set"] == stated
    report = (out / "knn.md").read_text()
    assert report.lower().count(stated["note"].lower()) >= 5  # every table and the targets
    assert f"{len(judged):,} judged for the {test_queries} test queries, {items - len(judged)} sampled" in report
    with Image.open(out / "knn.png") as image:
        assert image.text["Description"] == stated["note"]  # the plot's title states it too
    return report


def test_the_item_set_is_counted_and_stated_everywhere(knn_run):
    run, out, result = knn_run
    report = _check_item_set(run, out, result, items=12, test_queries=5)
    # the 5 toy test queries' judged products are the whole 12-product catalogue
    assert "item set: the whole catalogue, 12 products (12 judged for the 5 test queries, 0 sampled" in report.lower()


def test_a_sampled_item_set_states_its_judged_and_sampled_products(knn_run, tmp_path):
    run, _, _ = knn_run
    out = tmp_path / "knn"
    result = run_knn_evaluation(run, out, tiny_knn_config(test_queries=2, n_items=10))
    report = _check_item_set(run, out, result, items=10, test_queries=2)
    judged = len(_judged_products(run, out))
    assert 0 < judged < 10
    assert (f"item set: 10 of 12 catalogue products ({judged} judged for the 2 test queries, {10 - judged} sampled at "
            "random); a method that finds judged products is favoured against catalogue-scale search") in report


@pytest.mark.parametrize("n_items", [None, 0])
def test_the_whole_catalogue_is_searched_when_n_items_is_null_or_0(n_items, knn_run):
    from graphrel.retrieval.search.catalogue import Catalogue
    from graphrel.retrieval.knn.data import knn_data

    from .conftest import toy_pairs

    assert tiny_knn_config(n_items=n_items, items_per_query=400, budgets=(4, 400)).check().n_items == n_items
    pairs = toy_pairs()
    data = knn_data(pairs, Catalogue.from_pairs(pairs), n_items=n_items, test_queries=1, train_queries=2, seed=0)
    assert data.item_set()["items"] == 12 and data.item_set()["whole_catalogue"]
    assert 0 < data.item_set()["judged"] < 12 and data.item_set()["sampled"] == 12 - data.item_set()["judged"]
    capped = knn_data(pairs, Catalogue.from_pairs(pairs), n_items=6, test_queries=1, train_queries=2, seed=0)
    assert capped.item_set()["items"] == 6 and not capped.item_set()["whole_catalogue"]


def test_a_budget_above_the_whole_catalogue_is_refused(knn_run, tmp_path):
    with pytest.raises(GraphrelInputError, match=r"knn.budgets must be whole numbers <= the item set's 12 products"):
        run_knn_evaluation(knn_run[0], tmp_path / "out", tiny_knn_config(n_items=None, budgets=(4, 20)))


def test_a_search_spending_other_than_its_budget_is_refused(knn_run, tmp_path, monkeypatch):
    import graphrel.retrieval.knn.evaluation as evaluation

    real = evaluation.M.anncur

    def short(*args, **kwargs):  # ANNCUR charged one call less than B on one query
        result = real(*args, **kwargs)
        return {**result, "ce_calls_search_total": result["ce_calls_search_total"] - 1}

    monkeypatch.setattr(evaluation.M, "anncur", short)
    with pytest.raises(RuntimeError, match="anncur spent 19 CE calls on 5 queries at budget 4"):
        run_knn_evaluation(knn_run[0], tmp_path / "out", tiny_knn_config())


def test_ground_truth_is_the_teachers_exact_logits_and_is_reused(knn_run, monkeypatch):
    run, out, result = knn_run
    items = pd.read_parquet(out / "items.parquet")
    queries = pd.read_parquet(out / "queries.parquet")
    from graphrel.retrieval.knn.score_cache import cached_score_matrix

    truth, figures = cached_score_matrix(None, np.arange(5), 12, out / "scores" / "ground_truth",
                                         key=json.loads((out / "scores" / "ground_truth" / "manifest.json").read_text())["key"],
                                         chunk_pairs=16)
    assert figures["scored_now"] == 0  # every chunk cached (the scorer None is never called)
    expected = teacher_logits_of(run, queries["query"].iloc[0], items["product_text"])
    assert np.allclose(truth[0], expected, atol=1e-5)


def test_a_second_evaluation_scores_nothing_again(knn_run, monkeypatch):
    run, out, result = knn_run
    calls = []
    import graphrel.retrieval.knn.calls as calls_module

    real = calls_module.teacher_pair_scores

    def counting(*args, **kwargs):
        score = real(*args, **kwargs)
        return lambda q, i: calls.append(len(q)) or score(q, i)

    monkeypatch.setattr(calls_module, "teacher_pair_scores", counting)
    again = run_knn_evaluation(run, out, tiny_knn_config())
    assert calls == []
    recalls = lambda entry: {b: {k: v for k, v in c.items() if k.endswith("_recall")}  # noqa: E731
                             for b, c in entry.items() if b.startswith("B=")}
    assert recalls(again["knn"]["anncur"]) == recalls(result["knn"]["anncur"])


@pytest.mark.parametrize("option, value", [
    ("n_items", 1), ("n_items", -1), ("n_items", True), ("n_items", 2.5), ("test_queries", 0), ("items_per_query", 20), ("budgets", ()), ("budgets", (0,)),
    ("rounds", (1, 20)), ("report_rounds", 3), ("index_sources", ("tfidf",)), ("index_source", "random"),
    ("first_round", "random"), ("blends", (1.5,)), ("blend", 0.5), ("anchor_item_share", 1.0),
    ("learning_rate", 0.0), ("learning_rate", float("nan")), ("weight_decay", -1.0), ("epochs", 0),
    ("anchor_queries", (10,)), ("index_query_counts", (5,)), ("gate_init", float("inf")), ("threads", 0),
    ("top_ks", (1, 1)), ("budgets", (4, 20)), ("adacur_first_round", "tfidf"), ("chunk_pairs", True),
    ("enabled", "yes"),
])
def test_every_option_is_checked(option, value, knn_run, tmp_path):
    config = tiny_knn_config(**({"index_sources": ("dual_encoder",)} if option == "index_source" else {}),
                             **{option: value})
    with pytest.raises(GraphrelInputError, match=f"knn.{option}"):
        run_knn_evaluation(knn_run[0], tmp_path / "out", config)


def test_a_run_without_retrievers_is_refused(tmp_path, toy_run):
    with pytest.raises(GraphrelInputError, match="no such directory|teacher"):
        run_knn_evaluation(toy_run, tmp_path / "out", tiny_knn_config())


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphrel: error:"), err
    return err[0]


def test_knn_command_finds_the_exact_top_k_with_a_whole_catalogue_budget(knn_run, tmp_path):
    run, out, _ = knn_run
    path = tmp_path / "q.csv"
    pd.DataFrame({"qid": ["a", "b"], "query": ["garden hose", "cordless drill"]}).to_csv(path, index=False)
    target = tmp_path / "top.parquet"
    assert main(["knn", "--run-dir", str(run), "--index", str(out / "index" / "mf_ind"), "--queries", str(path),
                 "--k", "3", "--budget", "12", "--rounds", "3", "--output", str(target), "--query-id-column", "qid"]) == 0
    top = pd.read_parquet(target)
    assert list(top.columns) == ["query_id", "rank", "product_id", "score", "ce_calls"]
    assert top.query_id.tolist() == ["a"] * 3 + ["b"] * 3 and top.ce_calls.eq(12).all()
    from graphrel.retrieval.search.catalogue import Catalogue

    catalogue = Catalogue.load(run / "retrieval" / "retrievers" / "dual_encoder")
    exact = teacher_logits_of(run, "garden hose", catalogue.texts)
    order = np.argsort(-exact, kind="stable")[:3]
    assert top.product_id.iloc[:3].tolist() == list(catalogue.product_ids[order])  # 12 calls = exhaustive
    assert np.allclose(top.score.iloc[:3], exact[order], atol=1e-5)  # each row carries its exact CE score


def test_knn_command_with_a_small_budget_spends_exactly_it(knn_run, tmp_path):
    run, out, _ = knn_run
    path = tmp_path / "q.jsonl"
    pd.DataFrame({"query": ["paint", "door"]}).to_json(path, orient="records", lines=True)
    target = tmp_path / "top.parquet"
    assert main(["knn", "--run-dir", str(run), "--index", str(out / "index" / "mf_trns"), "--queries", str(path),
                 "--k", "2", "--budget", "5", "--rounds", "2", "--first-round", "bm25", "--output", str(target)]) == 0
    top = pd.read_parquet(target)
    assert len(top) == 4 and top.ce_calls.eq(5).all() and (top.groupby("query_id")["score"].diff().dropna() <= 0).all()


@pytest.mark.parametrize("content, args, message", [
    ("query\ndrill\n", ["--k", "10", "--budget", "5"], "budget (5 CE calls per query) is smaller than k (10)"),
    ("query\ndrill\n", ["--rounds", "0"], "--rounds: must be a whole number >= 1"),
    ("query\ndrill\n", ["--rounds", "9", "--budget", "6", "--k", "2"], "rounds (9) exceed the budget (6)"),
    ("query\ndrill\n\"  \"\n", [], "row 2: query is empty"),
    ("query\ndrill\n", ["--index", "/nonexistent/index"], "no such directory"),
    ("query\ndrill\n", ["--blend", "2"], "blend must be in [0, 1]"),
    ("query\ndrill\n", ["--output", "OUT.csv"], "output must end in .parquet"),
])
def test_knn_bad_input_is_one_line_exit_2_and_nothing_written(knn_run, tmp_path, capsys, content, args, message):
    run, out, _ = knn_run
    queries = tmp_path / "q.csv"
    queries.write_text(content)
    base = {"--run-dir": str(run), "--index": str(out / "index" / "mf_ind"), "--queries": str(queries),
            "--output": str(tmp_path / "top.parquet"), "--k": "2", "--budget": "6"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["knn"] + [x for pair in base.items() for x in pair]
    assert main(argv) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "top.parquet").exists() and not list(tmp_path.glob("*.parquet*"))


def test_knn_without_an_index_in_the_run_is_refused(knn_run, tmp_path, capsys):
    run, _, _ = knn_run
    queries = tmp_path / "q.csv"
    queries.write_text("query\ndrill\n")
    assert main(["knn", "--run-dir", str(run), "--queries", str(queries), "--output", str(tmp_path / "o.parquet")]) == 2
    assert "knn/index/mf_ind" in _error(capsys)
