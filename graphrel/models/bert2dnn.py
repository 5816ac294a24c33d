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

Reconstruction choices (this package's; the defaults chosen on Home Depot's validation queries
with ``tools/choose_on_validation.py --student student_bert2dnn``):

- a pair is two bags (query, product text) over the shared table, fed to the MLP as
  ``[e_q; e_p; e_q*e_p; |e_q-e_p|]`` (256-d; ``interaction=False``: ``[e_q; e_p]``);
- ``match_features=True`` (not in the paper) appends the pair's exact n-gram overlap
  (:func:`graphrel.data.ngrams.match_features`: query unigram and bigram coverage,
  product unigram coverage; 3 numbers). Two 64-d bag sums cannot tell "the title holds
  every query word" from "the title holds related words"; on Home Depot, where a lexical
  model alone reaches the cross-encoder's AUC, turning it off costs -0.024 [-0.030, -0.018]
  validation AUC (95% interval, paired bootstrap over validation queries);
- ``init="wordpiece"``: each vocabulary n-gram starts at the mean of its words' vectors,
  a word's vector being the mean of its wordpiece embeddings in the teacher backbone
  (MiniLM-L6: 30522 x 384), projected to 64-d by the matrix's top-64 right singular
  vectors (as :class:`graphrel.nn.WordpieceEncoder`) and scaled to the random init's
  RMS (1/sqrt(64) per component; :mod:`graphrel.models.ngram_init`). Random-start n-grams learn words from the transfer set
  alone (measured here: AUC 0.57 on unseen queries with ~60k pairs); this way the student
  inherits the teacher's word knowledge. Hashing buckets start small and random.
  ``init="sentence"``: each n-gram's words run through the backbone's sentence encoder
  (all-MiniLM-L6-v2, mean-pooled last layer), centred and projected to 64-d the same way
  (:func:`graphrel.models.ngram_init.sentence_ngram_vectors`): contextual rather than
  static wordpiece vectors, so synonyms ("fridge", "refrigerator") start close. About 2
  minutes for 72k n-grams.
- optimiser: on a transfer set of ~10^5 pairs the paper's Adagrad underfits (Home Depot,
  wordpiece init: validation AUC 0.616 after 3 epochs, still rising), so the default is
  Adam (``SparseAdam`` on the table, AdamW on the MLP), learning rate 1e-3: 0.662 after 2;
- ``label_weight`` > 0 adds BCE on human labels where present (0 = the paper: teacher only;
  -0.014 [-0.022, -0.006] validation AUC against the default 1.0);
- scores: the student's logit learns ``teacher_logit / T``, so :meth:`scores` returns
  ``sigmoid(T * logit)`` (back on the teacher's scale, which RMSE needs) unless
  ``calibrate_output=False`` (``sigmoid(logit)``, the paper's output). Ranking is the same.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from graphrel.backbone import MINILM
from graphrel.data.ngrams import MATCH_FEATURES
from graphrel.losses import distillation_loss, temperature_targets
from graphrel.metrics import RELEVANT_NORMALISED
from graphrel.models.class_path import add_class_path
from graphrel.models.ngram_init import initial_ngram_vectors
from graphrel.models.validation import RelevanceValidation
from graphrel.nn.ngram_bag import NgramBag

INITS = ("random", "wordpiece", "sentence")
OPTIMIZERS = ("adagrad", "adam")
#: Vocabulary file of a saved BERT2DNN student directory.
NGRAMS_FILE = "ngrams.json"


class Bert2DnnStudent(L.LightningModule):
    """BERT2DNN student (see module docstring; Jiang et al., ICDM 2020, arXiv 2010.10442).

    Args:
        num_embeddings: rows of the n-gram table (V + B of the featuriser); None = set
            when :meth:`attach_ngrams` is called (the datamodule does it in ``setup``).
        embedding_dim: width of the n-gram table (64).
        hidden: MLP widths (1024, 512, 128, 64), ReLU, then one logit.
        interaction: MLP input [e_q; e_p; e_q*e_p; |e_q-e_p|] (True) or [e_q; e_p].
        init: ``"wordpiece"`` (n-grams start from the teacher's wordpiece embeddings),
            ``"sentence"`` (from the backbone's sentence encoder,
            :func:`graphrel.models.ngram_init.sentence_ngram_vectors`)
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
        relevance_threshold: normalised label in (0, 1] at or above which a validation pair
            counts as relevant for ``val_auc`` (the pipeline passes its
            ``evaluation.relevance_threshold``; 0.75 = 2.5 on a 1-3 scale).

    The defaults are the pipeline's (``graphrel.pipeline.Bert2DnnConfig``,
    ``configs/bert2dnn.yaml``), chosen on Home Depot's validation queries; the paper's plain model is
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
                 calibrate_output: bool = True, match_features: bool = True,
                 relevance_threshold: float = RELEVANT_NORMALISED) -> None:
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
        self.embedding: NgramBag | None = None
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
        self.val_metrics = RelevanceValidation(relevance_threshold)

    # -- n-gram table --------------------------------------------------------------------
    def _build_embedding(self, num_embeddings: int) -> None:
        self.embedding = NgramBag(num_embeddings, self.hparams.embedding_dim)

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
            h = self.hparams
            vectors = initial_ngram_vectors(featurizer, h.init, h.backbone, h.backbone_config, h.embedding_dim)
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
        add_class_path(checkpoint, self)  # lets `graphrel test --ckpt_path` rebuild the class

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.ngram_state = checkpoint.get("ngrams")

    # -- model ---------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Bag vectors sum / sqrt(n) (zeros for an empty bag): (M,), (N,) -> (N, D)."""
        return self.embedding(ids, offsets)

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
        self.val_metrics.update(self.scores(self(batch)), batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.val_metrics.log(self, "val")

    def test_step(self, batch: dict, batch_idx: int):
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.val_metrics.log(self, "test")

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


# -- scoring ---------------------------------------------------------------------------------
