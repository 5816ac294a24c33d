import json

import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.stage import ABLATIONS, RetrievalConfig, run_retrieval

KEYS = {"recall@10", "recall@100", "recall@1000", "ndcg@10", "query_encodings_per_second", "queries_per_second",
        "parameters", "teacher", "judged_only", "intervals"}
#: Validation queries of the toy run (the hybrid's fusion is chosen on them): relevant products.
VAL_QUERIES = {"cordless drill kit": ["p07", "p01"], "hose": ["p02", "p11", "p06"], "door knob": ["p09"],
               "light bulb": ["p05"]}


def assert_intervals(entry: dict, keys, name) -> None:
    """``entry["intervals"]`` holds ``keys``, each interval in [0, 1] and around the main figure
    (the bootstrap's mean of per-query figures resamples their mean)."""
    assert set(entry["intervals"]) == set(keys), name
    for key in keys:
        low, high = entry["intervals"][key]
        assert 0 <= low <= entry[key] + 1e-12 and entry[key] - 1e-12 <= high <= 1, (name, key)


def assert_judged_only(entry: dict, keys, name) -> None:
    """``entry["judged_only"]`` holds ``keys`` with intervals, each at least the main figure (the
    toy catalogue's unjudged products only count against the main figures)."""
    figures = entry["judged_only"]
    assert set(figures) == {*keys, "intervals"} and set(figures["intervals"]) == set(keys), name
    for key in keys:
        low, high = figures["intervals"][key]
        assert 0 <= low <= high <= 1 and 0 <= figures[key] <= 1, (name, key)
        assert figures[key] >= entry[key] - 1e-12, (name, key)


def tiny_config(encoder_dir, **overrides):
    """The tiny stage with every study on (the study preset's ablation, index comparison, Blend and
    Match, teacher geometry), so one stage run covers every retriever and table."""
    values = dict(ablation=True, index_comparison=True, blend_and_match=True, backbone=str(encoder_dir), encode_batch_size=8, max_train_examples=50, hard_negatives=2,
                  negative_depth=6, dual_encoder_steps=10, dual_encoder_batch_size=4, dual_encoder_learning_rate=1e-3,
                  student_dim=8, student_steps=10, matching_batch_size=4, student_batch_size=4, timing_repeats=1, warmup_queries=2, threads=1,
                  dual_pooling_steps=3, dual_pooling_batch_size=4, dual_pooling_train_pairs=12,
                  dual_pooling_test_pairs=10)
    values.update(overrides)
    return RetrievalConfig(**values)


def add_validation_queries(run_dir) -> None:
    """Give the toy run a ``val`` split: :data:`VAL_QUERIES`, each with one judged non-relevant product."""
    import numpy as np

    from .conftest import PRODUCTS

    pairs = pd.read_parquet(run_dir / "pairs.parquet")
    rows = [(q, p, 1.0) for q, ps in VAL_QUERIES.items() for p in ps]
    rows += [(q, next(p for p in sorted(PRODUCTS, reverse=True) if p not in ps), 0.25) for q, ps in VAL_QUERIES.items()]
    val = pd.DataFrame(rows, columns=["query", "product_id", "label"]).assign(split="val")
    val["query_id"], val["product_text"] = val["query"], val["product_id"].map(PRODUCTS)
    val["relevance"] = 1 + 2 * val["label"]
    val.insert(0, "row_id", np.arange(len(pairs), len(pairs) + len(val)))
    pd.concat([pairs, val[pairs.columns]], ignore_index=True).to_parquet(run_dir / "pairs.parquet", index=False)
    scores = pd.read_parquet(run_dir / "teacher_scores.parquet")
    extra = val[["query_id", "product_id"]].assign(teacher_logit=val["label"] * 2 - 1)
    extra["teacher_score"] = 1 / (1 + np.exp(-extra["teacher_logit"]))
    pd.concat([scores, extra], ignore_index=True).to_parquet(run_dir / "teacher_scores.parquet", index=False)


@pytest.fixture
def run_with_teacher(toy_run):
    from graphrel.models.teacher import CrossEncoderTeacher

    from .conftest import TINY

    CrossEncoderTeacher(backbone_config=TINY).save_pretrained(toy_run / "teacher")
    add_validation_queries(toy_run)
    return toy_run


def test_stage_writes_every_retriever_metrics_and_report(run_with_teacher, tmp_path_factory, tiny_encoder_dir,
                                                         monkeypatch):
    out = tmp_path_factory.mktemp("stage") / "retrieval"
    before = sorted(p.name for p in run_with_teacher.iterdir())
    result = run_retrieval(run_with_teacher, out, tiny_config(tiny_encoder_dir))
    entries = result["retrieval"]
    names = ["bm25", "minilm_zero_shot", "dual_encoder", "embeddistill", *ABLATIONS, "embeddistill_symmetric",
             "xmc", "blend_and_match",
             "blend_and_match_k3", "blend_and_match_k30", "blend_and_match_w0.1", "blend_and_match_w2",
             "dual_encoder_xmc_kd", "hybrid", "fusion_rrf", "fusion_combsum"]
    assert list(entries) == names
    for name, entry in entries.items():
        assert KEYS <= set(entry), name
        assert all(0 <= entry[k] <= 1 for k in ("recall@10", "recall@100", "recall@1000", "ndcg@10"))
        assert_judged_only(entry, ("recall@10", "recall@100", "recall@1000", "ndcg@10", "precision@10"), name)
        assert_intervals(entry, ("recall@10", "recall@100", "ndcg@10"), name)
        assert (out / "runs" / f"{name}.trec").is_file()
        assert name.startswith("fusion_") or (out / "retrievers" / name / "manifest.json").is_file()
    check_hybrid(out, entries, tiny_config(tiny_encoder_dir))
    assert entries["bm25"]["recall@1000"] == pytest.approx(1.0)  # the toy catalogue is smaller than 1000
    assert entries["embeddistill"]["teacher"] == "dual_encoder" and entries["bm25"]["teacher"] is None
    assert entries["embeddistill"]["parameters"] < entries["dual_encoder"]["parameters"]
    import numpy as np  # the symmetric student encodes the products itself; the asymmetric keeps the teacher's

    own = {n: np.load(out / "retrievers" / n / "product_embeddings.npy") for n in ("dual_encoder", "embeddistill",
                                                                                  "embeddistill_symmetric")}
    assert np.array_equal(own["embeddistill"], own["dual_encoder"])
    assert own["embeddistill_symmetric"].shape[1] == own["dual_encoder"].shape[1]
    assert not np.allclose(own["embeddistill_symmetric"], own["dual_encoder"])
    saved = json.loads((out / "retrieval.json").read_text())
    assert set(saved) == {"retrieval", "two_stage", "index_comparison", "teacher_geometry", "evaluation"}
    comparison = result["index_comparison"]  # HNSW on the toy catalogue finds exact search's top 10
    assert [s["ef_search"] for s in comparison["hnsw"]["searches"]] == [16, 64, 128, 256]
    assert all(s["overlap@10"] == pytest.approx(1.0) for s in comparison["hnsw"]["searches"])
    assert saved["evaluation"]["test_queries"] == 5
    geometry = result["teacher_geometry"]  # the dual-pooling scorer, judged on test pairs
    assert geometry["test_pairs"] == 10 and geometry["train_pairs"] == 12 and -1 <= geometry["spearman_with_teacher"] <= 1
    # two-stage: the dual encoder's top k (clamped to the 12 products) re-ranked by the run's teacher
    two = result["two_stage"]
    assert two["retriever"] == "dual_encoder" and two["depth"] == 12 and list(two["rerankers"]) == ["teacher"]
    assert two["first_stage"]["recall@depth"] == pytest.approx(1.0)  # every product is retrieved
    for name, entry in {"first stage": two["first_stage"], **two["rerankers"]}.items():
        assert_judged_only(entry, ("ndcg@10", "recall@10"), name)
        assert_intervals(entry, ("ndcg@10", "recall@10"), name)
    assert saved["retrieval"]["bm25"]["judged_only"] == entries["bm25"]["judged_only"]
    reranked = pd.read_parquet(out / "two_stage" / "dual_encoder+teacher.parquet")
    assert len(reranked) == 5 * 12 and reranked.groupby("query_id")["product_id"].nunique().eq(12).all()
    assert (reranked.groupby("query_id")["score"].diff().dropna() <= 0).all()  # ordered by the teacher's logit
    report = (out / "retrieval.md").read_text()
    assert "Unjudged products count as misses" in report and "| embeddistill | dual_encoder |" in report
    assert "### Two-stage" in report and "| dual_encoder top 12 -> teacher |" in report
    assert "### Teacher geometry" in report and "### Index: exact search against HNSW" in report
    assert "### Judged-only figures" in report and "| fusion_rrf |" in report.split("### Judged-only figures")[1]
    assert "judged-only NDCG@10 | judged-only recall@10" in report
    assert "### Hybrid lexical + dense retrieval" in report and "| hybrid minus | recall@100 | NDCG@10 |" in report
    assert f"| hybrid |  | {entries['hybrid']['recall@10']:.3f} [" in report  # the main figures' intervals
    assert sorted(p.name for p in run_with_teacher.iterdir()) == before  # the run directory is read only

    # a second call reuses every retriever (no training: the trainers would fail)
    import graphrel.retrieval.stage as stage

    monkeypatch.setattr("graphrel.retrieval.students.training.fine_tune_dual_encoder", None)
    monkeypatch.setattr("graphrel.retrieval.students.embeddistill.train_asymmetric_student", None)
    monkeypatch.setattr("graphrel.retrieval.students.embeddistill_symmetric.train_symmetric_student", None)
    monkeypatch.setattr("graphrel.retrieval.blend_stage.train_variant", None)
    monkeypatch.setattr("graphrel.retrieval.two_stage.load_pair_scorer", None)  # the re-ranked lists are cached
    monkeypatch.setattr("graphrel.retrieval.students.dual_pooling.train_dual_pooling_scorer", None)
    again = stage.run_retrieval(run_with_teacher, out, tiny_config(tiny_encoder_dir))
    assert again["retrieval"]["embeddistill"]["recall@100"] == entries["embeddistill"]["recall@100"]
    assert again["two_stage"]["rerankers"]["teacher"]["ndcg@10"] == two["rerankers"]["teacher"]["ndcg@10"]
    assert again["two_stage"]["rerankers"]["teacher"]["judged_only"] == two["rerankers"]["teacher"]["judged_only"]
    assert again["retrieval"]["fusion_rrf"]["judged_only"] == entries["fusion_rrf"]["judged_only"]
    assert again["retrieval"]["hybrid"]["differences"] == entries["hybrid"]["differences"]  # the hybrid reused


def check_hybrid(out, entries, config) -> None:
    """The stage's hybrid: chosen on the validation queries (the choice is reproduced from the
    inputs' validation runs alone), saved, served by ``Retriever.load`` with its test ranking."""
    import numpy as np

    from graphrel.retrieval.measures.evaluation import read_trec_run
    from graphrel.retrieval.serving.hybrid import HybridRetriever, choose_setting, read_config
    from graphrel.retrieval.serving.retriever import Retriever

    entry, saved = entries["hybrid"], read_config(out / "retrievers" / "hybrid")
    assert saved["format"] == "graphrel-hybrid/1" and saved["inputs"] == ["bm25", "embeddistill_symmetric"]
    assert saved["validation"]["queries"] == len(VAL_QUERIES) and len(saved["grid"]) == 28
    assert entry["setting"] == {k: saved[k] for k in ("inputs", "method", "norm", "weight", "rrf_k", "depth",
                                                       "validation")}
    val_ids = sorted(VAL_QUERIES)
    qrels = {q: set(ps) for q, ps in VAL_QUERIES.items()}
    runs = [Retriever.load(out / "retrievers" / n).search(val_ids, 1000, query_ids=val_ids) for n in saved["inputs"]]
    setting, grid = choose_setting(*runs, qrels, rrf_k=config.fusion_rrf_k)
    assert grid == saved["grid"] and {k: saved[k] for k in setting} == setting
    assert saved["validation"]["inputs"]["bm25"]["recall@100"] == pytest.approx(1.0)  # 12 products: all found
    # differences: hybrid minus each input, paired, with intervals around them
    assert set(entry["differences"]) == {"bm25", "embeddistill_symmetric"}
    for name, figures in entry["differences"].items():
        for key in ("recall@100", "ndcg@10"):
            d = figures[key]
            assert d["difference"] == pytest.approx(entry[key] - entries[name][key], abs=1e-9), (name, key)
            assert d["interval"][0] <= d["difference"] + 1e-12 and d["difference"] - 1e-12 <= d["interval"][1]
    # serving: the saved hybrid, loaded as any retriever, reproduces the stage's test ranking exactly
    hybrid = Retriever.load(out / "retrievers" / "hybrid")
    assert isinstance(hybrid, HybridRetriever)
    test_ids = sorted({"drill", "garden hose", "paint", "door", "led light"})
    served = hybrid.search(test_ids, 1000, query_ids=test_ids)
    written = read_trec_run(out / "runs" / "hybrid.trec", test_ids)
    assert served[["query_id", "rank", "product_id"]].equals(written[["query_id", "rank", "product_id"]])
    assert np.allclose(served["score"], written["score"], atol=1e-6)


def test_the_hybrid_takes_the_best_dense_retriever_on_validation_with_auto(run_with_teacher, tmp_path,
                                                                           tiny_encoder_dir, monkeypatch):
    import graphrel.retrieval.serving.hybrid as hybrid
    from graphrel.retrieval.builders import build_hybrid
    from graphrel.retrieval.serving.hybrid import read_config

    seen = []  # the queries every choice of a fusion is made on

    def spy(lexical, dense, qrels, **kwargs):
        seen.append((set(lexical["query_id"]) | set(dense["query_id"]), set(qrels)))
        return choose(lexical, dense, qrels, **kwargs)

    choose = hybrid.choose_setting
    monkeypatch.setattr(hybrid, "choose_setting", spy)

    out = tmp_path / "retrieval"
    config = tiny_config(tiny_encoder_dir, ablation=False, symmetric_student=False, blend_and_match=False, hybrid_dense="dual_encoder",
                         index_comparison=False, dual_pooling_steps=0)
    run_retrieval(run_with_teacher, out, config, pair_models={})
    pairs = pd.read_parquet(run_with_teacher / "pairs.parquet").assign(product_id=lambda f: f.product_id.astype(str))
    auto = tiny_config(tiny_encoder_dir, hybrid_dense="auto", ablation=False)
    assert build_hybrid(pairs, "catalogue", auto, 0.75, out, ["bm25", "minilm_zero_shot", "dual_encoder",
                                                              "embeddistill"]) == "hybrid"
    saved = read_config(out / "retrievers" / "hybrid")
    figures = saved["validation"]["inputs"]
    assert set(figures) == {"bm25", "dual_encoder", "embeddistill"}  # both dense candidates measured
    best = max(["dual_encoder", "embeddistill"], key=lambda n: (figures[n]["recall@100"], figures[n]["ndcg@10"]))
    assert saved["inputs"] == ["bm25", best]
    assert len(seen) == 2 and all(runs == qrels == set(VAL_QUERIES) for runs, qrels in seen)  # never a test query
    with pytest.raises(GraphrelInputError, match="hybrid_dense"):
        run_retrieval(run_with_teacher, tmp_path / "bad", tiny_config(tiny_encoder_dir, hybrid_dense="nope"))


def test_bulk_encoding_falls_back_to_float32_when_bfloat16_disagrees(run_with_teacher, tmp_path, tiny_encoder_dir,
                                                                     monkeypatch, caplog):
    import numpy as np

    import graphrel.retrieval.encoding.encoders as encoders
    from graphrel.retrieval.encoding.encoders import encode, load_encoder

    small = dict(ablation=False, symmetric_student=False, blend_and_match=False, hybrid=False,
                 index_comparison=False, dual_pooling_steps=0, encode_precision="bfloat16")
    catalogue_texts = lambda out: pd.read_parquet(out / "catalogue.parquet")["product_text"].tolist()  # noqa: E731
    zero_shot = lambda out: np.load(out / "cache" / "minilm_zero_shot.npy")  # noqa: E731
    run_retrieval(run_with_teacher, tmp_path / "bf16", tiny_config(tiny_encoder_dir, **small), pair_models={})
    model = load_encoder(tiny_encoder_dir)
    texts = catalogue_texts(tmp_path / "bf16")
    np.testing.assert_array_equal(zero_shot(tmp_path / "bf16"),
                                  encode(model, texts, batch_size=8, precision="bfloat16"))
    caplog.clear()
    with caplog.at_level("INFO", logger="graphrel"):  # cached in bfloat16: the check is not run again
        run_retrieval(run_with_teacher, tmp_path / "bf16", tiny_config(tiny_encoder_dir, **small), pair_models={})
    assert "lowest cosine" not in caplog.text
    monkeypatch.setattr(encoders, "MIN_COSINE", 1.5)  # nothing agrees that well
    with caplog.at_level("WARNING", logger="graphrel"):
        run_retrieval(run_with_teacher, tmp_path / "fp32", tiny_config(tiny_encoder_dir, **small), pair_models={})
    assert "bfloat16 encoding falls back to float32" in caplog.text
    np.testing.assert_array_equal(zero_shot(tmp_path / "fp32"), encode(model, texts, batch_size=8))


def test_training_targets_in_bfloat16_only_when_they_agree(run_with_teacher, tmp_path, tiny_encoder_dir, monkeypatch,
                                                           caplog):
    import json

    import numpy as np

    import graphrel.retrieval.encoding.encoders as encoders

    small = dict(ablation=False, symmetric_student=False, blend_and_match=False, hybrid=False,
                 index_comparison=False, dual_pooling_steps=0, target_precision="bfloat16")
    manifest = lambda out: json.loads((out / "retrievers" / "embeddistill" / "manifest.json").read_text())  # noqa: E731
    targets = lambda out: np.load(out / "cache" / "matching_queries.npy")  # noqa: E731
    with caplog.at_level("INFO", logger="graphrel"):
        run_retrieval(run_with_teacher, tmp_path / "bf16", tiny_config(tiny_encoder_dir, **small), pair_models={})
    assert "target encoding in bfloat16" in caplog.text
    assert manifest(tmp_path / "bf16")["target_precision"] == "bfloat16"
    stored = targets(tmp_path / "bf16")
    monkeypatch.setattr(encoders, "MIN_COSINE", 1.5)  # nothing agrees that well
    with caplog.at_level("WARNING", logger="graphrel"):
        run_retrieval(run_with_teacher, tmp_path / "fp32", tiny_config(tiny_encoder_dir, **small), pair_models={})
    assert "bfloat16 target encoding falls back to float32" in caplog.text
    assert manifest(tmp_path / "fp32")["target_precision"] == "float32"
    assert manifest(tmp_path / "fp32")["build_key"] != manifest(tmp_path / "bf16")["build_key"]
    assert targets(tmp_path / "fp32").shape == stored.shape and not np.array_equal(targets(tmp_path / "fp32"), stored)


def test_training_negatives_are_scored_on_the_runs_teacher_backend(run_with_teacher, tmp_path, tiny_encoder_dir,
                                                                  monkeypatch):
    import json

    import graphrel.scoring.teacher_backends as backends
    from graphrel.scoring.teacher_backends import RECORD

    asked = []
    real = backends.teacher_forward
    monkeypatch.setattr(backends, "teacher_forward",
                        lambda teacher, backend: asked.append(backend) or real(teacher, backend))
    small = dict(ablation=False, symmetric_student=False, blend_and_match=False, hybrid=False,
                 index_comparison=False, dual_pooling_steps=0)
    run_retrieval(run_with_teacher, tmp_path / "fp32", tiny_config(tiny_encoder_dir, **small), pair_models={})
    (run_with_teacher / RECORD).write_text(json.dumps({"backend": "bf16"}))  # the run's scores came from bf16
    run_retrieval(run_with_teacher, tmp_path / "bf16", tiny_config(tiny_encoder_dir, **small), pair_models={})
    assert asked == ["fp32", "bf16"]
    keys = [(tmp_path / name / "training_examples.key").read_text() for name in ("fp32", "bf16")]
    assert keys[0] != keys[1]  # examples scored on another backend are not reused


def test_the_catalogue_encoding_is_keyed_by_the_encoders_files(tmp_path, tiny_encoder_dir):
    import shutil

    from graphrel.retrieval.builders import _build_baselines
    from graphrel.retrieval.search.catalogue import Catalogue

    from .conftest import toy_pairs

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, encoder)
    catalogue = Catalogue.from_pairs(toy_pairs())
    config = tiny_config(encoder)
    (tmp_path / "out" / "cache").mkdir(parents=True)
    first = _build_baselines(catalogue, "catalogue", config, tmp_path / "out")[1]
    assert _build_baselines(catalogue, "catalogue", config, tmp_path / "out")[1] == first  # same files, same key
    (encoder / "README.md").write_text("another release of the same encoder\n")
    second = _build_baselines(catalogue, "catalogue", config, tmp_path / "out")[1]
    assert second != first  # new files: the cached catalogue encoding is not reused
    assert (tmp_path / "out" / "cache" / "minilm_zero_shot.key").read_text() == second


def test_an_unknown_first_stage_is_refused(run_with_teacher, tmp_path, tiny_encoder_dir):
    with pytest.raises(GraphrelInputError, match="rerank_retriever"):
        run_retrieval(run_with_teacher, tmp_path / "out", tiny_config(tiny_encoder_dir, rerank_retriever="nope",
                                                                       ablation=False))


@pytest.mark.parametrize("option, value", [
    ("student_steps", 0), ("dual_encoder_batch_size", 1), ("scale", 0.0), ("scale", float("nan")),
    ("hard_negatives", -1), ("negative_depth", 1), ("bm25_b", 1.5), ("label_weight", -1.0),
    ("timing_repeats", 0), ("max_test_queries", 0), ("dual_encoder_product_side", "both"), ("threads", 0),
    ("rerank_depth", 0), ("hybrid_dense", "bm25"), ("hybrid_dense", ""), ("generated_queries_per_product", -1), ("matching_batch_size", 0), ("document_weight", -1.0), ("blend_top_k", -1), ("xmc_max_leaves", 1), ("blend_weighting", "both"), ("dual_pooling_steps", -1), ("dual_pooling_test_pairs", 0),
    ("encode_precision", "float16"), ("target_precision", "float16"),
])
def test_every_numeric_option_is_checked(option, value):
    with pytest.raises(GraphrelInputError, match=f"retrieval.{option}"):
        RetrievalConfig(**{"blend_and_match": True, option: value}).check()  # its options are checked when on


def test_all_zero_loss_weights_are_refused():
    with pytest.raises(GraphrelInputError, match="label_weight"):
        RetrievalConfig(label_weight=0, score_weight=0, embedding_weight=0).check()
