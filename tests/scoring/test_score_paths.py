"""``graphrel score`` counts the rows each scoring path took and records them beside the output.

A real (tiny, random) k-order graph student with a text fallback scores a synthetic graph's
pairs, so ``StudentScorer.paths`` itself is counted; stand-in scorers cover the text-only
case, resume and the order in which the summary and the output are written.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import graphrel.scoring.score_parts as score_parts
import graphrel.scoring.streaming as streaming
from graphrel.scoring.score_parts import summary_path
from graphrel.scoring.streaming import score_file
from fake_cli import FakeScorer
from helpers import fake_model, pairs_csv, run_cli, score_until_crash  # noqa: F401

GRAPH_KEYS = ["graph", "text_fallback", "queries_not_in_graph", "products_not_in_graph"]
WORDS = ["drill", "bit", "hammer", "nail", "paint", "brush", "pipe", "valve", "door", "hinge"]


# ----------------------------------------------------------------------------- a tiny graph student


def graph_pairs(queries=12) -> pd.DataFrame:
    """Logged pairs of the graph: 3 products per query (query_id = query text)."""
    rng = np.random.default_rng(0)
    texts = [f"q{q} {' '.join(rng.choice(WORDS, 2, replace=False))}" for q in range(queries)]
    rows = [(text, f"P{product}") for text in texts for product in rng.choice(25, 3, replace=False)]
    frame = pd.DataFrame(rows, columns=["query", "product_id"]).drop_duplicates(ignore_index=True)
    frame["product_text"] = frame["product_id"].map(lambda p: f"{WORDS[int(p[1:]) % len(WORDS)]} set {p}")
    frame["query_id"] = frame["query"]
    frame["teacher_logit"] = rng.normal(0, 2, len(frame))
    frame["teacher_score"] = 1 / (1 + np.exp(-frame["teacher_logit"]))
    frame["label"] = 1.0
    frame["split"] = "train"
    return frame


@pytest.fixture(scope="module")
def graph_student():
    """A StudentScorer: a random k=2 student whose text fallback is a random text student."""
    from graphrel.backbone import load_tokenizer
    from graphrel.data.features import PairFeaturizer
    from graphrel.data.graph import build_graph
    from graphrel.data.tokens import WordpieceCache
    from graphrel.models.korder import KOrderStudent
    from graphrel.scoring.korder_scorer import StudentScorer

    def student(order, **options):
        return KOrderStudent(order=order, hidden=8, text_hidden=16, backbone_config={"vocab_size": 30522,
                                                                                    "hidden_size": 16}, **options)

    pairs = graph_pairs()
    torch.manual_seed(0)
    text = student(0, neighbourhood_statistics=False, text_fallback=False)
    model = student(2, text_fallback=True)
    model.load_text_student(text)
    featurizer = PairFeaturizer(build_graph(pairs), WordpieceCache(load_tokenizer()), cap=4,
                                metapaths=model.metapaths,
                                neighbourhood_statistics=model.hparams.get("neighbourhood_statistics", False))
    model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    assert model.eval().text_fallback is not None
    return StudentScorer(model=model, featurizer=featurizer, name="student_korder"), pairs


@pytest.fixture
def graph_model(graph_student, monkeypatch, tmp_path):
    """A model directory served by the tiny graph student."""
    scorer, pairs = graph_student
    monkeypatch.setattr(streaming, "_load_scorer", lambda model_dir: scorer)
    model = tmp_path / "model"
    model.mkdir()
    return model, pairs


def write_pairs(path, rows: pd.DataFrame):
    rows[["query", "product_id", "product_text"]].to_csv(path, index=False)
    return path


def expected_paths(pairs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, int]:
    """Counted from the logged pairs: the fallback takes a row whose query has no other
    product in the graph (a query not in it has none)."""
    edges = set(zip(pairs["query_id"], pairs["product_id"]))
    degree = pairs["query_id"].value_counts()
    other = [degree.get(q, 0) - ((q, p) in edges) for q, p in zip(rows["query"], rows["product_id"])]
    fallback = int(sum(n == 0 for n in other))
    return {"graph": len(rows) - fallback, "text_fallback": fallback,
            "queries_not_in_graph": int((~rows["query"].isin(pairs["query_id"])).sum()),
            "products_not_in_graph": int((~rows["product_id"].isin(pairs["product_id"])).sum())}


def test_a_query_not_in_the_graph_takes_the_text_fallback(graph_model, tmp_path):
    model, pairs = graph_model
    known = pairs.iloc[:1]
    new_query = pd.DataFrame({"query": ["a query nobody logged"], "product_id": [known["product_id"].iloc[0]],
                              "product_text": ["drill bit"]})
    source = write_pairs(tmp_path / "pairs.csv", pd.concat([known, new_query]))
    summary = score_file(model, source, tmp_path / "scores.parquet", chunk_size=10)
    assert summary.paths == {"graph": 1, "text_fallback": 1, "queries_not_in_graph": 1, "products_not_in_graph": 0}


def test_graph_student_paths_add_up_and_the_summary_file_holds_them(graph_model, tmp_path):
    model, pairs = graph_model
    extra = pd.DataFrame({"query": ["never seen", "never seen", pairs["query"].iloc[0], "also new"],
                          "product_id": [pairs["product_id"].iloc[0], "P-new", "P-new-2", "P-new-3"],
                          "product_text": ["drill", "hammer nail", "paint brush", "door hinge"]})
    rows = pd.concat([pairs, extra, pairs.iloc[::4]], ignore_index=True)  # + repeats of logged pairs
    source = write_pairs(tmp_path / "pairs.csv", rows)
    out = tmp_path / "scores.parquet"
    summary = score_file(model, source, out, chunk_size=7)

    expected = expected_paths(pairs, rows)
    assert summary.paths == expected and list(summary.paths) == GRAPH_KEYS
    assert summary.paths["graph"] + summary.paths["text_fallback"] == summary.rows == len(rows)
    assert expected["text_fallback"] >= 3 and expected["graph"] >= len(pairs)  # both paths taken
    assert expected["queries_not_in_graph"] == 3 and expected["products_not_in_graph"] == 3
    recorded = json.loads(summary_path(out).read_text())
    assert recorded == {"rows": summary.rows, "repeated_pairs": summary.repeated_pairs, "chunks": summary.chunks,
                        "reused_chunks": 0, "paths": summary.paths, "model": str(model.resolve()),
                        "input": str(source.resolve()), "calibrated": None}
    assert summary.repeated_pairs == len(pairs.iloc[::4]) and summary.chunks == -(-len(rows) // 7)


def test_cli_prints_the_paths_of_a_graph_student(graph_model, tmp_path, capsys):
    model, pairs = graph_model
    rows = pd.concat([pairs, pd.DataFrame({"query": ["never seen", "also new"], "product_id": ["P-new", "P1"],
                                           "product_text": ["drill", "hinge"]})], ignore_index=True)
    source = write_pairs(tmp_path / "pairs.csv", rows)
    out = tmp_path / "scores.parquet"
    code, stdout, err = run_cli(capsys, "score", "--model", str(model), "--input", str(source), "--output", str(out))
    assert code == 0, err
    paths = expected_paths(pairs, rows)
    assert paths == {"graph": 36, "text_fallback": 2, "queries_not_in_graph": 2, "products_not_in_graph": 1}
    assert stdout.splitlines() == [
        f"scored 38 pairs -> {out}",
        "paths: graph 36 rows, text fallback 2 rows; 2 rows with a query id not in the graph, "
        "1 with a product id not in the graph"]
    assert json.loads(summary_path(out).read_text())["paths"] == paths


# ----------------------------------------------------------------------------- stand-in scorers


class TextScorer(FakeScorer):
    """A text-only stand-in that counts its ``paths`` calls."""

    calls = 0

    def paths(self, query_ids, product_ids, queries=None):
        TextScorer.calls += 1
        return {"text": len(query_ids)}


@pytest.fixture
def text_model(fake_model, monkeypatch):
    monkeypatch.setattr(TextScorer, "calls", 0)
    monkeypatch.setattr(streaming, "_load_scorer", lambda model_dir: TextScorer())
    return fake_model


def test_cli_prints_the_text_path_with_thousands(text_model, tmp_path, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=1290)
    out = tmp_path / "scores.parquet"
    code, stdout, err = run_cli(capsys, "score", "--model", str(text_model), "--input", str(source), "--output",
                                str(out), "--chunk-size", "500")
    assert code == 0, err
    assert stdout.splitlines() == [f"scored 1,290 pairs -> {out}", "paths: text 1,290 rows"]
    assert json.loads(summary_path(out).read_text())["paths"] == {"text": 1290}


def test_resume_reuses_the_shards_path_counts(text_model, tmp_path, monkeypatch):
    source = pairs_csv(tmp_path / "pairs.csv", n=650)
    reference = score_file(text_model, source, tmp_path / "reference.parquet", chunk_size=100)
    assert reference.paths == {"text": 650} and TextScorer.calls == 7

    out = tmp_path / "scores.parquet"
    shards = json.loads(score_until_crash(monkeypatch, text_model, source, out, 4).read_text())["shards"]
    assert [e["paths"] for e in shards] == [{"text": 100}] * 4  # each shard's own counts
    assert not summary_path(out).exists()

    TextScorer.calls = 0
    summary = score_file(text_model, source, out, chunk_size=100, resume=True)
    assert (summary.reused_chunks, summary.paths) == (4, reference.paths)
    assert TextScorer.calls == 3  # reused shards' counts come from the manifest
    recorded = json.loads(summary_path(out).read_text())
    assert recorded["paths"] == {"text": 650} and recorded["reused_chunks"] == 4 and recorded["rows"] == 650


def test_a_shard_listed_without_path_counts_is_scored_again(text_model, tmp_path, monkeypatch):
    source = pairs_csv(tmp_path / "pairs.csv", n=300)
    out = tmp_path / "scores.parquet"
    manifest_path = score_until_crash(monkeypatch, text_model, source, out, 2)
    manifest = json.loads(manifest_path.read_text())
    del manifest["shards"][0]["paths"]  # as an older graphrel wrote it
    manifest_path.write_text(json.dumps(manifest))
    summary = score_file(text_model, source, out, chunk_size=100, resume=True)
    assert summary.reused_chunks == 1 and summary.paths == {"text": 300}


def test_summary_is_written_before_the_output_and_a_stale_one_replaced(text_model, tmp_path, monkeypatch):
    source = pairs_csv(tmp_path / "pairs.csv", n=30)
    out = tmp_path / "scores.parquet"
    summary_path(out).write_text('{"rows": 1}')  # left by an earlier run whose output is gone

    write_json = score_parts.write_json

    def full_disk(obj, path):  # the manifests still write; the summary cannot
        if str(path).endswith(".summary.json"):
            raise OSError(28, "No space left on device")
        write_json(obj, path)

    with monkeypatch.context() as patch:
        patch.setattr(score_parts, "write_json", full_disk)
        with pytest.raises(Exception, match="No space left"):
            score_file(text_model, source, out, chunk_size=8)
    assert not out.exists()  # no output without its summary
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    summary = score_file(text_model, source, out, chunk_size=8, resume=True)
    assert out.exists() and json.loads(summary_path(out).read_text())["rows"] == summary.rows == 30


def test_a_scorer_without_paths_records_none(fake_model, tmp_path, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=20)
    out = tmp_path / "scores.parquet"
    code, stdout, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source), "--output",
                                str(out))
    assert code == 0, err
    assert stdout == f"scored 20 pairs -> {out}"
    assert json.loads(summary_path(out).read_text())["paths"] == {}
