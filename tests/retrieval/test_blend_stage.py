"""The Blend and Match stage end to end on a toy run with a tiny random encoder (no training quality asserted)."""

import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.bm25 import BM25Index
from graphrel.retrieval.students.blend_and_match import xmc_positives
from graphrel.retrieval.blend_stage import blend_examples, build_blend_and_match
from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.students.mining import mine_hard_negatives, positive_examples
from graphrel.retrieval.serving.retriever import Retriever, save_dense_retriever
from graphrel.retrieval.encoding.xmc import XMCModel, xmc_training_examples

from .conftest import toy_pairs


def setup(tmp_path, tiny_encoder_dir):
    pairs = toy_pairs()
    pairs["teacher_score"] = 0.5
    catalogue = Catalogue.from_pairs(pairs)
    examples = mine_hard_negatives(positive_examples(pairs, threshold=0.75, max_examples=None, seed=0), pairs,
                                   BM25Index(catalogue.texts), catalogue, negatives=2, depth=6, threshold=0.75, seed=0)
    config = RetrievalConfig(backbone=str(tiny_encoder_dir), dual_encoder_steps=3, dual_encoder_batch_size=4,
                             negative_depth=6, threads=1, timing_repeats=1, timing_k=5)
    config.xmc_max_leaves, config.blend_top_k, config.blend_ablation_top_k = 2, 3, [0]
    config.blend_ablation_xmc_weights = ()
    encoder = load_encoder(tiny_encoder_dir)
    products = encode(encoder, catalogue.texts)
    save_dense_retriever(tmp_path / "retrievers" / "dual_encoder", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=products, name="dual_encoder")
    return pairs, catalogue, examples, config, products


def test_hard_negatives_are_drawn_outside_labelled_and_xmc_positives(tmp_path):
    pairs = toy_pairs()
    catalogue = Catalogue.from_pairs(pairs)
    examples = positive_examples(pairs, threshold=0.75, max_examples=None, seed=0)
    queries, labels, _ = xmc_training_examples(pairs, threshold=0.75)
    xmc = XMCModel.fit(queries + ["drill set"], labels + [["p05", "p10"]], tmp_path / "xmc")
    positives = xmc_positives(examples, xmc, k=4, judged={})
    config = RetrievalConfig(negative_depth=8)
    mined = blend_examples(examples, pairs, catalogue, positives, config=config, threshold=0.75)
    relevant = pairs[pairs.label >= 0.75].groupby("query_id").product_id.agg(set)
    for _, row in mined.iterrows():
        outside = relevant[row.query_id] | set(positives[row.query_id][0])
        assert {row.negative_1, row.negative_2}.isdisjoint(outside)


def test_build_blend_and_match_writes_every_retriever_and_fusion_entries(tmp_path, tiny_encoder_dir):
    pairs, catalogue, examples, config, products = setup(tmp_path, tiny_encoder_dir)
    judged = judged_test_queries(pairs, threshold=0.75)
    result = build_blend_and_match(pairs, catalogue, examples, judged, config=config, threshold=0.75,
                                   product_embeddings=products, upstream_key="toy", output_dir=tmp_path)
    assert result["retrievers"] == ["xmc", "blend_and_match", "blend_and_match_k0", "dual_encoder_xmc_kd"]
    for name in result["retrievers"]:
        assert len(Retriever.load(tmp_path / "retrievers" / name).search(["garden hose"], 3)) == 3
    for name in ("fusion_rrf", "fusion_combsum"):
        entry = result["fusion"][name]
        assert {"recall@10", "recall@100", "recall@1000", "ndcg@10", "precision@10", "queries_per_second",
                "parameters"} <= set(entry) and 0 <= entry["recall@100"] <= 1
        assert (tmp_path / "runs" / f"{name}.trec").is_file()
    stamp = (tmp_path / "retrievers" / "blend_and_match" / "manifest.json").stat().st_mtime_ns
    build_blend_and_match(pairs, catalogue, examples, judged, config=config, threshold=0.75,
                          product_embeddings=products, upstream_key="toy", output_dir=tmp_path)
    assert (tmp_path / "retrievers" / "blend_and_match" / "manifest.json").stat().st_mtime_ns == stamp  # reused


def test_blend_and_match_needs_the_frozen_product_side(tmp_path, tiny_encoder_dir):
    pairs, catalogue, examples, config, products = setup(tmp_path, tiny_encoder_dir)
    config.dual_encoder_product_side = "trained"
    with pytest.raises(GraphrelInputError, match="dual_encoder_product_side"):
        build_blend_and_match(pairs, catalogue, examples, judged_test_queries(pairs, threshold=0.75), config=config,
                              threshold=0.75, product_embeddings=products, upstream_key="toy", output_dir=tmp_path)
