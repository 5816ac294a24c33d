"""Fixtures of the retrieval tests: a tiny random sentence encoder, a toy catalogue and run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
PRODUCTS = {
    "p01": "DeWalt 20V cordless drill bit set", "p02": "50 ft. green garden hose", "p03": "2 in. angled paint brush",
    "p04": "steel door hinge 3-pack", "p05": "Philips 60-Watt LED light bulb", "p06": "garden hose reel cart",
    "p07": "cordless drill driver kit", "p08": "exterior paint roller cover", "p09": "brass door knob",
    "p10": "LED flood light outdoor", "p11": "hose nozzle spray", "p12": "interior wood door",
}
QUERIES = {"drill": ["p01", "p07"], "garden hose": ["p02", "p06", "p11"], "paint": ["p03", "p08"],
           "door": ["p04", "p09", "p12"], "led light": ["p05", "p10"]}


def build_tiny_encoder(directory, seed: int = 0):
    """A 2-layer, 32-d random BERT with the shipped tokenizer, mean pooling, normalised; saved."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    from graphrel.backbone import load_tokenizer

    torch.manual_seed(seed)
    tokenizer = load_tokenizer()
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY)).save_pretrained(directory / "hf")
    tokenizer.save_pretrained(directory / "hf")
    transformer = Transformer(str(directory / "hf"), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    model.save(str(directory / "st"))
    return directory / "st"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """Directory of a tiny random sentence-transformers encoder (32-d)."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))


@pytest.fixture(scope="session")
def tiny_static(tiny_encoder_dir):
    """model2vec static embeddings (16-d) of the tiny encoder (students copy them)."""
    from graphrel.retrieval.students.embeddistill import distil_static_embeddings

    return distil_static_embeddings(tiny_encoder_dir, dim=16)


def toy_pairs(seed: int = 0) -> pd.DataFrame:
    """Pairs of a toy run: 5 test queries (each with its relevant products, label 1.0, and one
    non-relevant judged product, label 0.25) and train pairs of other queries."""
    rng = np.random.default_rng(seed)
    rows, ids = [], sorted(PRODUCTS)
    for split, queries in (("test", QUERIES), ("train", {f"{q} set": p for q, p in QUERIES.items()})):
        for query, relevant in queries.items():
            for pid in relevant:
                rows.append((query, pid, 1.0, split))
            other = [p for p in ids if p not in relevant]
            rows.append((query, other[rng.integers(len(other))], 0.25, split))
    frame = pd.DataFrame(rows, columns=["query", "product_id", "label", "split"])
    frame["query_id"] = frame["query"]
    frame["product_text"] = frame["product_id"].map(PRODUCTS)
    frame["relevance"] = 1 + 2 * frame["label"]
    return frame


@pytest.fixture
def toy_run(tmp_path):
    """A toy run directory: pairs.parquet, teacher_scores.parquet, label_scale.json."""
    pairs = toy_pairs()
    pairs.insert(0, "row_id", np.arange(len(pairs)))
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    scores = pairs[["query_id", "product_id"]].copy()
    scores["teacher_logit"] = pairs["label"].to_numpy() * 2 - 1
    scores["teacher_score"] = 1 / (1 + np.exp(-scores["teacher_logit"]))
    scores.to_parquet(tmp_path / "teacher_scores.parquet", index=False)
    (tmp_path / "label_scale.json").write_text(json.dumps({"label_min": 1.0, "label_max": 3.0}))
    return tmp_path
