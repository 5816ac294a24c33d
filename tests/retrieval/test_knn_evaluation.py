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
    from graphrel.retrieval.catalogue import Catalogue
    from graphrel.retrieval.encoders import encode, load_encoder
    from graphrel.retrieval.retriever import save_bm25_retriever, save_dense_retriever

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
    ("n_items", 1), ("test_queries", 0), ("items_per_query", 20), ("budgets", ()), ("budgets", (0,)),
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
    from graphrel.retrieval.catalogue import Catalogue

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
