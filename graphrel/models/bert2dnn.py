"""BERT2DNN student: a feed-forward network on bags of word n-grams, distilled from the
cross-encoder teacher's soft labels over a large transfer set.

Jiang et al., "BERT2DNN: BERT Distillation with Massive Unlabeled Data for Online
E-Commerce Search", ICDM 2020 (arXiv 2010.10442; code: ``e-commerce-search/bert2dnn``).

From the paper and the authors' code:

- features: lower-cased word unigrams + bigrams with boundary markers
  (:class:`graphrel.data.ngrams.NgramFeaturizer`), one 64-d embedding table, each bag
  combined as sum / sqrt(n) (TensorFlow's ``combiner="sqrtn"``);
- MLP 1024-512-128-64 with ReLU -> 1 logit (Glorot-uniform weights, zero biases, no
  dropout, as ``tf.layers.dense``);
- loss: sigmoid cross-entropy against soft targets ``sigmoid(teacher_logit / T)``
  (temperature rescaling; T=2 on the authors' data);
- batch 128; Adagrad, learning rate 0.01 (TensorFlow's initial accumulator 0.1), 3 epochs
  over their massive transfer set: ``optimizer="adagrad", learning_rate=0.01``. (The
  authors' L2 regulariser is built but never added to the loss they minimise, so
  ``weight_decay`` defaults to 0.)

Reconstruction choices (this package's, measured on Home Depot):

- a pair is two bags (query, product text) over the shared table, fed to the MLP as
  ``[e_q; e_p; e_q*e_p; |e_q-e_p|]`` (256-d; ``interaction=False``: ``[e_q; e_p]``);
- ``match_features=True`` (not in the paper) appends the pair's exact n-gram overlap
  (:func:`graphrel.data.ngrams.match_features`: query unigram and bigram coverage,
  product unigram coverage; 3 numbers). Two 64-d bag sums cannot tell "the title holds
  every query word" from "the title holds related words"; on Home Depot, where a lexical
  model alone reaches the cross-encoder's AUC, it adds +0.016 to +0.021 test AUC;
- ``init="wordpiece"``: each vocabulary n-gram starts at the mean of its words' vectors,
  a word's vector being the mean of its wordpiece embeddings in the teacher backbone
  (MiniLM-L6: 30522 x 384), projected to 64-d by the matrix's top-64 right singular
  vectors (as :class:`graphrel.nn.WordpieceEncoder`) and scaled to the random init's
  RMS (1/sqrt(64) per component). Random-start n-grams learn words from the transfer set
  alone (measured here: AUC 0.57 on unseen queries with ~60k pairs); this way the student
  inherits the teacher's word knowledge. Hashing buckets start small and random.
  ``init="sentence"``: each n-gram's words run through the backbone's sentence encoder
  (all-MiniLM-L6-v2, mean-pooled last layer), centred and projected to 64-d the same way
  (:func:`sentence_ngram_vectors`): contextual rather than static wordpiece vectors, so
  synonyms ("fridge", "refrigerator") start close. About 2 minutes for 72k n-grams.
- optimiser: on a transfer set of ~10^5 pairs the paper's Adagrad underfits (Home Depot,
  wordpiece init: validation AUC 0.616 after 3 epochs, still rising), so the default is
  Adam (``SparseAdam`` on the table, AdamW on the MLP), learning rate 1e-3: 0.662 after 2;
- ``label_weight`` > 0 adds BCE on human labels where present (0 = the paper: teacher only);
- scores: the student's logit learns ``teacher_logit / T``, so :meth:`scores` returns
  ``sigmoid(T * logit)`` (back on the teacher's scale, which RMSE needs) unless
  ``calibrate_output=False`` (``sigmoid(logit)``, the paper's output). Ranking is the same.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import nn

from graphrel.backbone import MINILM
from graphrel.losses import distillation_loss, temperature_targets
from graphrel.data.ngrams import MATCH_FEATURES, gather_bags, match_features as pair_match_features
from graphrel.metrics import auc, spearman

INITS = ("random", "wordpiece", "sentence")
OPTIMIZERS = ("adagrad", "adam")
#: Vocabulary file of a saved BERT2DNN student directory.
NGRAMS_FILE = "ngrams.json"


def backbone_embeddings(backbone: str, backbone_config: dict | None) -> torch.Tensor:
    """Wordpiece embedding matrix (V, E): the backbone's, or random for a tiny test config
    ``{"vocab_size": V, "hidden_size": E}``."""
    if backbone_config is not None:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(backbone_config["vocab_size"], backbone_config["hidden_size"], generator=generator) * 0.05
    from graphrel.backbone import load_word_embeddings

    return load_word_embeddings(backbone)


def _to_table_scale(vectors: torch.Tensor) -> torch.Tensor:
    """(V, D) vectors rescaled so the RMS of a component is 1/sqrt(D), as the random init."""
    rms = vectors.pow(2).mean().sqrt().clamp_min(1e-12)
    return vectors * (1.0 / math.sqrt(vectors.shape[1])) / rms


def _top_directions(matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """(E, dim): the top-``dim`` right singular vectors of ``matrix`` (N, E), as columns."""
    _, _, right = torch.linalg.svd(matrix, full_matrices=False)
    return right[:dim].T


def wordpiece_ngram_vectors(featurizer, embeddings: torch.Tensor, tokenizer, dim: int) -> torch.Tensor:
    """Initial vectors of a featuriser's vocabulary n-grams from wordpiece embeddings.

    Args:
        featurizer: a :class:`graphrel.data.ngrams.NgramFeaturizer` (V n-grams).
        embeddings: (W, E) float, the backbone's wordpiece embedding matrix.
        tokenizer: the backbone's tokenizer (wordpiece ids of each word).
        dim: D <= E, width of the n-gram table.

    Returns:
        (V, D) float32: per n-gram, the mean over its words of (mean of the word's
        wordpiece embeddings) @ P, P (E, D) the matrix's top-D right singular vectors;
        scaled so the RMS of a component is 1/sqrt(D). Words without wordpieces add zeros.
    """
    from graphrel.data.tokens import WordpieceCache

    embeddings = embeddings.float()
    projected = embeddings @ _top_directions(embeddings, dim)  # (W, D)
    words_of = [featurizer.ngram_words(i) for i in range(featurizer.vocab_size)]
    words = sorted({w for ws in words_of for w in ws})
    if not words:
        return torch.zeros(0, dim)
    pieces = torch.from_numpy(WordpieceCache(tokenizer).encode(words, 16))  # (U, 16)
    mask = (pieces != tokenizer.pad_token_id).float().unsqueeze(-1)
    word_vectors = (projected[pieces] * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # (U, D)
    position = {w: i for i, w in enumerate(words)}
    lengths = torch.tensor([len(ws) for ws in words_of])
    flat = torch.tensor([position[w] for ws in words_of for w in ws])
    owner = torch.repeat_interleave(torch.arange(len(words_of)), lengths)
    vectors = torch.zeros(len(words_of), dim).index_add_(0, owner, word_vectors[flat])
    return _to_table_scale(vectors / lengths.clamp_min(1).unsqueeze(1))


def backbone_encoder(backbone: str, backbone_config: dict | None):
    """The backbone as a text encoder (``transformers.AutoModel``, eval mode): the shipped
    sentence encoder, or a tiny random BERT for a test config ``{"vocab_size": V,
    "hidden_size": E}``."""
    from transformers import AutoModel, BertConfig, BertModel

    if backbone_config is not None:
        hidden = backbone_config["hidden_size"]
        config = BertConfig(vocab_size=backbone_config["vocab_size"], hidden_size=hidden, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=2 * hidden)
        with torch.random.fork_rng():  # a fixed tiny encoder, without resetting the caller's seed
            torch.manual_seed(0)
            return BertModel(config).eval()
    from graphrel.backbone import resolve_backbone

    return AutoModel.from_pretrained(resolve_backbone(backbone)).eval()


def sentence_ngram_vectors(featurizer, encoder, tokenizer, dim: int, *, batch_size: int = 1024,
                           progress: bool = False) -> torch.Tensor:
    """Initial vectors of a featuriser's vocabulary n-grams from the backbone's sentence
    encoder: each n-gram's words (markers left out) run through the encoder as a short
    text, its last layer mean-pooled over the wordpieces (sentence-transformers' pooling
    of all-MiniLM-L6-v2), centred and projected to ``dim`` by the top right singular vectors.

    Unlike :func:`wordpiece_ngram_vectors` (static input embeddings), the vector of "ac
    unit" here comes from the words in context, in the space where the backbone's
    sentence embeddings of related texts lie close.

    Args:
        featurizer: a :class:`graphrel.data.ngrams.NgramFeaturizer` (V n-grams).
        encoder: a ``transformers`` encoder (``last_hidden_state`` (B, L, E)).
        tokenizer: its tokenizer.
        dim: D <= E, width of the n-gram table.
        batch_size: n-grams per encoder pass (length-sorted; ~700 n-grams/s on 2 CPU cores).

    Returns:
        (V, D) float32, scaled so the RMS of a component is 1/sqrt(D).
    """
    from tqdm.auto import tqdm

    texts = [" ".join(featurizer.ngram_words(i)) for i in range(featurizer.vocab_size)]
    if not texts:
        return torch.zeros(0, dim)
    pooled = torch.zeros(len(texts), encoder.config.hidden_size)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="n-gram vectors", disable=not progress):
            rows = order[start:start + batch_size]
            encoded = tokenizer([texts[r] for r in rows], padding=True, truncation=True, max_length=16,
                                return_tensors="pt")
            hidden = encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            pooled[torch.from_numpy(rows)] = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    pooled = pooled - pooled.mean(0, keepdim=True)
    return _to_table_scale(pooled @ _top_directions(pooled, dim))


class Bert2DnnStudent(L.LightningModule):
    """BERT2DNN student (see module docstring; Jiang et al., ICDM 2020, arXiv 2010.10442).

    Args:
        num_embeddings: rows of the n-gram table (V + B of the featuriser); None = set
            when :meth:`attach_ngrams` is called (the datamodule does it in ``setup``).
        embedding_dim: width of the n-gram table (64).
        hidden: MLP widths (1024, 512, 128, 64), ReLU, then one logit.
        interaction: MLP input [e_q; e_p; e_q*e_p; |e_q-e_p|] (True) or [e_q; e_p].
        init: ``"wordpiece"`` (n-grams start from the teacher's wordpiece embeddings),
            ``"sentence"`` (from the backbone's sentence encoder, :func:`sentence_ngram_vectors`)
            or ``"random"`` (truncated normal, std 1/sqrt(embedding_dim), as TensorFlow's
            embedding column).
        backbone: teacher backbone of the wordpiece init (``"minilm-l6"`` or a local HF dir).
        backbone_config: for tests: ``{"vocab_size": V, "hidden_size": E}`` -> random
            wordpiece embeddings instead of the backbone's (the real tokenizer is used).
        optimizer: ``"adam"`` (``SparseAdam`` on the n-gram table, AdamW on the MLP) or
            ``"adagrad"`` (the paper's, with ``learning_rate=0.01``). Embedding gradients are
            sparse either way: a step touches only its batch's rows.
        learning_rate, weight_decay: optimiser settings (weight decay on the MLP only).
        embedding_lr: learning rate of the n-gram table (None = ``learning_rate``; 0 = frozen:
            n-grams only seen at test time keep vectors in the same space as trained ones).
        temperature: T of the soft targets sigmoid(teacher_logit / T).
        label_weight: weight of BCE on human labels where present (0 = teacher only).
        calibrate_output: :meth:`scores` returns sigmoid(T * logit) (True) or sigmoid(logit).
        match_features: the MLP also reads the pair's exact n-gram overlap (batch key
            ``match`` (B, 3) float in [0, 1], :func:`graphrel.data.ngrams.match_features`;
            not in the paper, see the module docstring).

    The defaults are the pipeline's (``graphrel.pipeline.config.Bert2DnnConfig``,
    ``configs/bert2dnn.yaml``), the best measured on Home Depot; the paper's plain model is
    ``init="random", match_features=False, label_weight=0``.

    Batch: ``query_ids`` (Mq,) int64 and ``query_offsets`` (B,) int64, ``product_ids``
    (Mp,) and ``product_offsets`` (B,) (bags as :meth:`NgramFeaturizer.encode` returns),
    plus for training ``teacher_logit`` (B,) and ``label`` (B,) in [0, 1] or NaN, and
    ``match`` (B, 3) when ``match_features``.

    Shapes:
        - forward(batch) -> logits (B,), any real; :meth:`scores` -> (B,) in [0, 1]
        - embed(ids, offsets) -> (N, embedding_dim)
        - pair_logits(e_q, e_p, match=None): (B, D), (B, D), (B, 3) or None -> (B,)

    Raises:
        ValueError: unknown ``init`` / ``optimizer``, ``temperature`` <= 0; in forward, a
            ``match_features`` model given a batch without ``match``.
    """

    def __init__(self, num_embeddings: int | None = None, embedding_dim: int = 64,
                 hidden: tuple[int, ...] = (1024, 512, 128, 64), interaction: bool = True,
                 init: str = "sentence", backbone: str = MINILM, backbone_config: dict | None = None,
                 optimizer: str = "adam", learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 embedding_lr: float | None = None, temperature: float = 1.0, label_weight: float = 1.0,
                 calibrate_output: bool = True, match_features: bool = True) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.save_hyperparameters()
        # "adam" steps two optimisers (sparse table, dense MLP): Lightning's manual optimisation
        self.automatic_optimization = optimizer == "adagrad"
        self.embedding: nn.EmbeddingBag | None = None
        self.ngram_state: dict | None = None  # the featuriser's vocabulary, kept in checkpoints
        if num_embeddings is not None:
            self._build_embedding(num_embeddings)
        widths = [(4 if interaction else 2) * embedding_dim + (len(MATCH_FEATURES) if match_features else 0), *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], 1))
        self.mlp = nn.Sequential(*layers)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    # -- n-gram table --------------------------------------------------------------------
    def _build_embedding(self, num_embeddings: int) -> None:
        dim = self.hparams.embedding_dim
        self.embedding = nn.EmbeddingBag(num_embeddings, dim, mode="sum", sparse=True)
        std = 1.0 / math.sqrt(dim)
        nn.init.trunc_normal_(self.embedding.weight, std=std, a=-2 * std, b=2 * std)

    def attach_ngrams(self, featurizer) -> None:
        """Create the n-gram table for ``featurizer`` and initialise it (``init``).

        Does nothing to weights that were already attached or loaded from a checkpoint
        (the vocabulary must then be the same size).
        """
        if self.ngram_state is not None:
            if self.embedding.num_embeddings != featurizer.num_embeddings:
                raise ValueError(f"model has {self.embedding.num_embeddings} n-gram rows, featuriser "
                                 f"{featurizer.num_embeddings}: not the vocabulary it was trained with")
            return
        if self.embedding is None or self.embedding.num_embeddings != featurizer.num_embeddings:
            self._build_embedding(featurizer.num_embeddings)
        self.hparams.num_embeddings = featurizer.num_embeddings
        if self.hparams.init != "random" and featurizer.vocab_size:
            from graphrel.backbone import load_tokenizer

            h = self.hparams
            if h.init == "sentence":
                vectors = sentence_ngram_vectors(featurizer, backbone_encoder(h.backbone, h.backbone_config),
                                                 load_tokenizer(h.backbone), h.embedding_dim)
            else:
                vectors = wordpiece_ngram_vectors(featurizer, backbone_embeddings(h.backbone, h.backbone_config),
                                                  load_tokenizer(h.backbone), h.embedding_dim)
            with torch.no_grad():
                self.embedding.weight[:featurizer.vocab_size] = vectors
                self.embedding.weight[featurizer.vocab_size:] *= 0.1
        self.ngram_state = featurizer.to_dict()

    def featurizer(self):
        """The :class:`NgramFeaturizer` this model was trained with (from its checkpoint)."""
        from graphrel.data.ngrams import NgramFeaturizer

        if self.ngram_state is None:
            raise RuntimeError("no n-gram vocabulary attached: call attach_ngrams() first")
        return NgramFeaturizer.from_dict(self.ngram_state)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "ngrams", None) is not None:
            self.attach_ngrams(datamodule.ngrams)
        elif self.embedding is None:
            raise RuntimeError("Bert2DnnStudent needs num_embeddings or a datamodule with an `ngrams` featuriser")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ngrams"] = self.ngram_state
        if "hyper_parameters" in checkpoint:  # lets `graphrel test --ckpt_path` rebuild the class
            checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "_class_path": _CLASS_PATH}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.ngram_state = checkpoint.get("ngrams")

    # -- model ---------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Bag vectors sum / sqrt(n) (zeros for an empty bag): (M,), (N,) -> (N, D)."""
        lengths = torch.diff(offsets, append=offsets.new_tensor([len(ids)]))
        return self.embedding(ids, offsets) * lengths.clamp_min(1).to(torch.float32).rsqrt().unsqueeze(1)

    def pair_logits(self, e_q: torch.Tensor, e_p: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        parts = [e_q, e_p, e_q * e_p, (e_q - e_p).abs()] if self.hparams.interaction else [e_q, e_p]
        if self.hparams.get("match_features", False):
            if match is None:
                raise ValueError("this student was built with match_features=True: pass the pairs' match "
                                 "features (graphrel.data.ngrams.match_features)")
            parts.append(match.to(e_q.dtype))
        return self.mlp(torch.cat(parts, -1)).squeeze(-1)

    def forward(self, batch: dict) -> torch.Tensor:
        query_ids, product_ids = batch["query_ids"], batch["product_ids"]
        # one EmbeddingBag call over both sides (shared table)
        ids = torch.cat([query_ids, product_ids])
        offsets = torch.cat([batch["query_offsets"], batch["product_offsets"] + len(query_ids)])
        e_q, e_p = self.embed(ids, offsets).split(len(batch["query_offsets"]))
        return self.pair_logits(e_q, e_p, batch.get("match"))

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Relevance scores in [0, 1] from logits (see ``calibrate_output``)."""
        scale = self.hparams.temperature if self.hparams.calibrate_output else 1.0
        return torch.sigmoid(logits * scale)

    # -- training ------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """Soft-target BCE against sigmoid(teacher_logit / T) (+ label_weight x BCE on labels)."""
        targets = temperature_targets(batch["teacher_logit"], self.hparams.temperature)
        return distillation_loss(self(batch), targets, batch.get("label"), label_weight=self.hparams.label_weight)

    def training_step(self, batch: dict, batch_idx: int):
        loss = self.loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["teacher_logit"]))
        if not self.automatic_optimization:
            optimizers = self.optimizers()
            optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
            for optimizer in optimizers:
                optimizer.zero_grad()
            self.manual_backward(loss)
            for optimizer in optimizers:
                optimizer.step()
        return loss

    def validation_step(self, batch: dict, batch_idx: int):
        self._val.append((self.scores(self(batch)).float().cpu().numpy(), batch["label"].float().cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict, batch_idx: int):
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_epoch(self, prefix: str) -> None:
        if not self._val:
            return
        scores, labels = (np.concatenate(x) for x in zip(*self._val))
        self._val = []
        keep = ~np.isnan(labels)
        self.log(f"{prefix}_auc", auc(scores[keep], labels[keep]), prog_bar=True)
        self.log(f"{prefix}_spearman", spearman(scores[keep], labels[keep]), prog_bar=True)

    def predict_step(self, batch: dict, batch_idx: int):
        return self.scores(self(batch))

    def configure_optimizers(self):
        h = self.hparams
        dense = [p for name, p in self.named_parameters() if not name.startswith("embedding.")]
        table_lr = h.learning_rate if h.embedding_lr is None else h.embedding_lr
        self.embedding.weight.requires_grad_(table_lr > 0)
        if h.optimizer == "adagrad":  # TensorFlow's Adagrad starts its accumulator at 0.1
            groups = [{"params": dense, "weight_decay": h.weight_decay}]
            if table_lr > 0:
                groups.append({"params": [self.embedding.weight], "weight_decay": 0.0, "lr": table_lr})
            return torch.optim.Adagrad(groups, lr=h.learning_rate, initial_accumulator_value=0.1)
        optimizers = [torch.optim.AdamW(dense, lr=h.learning_rate, weight_decay=h.weight_decay)]
        if table_lr > 0:
            optimizers.append(torch.optim.SparseAdam([self.embedding.weight], lr=table_lr))
        return optimizers


_CLASS_PATH = f"{Bert2DnnStudent.__module__}.{Bert2DnnStudent.__qualname__}"


# -- scoring ---------------------------------------------------------------------------------
@dataclass
class Bert2DnnScorer:
    """A trained BERT2DNN student ready to score pairs from text (same interface as
    :class:`graphrel.scoring.korder_scorer.StudentScorer`; ids are accepted and ignored: text only).

    Load with :meth:`load` from a directory holding ``student.json`` (``{"model":
    "Bert2DnnStudent", "checkpoint": "model.ckpt", "ngrams": "ngrams.json", ...}``), the
    checkpoint and the n-gram vocabulary.

    ``dtype=torch.bfloat16`` runs the MLP in bfloat16 (several times faster on CPUs with
    AMX / AVX-512 BF16 units; scores differ from float32 by about 1e-3); n-gram bags stay
    float32. A student directory may name its scoring dtype in ``student.json``
    (``"scoring_dtype"``, see :func:`train_bert2dnn`); :meth:`load` uses it unless told.
    """

    model: Bert2DnnStudent
    featurizer: object
    name: str = "bert2dnn"
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.model.eval()
        self.model.mlp.to(self.dtype)

    @classmethod
    def load(cls, directory: str | Path, *, dtype: str | torch.dtype | None = None) -> "Bert2DnnScorer":
        """Load a student directory written by :func:`save_student` / :func:`train_bert2dnn`.

        Args:
            directory: the student directory.
            dtype: ``"float32"`` (exact) or ``"bfloat16"`` (faster MLP on CPUs with bf16 units);
                None: the manifest's ``scoring_dtype``, else float32.

        Raises:
            GraphrelInputError: missing directory, manifest, checkpoint or vocabulary, or a
                directory of another model type.
        """
        from graphrel.data.ngrams import NgramFeaturizer
        from graphrel.errors import GraphrelInputError
        from graphrel.scoring.load import read_student_manifest

        directory = Path(directory)
        manifest, checkpoint = read_student_manifest(directory, "Bert2DnnStudent", fix="re-run train_bert2dnn")
        try:
            model = Bert2DnnStudent.load_from_checkpoint(checkpoint, map_location="cpu")
        except (KeyError, TypeError, RuntimeError) as error:
            raise GraphrelInputError(f"not a BERT2DNN student checkpoint ({error.__class__.__name__})",
                                     path=checkpoint, fix="pass the checkpoint of a Bert2DnnStudent") from None
        vocabulary = directory / manifest.get("ngrams", NGRAMS_FILE)
        if vocabulary.is_file():
            featurizer = NgramFeaturizer.load(vocabulary)
        elif model.ngram_state is not None:
            featurizer = model.featurizer()
        else:
            raise GraphrelInputError("n-gram vocabulary not found", path=vocabulary, fix="re-run train_bert2dnn")
        if featurizer.num_embeddings != model.embedding.num_embeddings:
            raise GraphrelInputError("n-gram vocabulary does not match the checkpoint", path=vocabulary,
                                     fix="keep the ngrams.json saved with this checkpoint")
        if dtype is None:
            dtype = manifest.get("scoring_dtype", "float32")
        dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if dtype not in (torch.float32, torch.bfloat16):
            raise GraphrelInputError(f"unsupported scoring dtype {dtype}", path=directory / "student.json",
                                     fix="use float32 or bfloat16")
        return cls(model=model, featurizer=featurizer, name=directory.name, dtype=dtype)

    @torch.inference_mode()
    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size: int = 2048,
              progress: bool = False) -> np.ndarray:
        """Relevance scores of pairs from their texts, in input order.

        Each distinct text is featurised and embedded once (a catalogue repeats titles,
        a log repeats queries); the MLP then runs on pairs in batches.

        Args:
            query_ids, product_ids: N ids (unused: the student reads text only).
            queries, product_texts: N str texts.
            batch_size: pairs per MLP pass (large batches use the CPU's matrix units best).
            progress: show a progress bar.

        Returns:
            (N,) float32 scores in [0, 1].
        """
        from tqdm.auto import tqdm

        from graphrel.scoring.paused_gc import paused_garbage_collector

        with paused_garbage_collector():
            query_rows, query_vectors, query_bags = self._embed_unique(queries)
            product_rows, product_vectors, product_bags = self._embed_unique(product_texts)
            with_match = self.model.hparams.get("match_features", False)
            n = len(query_rows)
            if len(product_rows) != n:
                raise ValueError(f"{n} queries but {len(product_rows)} product texts")
            out = np.empty(n, dtype=np.float32)
            for start in tqdm(range(0, n, batch_size), desc=f"{self.name} scoring", disable=not progress,
                              unit="batch", mininterval=2.0):
                rows = slice(start, start + batch_size)
                e_q = query_vectors.index_select(0, query_rows[rows])
                e_p = product_vectors.index_select(0, product_rows[rows])
                match = None
                if with_match:
                    match = torch.from_numpy(pair_match_features(
                        *gather_bags(*query_bags, query_rows[rows].numpy()),
                        *gather_bags(*product_bags, product_rows[rows].numpy())))
                logits = self.model.pair_logits(e_q, e_p, match).float()
                out[rows] = self.model.scores(logits).numpy()
        return out

    def reset_text_caches(self) -> None:
        """Forget the words of every text featurised so far (timing from a cold cache)."""
        self.featurizer.forget_words()

    def _embed_unique(self, texts) -> tuple[torch.Tensor, torch.Tensor, tuple[np.ndarray, np.ndarray]]:
        """Row of each text in a table of distinct-text vectors: (N,) int64, (U, D), and
        the distinct texts' bags (ids (M,), offsets (U,))."""
        codes, unique = pd.factorize(np.asarray(texts, dtype=object))
        ids, offsets = self.featurizer.encode(list(unique))
        vectors = self.model.embed(torch.from_numpy(ids), torch.from_numpy(offsets)).to(self.dtype)
        return torch.from_numpy(codes.astype(np.int64)), vectors, (ids, offsets)


# -- training + saving -----------------------------------------------------------------------
def save_student(model: Bert2DnnStudent, featurizer, directory: str | Path, *, checkpoint: str | Path | None = None,
                 extra: dict | None = None) -> Path:
    """Write a scorer directory atomically: built beside ``directory``, then renamed onto it.

    Contents: ``model.ckpt`` (``checkpoint`` copied, or the model's weights and
    hyper-parameters saved afresh), ``ngrams.json`` and ``student.json``. An existing
    ``directory`` is replaced only once the new one is complete.
    """
    from graphrel.run import STUDENT_CHECKPOINT, STUDENT_MANIFEST

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        if checkpoint is not None:
            shutil.copyfile(checkpoint, tmp / STUDENT_CHECKPOINT)
        else:
            state = {"state_dict": model.state_dict(),
                     "hyper_parameters": {**model.hparams, "_class_path": _CLASS_PATH},
                     "ngrams": model.ngram_state, "pytorch-lightning_version": L.__version__}
            torch.save(state, tmp / STUDENT_CHECKPOINT)
        featurizer.save(tmp / NGRAMS_FILE)
        manifest = {"model": "Bert2DnnStudent", "checkpoint": STUDENT_CHECKPOINT, "ngrams": NGRAMS_FILE,
                    "init": model.hparams.init, "temperature": model.hparams.temperature,
                    "vocab_size": featurizer.vocab_size, "num_buckets": featurizer.num_buckets, **(extra or {})}
        (tmp / STUDENT_MANIFEST).write_text(json.dumps(manifest, indent=2))
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            directory.rename(old)
        tmp.rename(directory)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def train_bert2dnn(run_dir: str | Path, out_dir: str | Path, *, temperature: float = 1.0, init: str = "sentence",
                   epochs: int = 4, batch_size: int = 128, learning_rate: float = 1e-3, optimizer: str = "adam",
                   label_weight: float = 1.0, min_count: int = 2, num_buckets: int = 1 << 16,
                   transfer: str = "train_queries",
                   backbone: str = MINILM, backbone_config: dict | None = None, seed: int = 0,
                   progress: bool = False, model_options: dict | None = None,
                   scoring_dtype: str = "float32", pairs: pd.DataFrame | None = None) -> dict:
    """Fit a BERT2DNN student on a finished pipeline run and save a scorer directory.

    Trains on the run's teacher logits (train split + transfer pairs, see
    :class:`graphrel.data.bert2dnn_data.Bert2DnnDataModule`), keeps the epoch with the
    best ``val_auc`` and writes ``out_dir`` (``student.json``, ``model.ckpt``,
    ``ngrams.json``) atomically.

    Args:
        run_dir: a pipeline run directory (pairs.parquet, teacher_scores.parquet).
        out_dir: the student directory to write (replaced if it exists).
        temperature, init, learning_rate, optimizer, label_weight: see :class:`Bert2DnnStudent`.
        epochs, batch_size, seed: training loop.
        min_count, num_buckets, transfer: see the datamodule (``transfer="all"`` also trains
            on transfer pairs of val/test queries).
        model_options: further :class:`Bert2DnnStudent` arguments.
        scoring_dtype: ``"float32"`` or ``"bfloat16"``: the MLP's dtype when the directory
            is loaded for scoring (:class:`Bert2DnnScorer`), kept in ``student.json``.
        pairs: the run's teacher-scored pairs (columns as
            :meth:`Bert2DnnDataModule.set_pairs`) instead of reading ``run_dir``: the
            pipeline passes its stacked scores this way.

    Raises:
        ValueError: unknown ``scoring_dtype`` (before any training).

    Returns:
        The manifest written (with ``best_val_auc``, ``train_pairs``, ``fit_seconds``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from graphrel.data.bert2dnn_data import Bert2DnnDataModule

    if scoring_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"scoring_dtype must be 'float32' or 'bfloat16', got {scoring_dtype!r}")
    L.seed_everything(seed, workers=True, verbose=False)
    # batches carry the overlap features exactly when the student reads them (its default unless set)
    options = model_options or {}
    match = (options["match_features"] if "match_features" in options
             else inspect.signature(Bert2DnnStudent).parameters["match_features"].default)
    data = Bert2DnnDataModule(run_dir=str(run_dir), batch_size=batch_size, min_count=min_count,
                              num_buckets=num_buckets, transfer=transfer, seed=seed, match_features=bool(match))
    if pairs is not None:
        data.set_pairs(pairs)
    else:
        data.setup("fit")
    model = Bert2DnnStudent(init=init, temperature=temperature, learning_rate=learning_rate, optimizer=optimizer,
                            label_weight=label_weight, backbone=backbone, backbone_config=backbone_config,
                            **(model_options or {}))
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.fit.", dir=out_dir.parent if out_dir.parent.exists()
                                     else None) as work:
        checkpoint = ModelCheckpoint(dirpath=work, filename="best", monitor="val_auc", mode="max", save_top_k=1,
                                     save_weights_only=True, enable_version_counter=False)
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=[checkpoint],
                            enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                            deterministic=True, default_root_dir=work)
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - start
        extra = {"best_val_auc": float(checkpoint.best_model_score), "epochs": epochs,
                 "train_pairs": len(data.frames["train"]), "fit_seconds": round(seconds, 1),
                 "transfer": transfer, "run_dir": str(run_dir), "scoring_dtype": scoring_dtype}
        save_student(model, data.ngrams, out_dir, checkpoint=checkpoint.best_model_path, extra=extra)
    return json.loads((out_dir / "student.json").read_text())
