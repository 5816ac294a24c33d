import pandas as pd
import pytest

from graphrel.cli import main
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.serving.retriever import save_bm25_retriever

from .conftest import toy_pairs


@pytest.fixture
def bm25_dir(tmp_path):
    save_bm25_retriever(tmp_path / "bm25", catalogue=Catalogue.from_pairs(toy_pairs()))
    return tmp_path / "bm25"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphrel: error:"), err
    return err[0]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_retrieve_writes_k_rows_per_query(tmp_path, bm25_dir, suffix):
    frame = pd.DataFrame({"qid": ["a", "b"], "query": ["garden hose", "paint brush"]})
    path = tmp_path / f"q{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[suffix]()
    out = tmp_path / "top.parquet"
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(path), "--k", "3",
                 "--output", str(out), "--query-id-column", "qid"]) == 0
    top = pd.read_parquet(out)
    assert list(top.columns) == ["query_id", "rank", "product_id", "score"]
    assert top.query_id.tolist() == ["a"] * 3 + ["b"] * 3 and top["rank"].tolist() == [1, 2, 3] * 2
    assert top.product_id.iloc[0] in {"p02", "p06"} and top.product_id.iloc[3] == "p03"


def test_retrieve_trec_output_and_clamped_k(tmp_path, bm25_dir, capsys):
    path = tmp_path / "q.csv"
    pd.DataFrame({"query": ["door"]}).to_csv(path, index=False)
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(path), "--k", "500",
                 "--output", str(tmp_path / "top.trec")]) == 0
    lines = (tmp_path / "top.trec").read_text().splitlines()
    assert len(lines) == 12 and lines[0].startswith("door Q0 ") and lines[0].endswith(" bm25")
    assert "larger than the catalogue" in capsys.readouterr().err


@pytest.mark.parametrize("case, content, args, message", [
    ("empty query", "query\ndrill\n\"  \"\n", [], "row 2: query is empty"),
    ("missing column", "text\ndrill\n", [], "no column 'query'"),
    ("k zero", "query\ndrill\n", ["--k", "0"], "--k: must be a whole number >= 1"),
    ("k negative", "query\ndrill\n", ["--k", "-5"], "must be a whole number >= 1"),
    ("k not whole", "query\ndrill\n", ["--k", "2.5"], "must be a whole number >= 1"),
    ("header only", "query\n", [], "no queries"),
    ("unknown model", "query\ndrill\n", ["--model", "/nonexistent/retriever"], "no such directory"),
    ("bad suffix", "query\ndrill\n", ["--output", "OUT.csv"], "output must end in .parquet or .trec"),
    ("unknown index", "query\ndrill\n", ["--index", "hnws"], "--index: invalid choice: 'hnws'"),
    ("ef search zero", "query\ndrill\n", ["--index", "hnsw", "--hnsw-ef-search", "0"],
     "--hnsw-ef-search: must be a whole number >= 1"),
    ("ef search not whole", "query\ndrill\n", ["--index", "hnsw", "--hnsw-ef-search", "1e3"],
     "must be a whole number >= 1"),
    ("ef search without hnsw", "query\ndrill\n", ["--hnsw-ef-search", "64"], "pass --index hnsw"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, bm25_dir, capsys, case, content, args, message):
    queries = tmp_path / "q.csv"
    queries.write_text(content)
    argv = ["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--output", str(tmp_path / "o.parquet")]
    for i in range(0, len(args), 2):  # override or add options
        if args[i] in argv:
            argv[argv.index(args[i]) + 1] = args[i + 1] if args[i] != "--output" else str(tmp_path / args[i + 1])
        else:
            argv += args[i:i + 2]
    assert main(argv) == 2
    assert message in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25", "q.csv"]


def test_an_existing_output_is_refused_and_kept(tmp_path, bm25_dir, capsys):
    queries = tmp_path / "q.csv"
    queries.write_text("query\ndrill\n")
    out = tmp_path / "o.parquet"
    out.write_text("precious")
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--output", str(out)]) == 2
    assert "already exists" in _error(capsys) and out.read_text() == "precious"


def test_missing_queries_file(tmp_path, bm25_dir, capsys):
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(tmp_path / "none.csv"),
                 "--output", str(tmp_path / "o.parquet")]) == 2
    assert "queries file not found" in _error(capsys)


def test_rerank_orders_the_top_k_by_the_teacher(tmp_path, bm25_dir):
    import numpy as np

    from graphrel.models.teacher import CrossEncoderTeacher
    from graphrel.scoring.teacher_labelling import teacher_logits

    from .conftest import PRODUCTS, TINY

    teacher = CrossEncoderTeacher(backbone_config=TINY)
    teacher.save_pretrained(tmp_path / "teacher")
    queries = tmp_path / "q.csv"
    queries.write_text("query\ngarden hose\ndoor\n")
    plain, ranked = tmp_path / "plain.parquet", tmp_path / "ranked.parquet"
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--k", "5", "--output", str(plain)]) == 0
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--k", "5", "--output", str(ranked),
                 "--rerank", str(tmp_path / "teacher")]) == 0
    before, after = pd.read_parquet(plain), pd.read_parquet(ranked)
    assert list(after.columns) == ["query_id", "rank", "product_id", "score", "retrieval_score"]
    for query in ("garden hose", "door"):
        b, a = before[before.query_id == query], after[after.query_id == query]
        assert set(a.product_id) == set(b.product_id) and a["rank"].tolist() == [1, 2, 3, 4, 5]
        logits = teacher_logits(teacher, [query] * 5, [PRODUCTS[p] for p in a.product_id], progress=False)
        assert np.allclose(a.score, logits, atol=1e-5) and np.all(np.diff(logits) <= 1e-6)


def test_rerank_with_an_unknown_model_is_refused(tmp_path, bm25_dir, capsys):
    queries = tmp_path / "q.csv"
    queries.write_text("query\ndoor\n")
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--output",
                 str(tmp_path / "o.parquet"), "--rerank", str(tmp_path)]) == 2
    assert "not a pair model directory" in _error(capsys) and not (tmp_path / "o.parquet").exists()


def test_index_hnsw_returns_the_exact_top_k_on_a_tiny_catalogue(tmp_path, tiny_encoder_dir):
    from graphrel.retrieval.encoding.encoders import encode, load_encoder
    from graphrel.retrieval.serving.retriever import save_dense_retriever

    catalogue = Catalogue.from_pairs(toy_pairs())
    encoder = load_encoder(tiny_encoder_dir)
    save_dense_retriever(tmp_path / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="tiny")
    queries = tmp_path / "q.csv"
    queries.write_text("query\ngarden hose\ndoor\ncordless drill\n")
    runs = {}
    for name, extra in (("exact", []), ("hnsw", ["--index", "hnsw", "--hnsw-ef-search", "64"])):
        out = tmp_path / f"{name}.parquet"
        assert main(["retrieve", "--model", str(tmp_path / "dense"), "--queries", str(queries), "--k", "4",
                     "--output", str(out), *extra]) == 0
        runs[name] = pd.read_parquet(out)
    assert runs["hnsw"].product_id.tolist() == runs["exact"].product_id.tolist()


def test_an_interrupted_run_resumes_from_its_finished_chunks(tmp_path, bm25_dir, capsys, monkeypatch):
    """Killed after its first chunk: no output, the chunk kept; a new run without --resume is
    refused; --resume retrieves only the rest and writes what an uninterrupted run writes."""
    from graphrel.retrieval.serving.retriever import Retriever

    path = tmp_path / "q.csv"
    pd.DataFrame({"query": ["garden hose", "paint brush", "door", "drill", "led light"]}).to_csv(path, index=False)
    base = ["retrieve", "--model", str(bm25_dir), "--queries", str(path), "--k", "3", "--chunk-size", "2"]
    assert main([*base, "--output", str(tmp_path / "whole.parquet")]) == 0
    searched, real_search = [], Retriever.search

    def dies_on_the_second_chunk(self, queries, k, **kwargs):
        searched.append(list(queries))
        if len(searched) == 2:
            raise KeyboardInterrupt
        return real_search(self, queries, k, **kwargs)

    out = tmp_path / "top.parquet"
    monkeypatch.setattr(Retriever, "search", dies_on_the_second_chunk)
    assert main([*base, "--output", str(out)]) not in (0, 2)  # interrupted
    assert not out.exists() and (tmp_path / "top.parquet.parts" / "part-00000.parquet").is_file()
    capsys.readouterr()
    assert main([*base, "--output", str(out)]) == 2 and "--resume" in _error(capsys)
    searched.clear()
    monkeypatch.setattr(Retriever, "search", real_search)
    assert main([*base, "--output", str(out), "--resume"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "whole.parquet"))
    assert not (tmp_path / "top.parquet.parts").exists()
    # a resume with other options is refused, the parts kept
    monkeypatch.setattr(Retriever, "search", dies_on_the_second_chunk)
    assert main([*base, "--output", str(tmp_path / "other.parquet")]) not in (0, 2)
    monkeypatch.setattr(Retriever, "search", real_search)
    capsys.readouterr()
    assert main([*base[:-2], "--chunk-size", "3", "--output", str(tmp_path / "other.parquet"), "--resume"]) == 2
    assert "other queries, retrievers or options" in _error(capsys)
    assert (tmp_path / "other.parquet.parts").is_dir() and not (tmp_path / "other.parquet").exists()


def _dense_dir(folder, encoder_dir):
    from graphrel.retrieval.encoding.encoders import encode, load_encoder
    from graphrel.retrieval.serving.retriever import save_dense_retriever

    catalogue = Catalogue.from_pairs(toy_pairs())
    encoder = load_encoder(encoder_dir)
    save_dense_retriever(folder / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="tiny")
    return folder / "dense"


def _teacher_dir(folder):
    from graphrel.models.teacher import CrossEncoderTeacher

    from .conftest import TINY

    CrossEncoderTeacher(backbone_config=TINY).save_pretrained(folder / "teacher")
    return folder / "teacher"


@pytest.mark.parametrize("mode", ["plain", "fusion", "rerank", "hnsw"])
def test_a_repeated_query_id_is_refused_in_every_mode(tmp_path, bm25_dir, tiny_encoder_dir, capsys, mode):
    """Before: --rerank merged the two queries' lists, --fusion dropped one, exit 0."""
    models = tmp_path / "models"
    models.mkdir()
    model, extra = str(bm25_dir), []
    if mode == "fusion":
        extra = ["--fusion", "rrf", "--model", str(_dense_dir(models, tiny_encoder_dir))]
    elif mode == "rerank":
        extra = ["--rerank", str(_teacher_dir(models))]
    elif mode == "hnsw":
        model, extra = str(_dense_dir(models, tiny_encoder_dir)), ["--index", "hnsw"]
    queries = tmp_path / "q.csv"
    queries.write_text("qid,query\nq1,garden hose\nq2,door\nq1,paint brush\n")
    out = tmp_path / "o.parquet"
    capsys.readouterr()  # the models' loading bars
    assert main(["retrieve", "--model", model, "--queries", str(queries), "--k", "3", "--query-id-column", "qid",
                 "--output", str(out), *extra]) == 2
    line = _error(capsys)
    assert f"{queries}: query id 'q1' appears on rows 1 and 3" in line
    assert "give each query its own id" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25", "models", "q.csv"]  # no output, no parts


@pytest.mark.parametrize("content, message, fix", [
    ("query\ngarden hose\ndoor\ngarden hose\n", "query 'garden hose' appears on rows 1 and 3; without "
     "--query-id-column the query text is the id", "de-duplicate the queries"),
    ("qid,query\nq1,door\nq1,door\n", "query id 'q1' appears on rows 1 and 2", "give each query its own id"),
    ("qid,query\n" + "".join(f"q{i},text {i}\n" for i in range(5)) * 2 + "q0,text\nq0,text\n",
     "query id 'q0' appears on rows 1, 6, 11 and 1 more row, 'q1' on rows 2 and 7, 'q2' on rows 3 and 8, "
     "and 2 more query ids repeat", "give each query its own id"),
])
def test_repeated_query_texts_and_ids_are_refused_naming_the_rows(tmp_path, bm25_dir, capsys, content, message, fix):
    queries = tmp_path / "q.csv"
    queries.write_text(content)
    id_column = ["--query-id-column", "qid"] if content.startswith("qid") else []
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(queries), "--output",
                 str(tmp_path / "o.parquet"), *id_column]) == 2
    line = _error(capsys)
    assert message in line and fix in line and str(queries) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25", "q.csv"]


@pytest.mark.parametrize("kind", ["int64", "decimal", "whole float"])
def test_numeric_query_ids_are_read_as_their_digits(tmp_path, bm25_dir, kind):
    """Whole numbers (a Parquet long or decimal(38, 18), a JSON float) become their digits,
    as graphrel.spark.retrieve writes them (tests/spark/test_spark_retrieval.py)."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [12300000000, 7]
    if kind == "whole float":
        path = tmp_path / "q.jsonl"
        path.write_text('{"qid": 12300000000.0, "query": "door"}\n{"qid": 7.0, "query": "drill"}\n')
    else:
        path = tmp_path / "q.parquet"
        ids = pa.array(values, pa.int64()) if kind == "int64" else \
            pa.array([decimal.Decimal(v) for v in values], pa.decimal128(38, 18))
        pq.write_table(pa.table({"qid": ids, "query": ["door", "drill"]}), path)
    out = tmp_path / "top.parquet"
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(path), "--k", "2", "--output", str(out),
                 "--query-id-column", "qid"]) == 0
    assert pd.read_parquet(out).query_id.tolist() == ["12300000000"] * 2 + ["7"] * 2


def test_a_query_id_with_a_fraction_is_refused(tmp_path, bm25_dir, capsys):
    path = tmp_path / "q.jsonl"
    path.write_text('{"qid": 1.0, "query": "door"}\n{"qid": 2.5, "query": "drill"}\n')
    assert main(["retrieve", "--model", str(bm25_dir), "--queries", str(path), "--output",
                 str(tmp_path / "o.parquet"), "--query-id-column", "qid"]) == 2
    assert "row 2: qid is not text or a whole number (2.5)" in _error(capsys)
