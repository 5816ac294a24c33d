"""k-order graph student: a reconstruction of BERM (Liu et al., "Knowledge Distillation
based Contextual Relevance Matching for E-commerce Product Search", EMNLP 2022 Industry
Track, arXiv 2210.01701).

Public facts (the paper): a student scores a pair from its text (0-order relevance, a
word-interaction matrix between query and title tokens) and from its metapath
neighbours in the query-product graph (higher-order relevance, graph attention), trained
on teacher labels. Reconstruction here (this package's choices where the paper gives no
detail):

- text: the teacher's frozen wordpiece embeddings and a trainable projection to
  ``text_dim`` (128), initialised from the matrix's top singular vectors
  (:class:`graphrel.nn.WordpieceEncoder`);
- 0-order: K-NRM kernel pooling of the cosine interaction matrix plus pooled query /
  title vectors [e_q; e_p; e_q*e_p; |e_q-e_p|] -> MLP -> h0;
- order k: metapaths Q-P, P-Q (k>=1), Q-P-Q, P-Q-P (k=2), at most ``cap`` neighbours each;
  each neighbour carries its text vector and its edge's teacher score; GATv2-style
  attention per metapath (:class:`graphrel.nn.MetapathAttention`; similarity to the
  centre taken in a projected space so inference gathers small per-node tables), HAN
  semantic attention across metapaths, plus per-metapath score statistics and (option
  ``neighbourhood_statistics``) uncapped one-hop statistics of the query and the product;
- head: MLP([h0; graph summary; statistics]) -> logit;
- loss: soft-target BCE against sigmoid(teacher_logit / T) + ``label_weight`` x BCE on
  human labels where present (training queries only).

k=0 is the text-only student. Node features come from text only, so unseen queries and
products are scored (inductive).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch_geometric.nn import MLP

from graphrel.backbone import load_word_embeddings
from graphrel.data.graph import (NEIGHBOUR_TYPE, NUM_SIMILAR_QUERY_STATISTICS, SIMILAR_QUERY_METAPATHS,
                                 metapaths_for_order)
from graphrel.data.query_neighbours import check_settings
from graphrel.losses import distillation_loss, listwise_kl, margin_mse, temperature_targets
from graphrel.metrics import RELEVANT_NORMALISED
from graphrel.models.class_path import add_class_path
from graphrel.models.validation import RelevanceValidation
from graphrel.nn.functional import gather_rows, masked_mean
from graphrel.nn.kernel_pooling import KernelPooling
from graphrel.nn.metapath_attention import NUM_STATS, MetapathAttention
from graphrel.nn.semantic_attention import SemanticAttention
from graphrel.nn.wordpiece_encoder import WordpieceEncoder

NODE_TYPES = ("query", "product")
#: Ranking distillation losses a student may add to its pointwise loss (``ranking_loss``).
RANKING_LOSSES = {"none": None, "listwise": listwise_kl, "margin_mse": margin_mse}
#: Width of the batch's ``neighbourhood`` statistics (see ``MetapathNeighbours.neighbourhood_statistics``).
NUM_NEIGHBOURHOOD_STATISTICS = 4


class KOrderStudent(L.LightningModule):
    """k-order graph student (BERM reconstruction; see module docstring).

    Args:
        order: k in {0, 1, 2}: 0 text only; 1 adds Q-P and P-Q; 2 adds Q-P-Q and P-Q-P.
        text_dim: D, the student's text space (projection of the wordpiece embeddings,
            initialised from their top singular vectors); None keeps the backbone's width.
        hidden: H, neighbour message size.
        text_hidden: width of the 0-order MLP.
        num_kernels: K-NRM kernels.
        backbone: teacher backbone whose wordpiece embeddings the student starts from
            (``"minilm-l6"`` or a local HF directory).
        backbone_config: for tests: ``{"vocab_size": V, "hidden_size": D}`` -> random
            embeddings instead of the backbone's.
        learning_rate, weight_decay: AdamW settings.
        temperature: T of the soft targets sigmoid(teacher_logit / T).
        label_weight: weight of the human-label BCE term (0 = teacher only).
        neighbourhood_statistics: also feed the head the uncapped one-hop statistics of
            the pair (mean teacher score and log degree of the query's other products and of
            the product's other queries, own edge left out): the whole neighbourhood's size
            and average relevance, which capped neighbours miss. With k=0 this is BERM-O,
            the online model: 0-order text part plus per-node summaries precomputed from the
            graph (two table look-ups, no attention); the text-only k=0 student sets it False.
        text_fallback: a graph student (k >= 1 or neighbourhood statistics) carries a frozen
            copy of a trained text-only student (:meth:`load_text_student`; ``graphrel fit``
            loads ``<run_dir>/student_k0``) and scores with it every pair :meth:`query_unknown`
            marks. It shares the frozen wordpiece matrix (no second copy). Off by default:
            chosen on Home Depot's validation queries (``tools/choose_on_validation.py``,
            queries new to the log, students with ``similar_queries=4``), the k-order student's
            own path beats the text-only student on every pair (AUC +0.0097 [+0.0025, +0.0167],
            Spearman +0.019 [+0.007, +0.032]) while routing the 848 of 7,439 pairs of which
            nothing is known to the fallback leaves no difference (AUC +0.0043 [-0.0028,
            +0.0112]): two models' score scales mixed in one ranking cost more than the text
            student's edge on those pairs. (Without nearest logged queries the graph path was no
            better than the text student for a new query, AUC +0.0005 [-0.0044, +0.0060]: that
            is when a fallback pays.)
        similar_queries: m > 0: the student also reads each pair's m nearest logged queries
            (:class:`graphrel.data.query_neighbours.NearestLoggedQueries`, built from the graph
            at training and scoring time alike; a logged query never finds its own text): with
            k >= 1 the metapaths ``Q~Q`` and ``Q~Q-P``, and with neighbourhood statistics their
            four statistics (:meth:`graphrel.data.graph.MetapathNeighbours.similar_query_paths`).
            A query new to the log then has a neighbourhood (Cold Brew, Zheng et al., arXiv
            2111.04840, gives edgeless nodes one of their nearest nodes by features), and a
            text fallback takes only pairs of which nothing is known: no other product of the
            query, no similar logged query, no other query of the product. 0 (a checkpoint
            saved before the option existed): none; the pipeline's default is 4 (m = 8 on validation:
            AUC 0.7229 against 0.7228, both +0.0097 over the text-only student).
        min_similarity: text similarity in [0, 1) a logged query needs to be a neighbour.
        ranking_loss: ``"none"``, ``"listwise"`` (KL between the teacher's and the student's
            softmax over a query's candidates, Rank-DistiLLM, arXiv 2405.07920) or
            ``"margin_mse"`` (MarginMSE, Hofstätter et al., arXiv 2010.02666), added to the
            pointwise loss with weight ``ranking_weight``; needs batches of whole queries
            (``StudentDataModule(group_by_query=True)``, which the pipeline sets).
        ranking_weight: weight >= 0 of the ranking loss.
        relevance_threshold: normalised label in (0, 1] at or above which a validation pair
            counts as relevant for ``val_auc``, the checkpoint monitor (the pipeline passes
            its ``evaluation.relevance_threshold``; 0.75 = 2.5 on a 1-3 scale).

    The defaults are the pipeline's k-order student (``graphrel.pipeline.config.StudentConfig``,
    ``configs/home_depot.yaml``, ``configs/korder.yaml``): k=2 with neighbourhood statistics.

    Batch (see :class:`graphrel.data.features.PairFeaturizer`) plus, for training,
    ``teacher_logit`` (B,) and ``label`` (B,) in [0, 1] or NaN. ``forward`` returns
    logits (B,); ``sigmoid(logit)`` is the relevance score in [0, 1].
    """

    def __init__(self, order: int = 2, hidden: int = 32, text_hidden: int = 128, num_kernels: int = 11,
                 text_dim: int | None = 128,
                 backbone: str = "minilm-l6", backbone_config: dict | None = None,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, temperature: float = 1.0,
                 label_weight: float = 1.0, neighbourhood_statistics: bool = True,
                 text_fallback: bool = False, relevance_threshold: float = RELEVANT_NORMALISED,
                 similar_queries: int = 0, min_similarity: float = 0.5, ranking_loss: str = "none",
                 ranking_weight: float = 1.0) -> None:
        super().__init__()
        if ranking_loss not in RANKING_LOSSES:
            raise ValueError(f"ranking_loss must be one of {tuple(RANKING_LOSSES)}, got {ranking_loss!r}")
        if not ranking_weight >= 0:
            raise ValueError(f"ranking_weight must be >= 0, got {ranking_weight}")
        check_settings(similar_queries, min_similarity)
        self.save_hyperparameters()
        self.metapaths = metapaths_for_order(order)
        if similar_queries and order > 0:
            self.metapaths += SIMILAR_QUERY_METAPATHS
        self.reads_similar_query_statistics = bool(similar_queries and neighbourhood_statistics)
        self.encoder = WordpieceEncoder(load_word_embeddings(backbone, backbone_config), dim=text_dim)
        dim = self.encoder.dim
        self.kernels = KernelPooling(num_kernels)
        self.text_mlp = MLP([num_kernels + 4 * dim, text_hidden, text_hidden // 2], dropout=0.1, norm=None)
        head_in = text_hidden // 2
        if self.metapaths:
            self.metapath_attention = MetapathAttention(dim, hidden, num_metapaths=len(self.metapaths),
                                                        num_node_types=len(NODE_TYPES))
            self.semantic = SemanticAttention(hidden)
            head_in += hidden + NUM_STATS * len(self.metapaths)
        if neighbourhood_statistics:
            head_in += NUM_NEIGHBOURHOOD_STATISTICS
        if self.reads_similar_query_statistics:
            head_in += NUM_SIMILAR_QUERY_STATISTICS
        self.head = MLP([head_in, 64, 1], dropout=0.1, norm=None)
        self.text_fallback = None
        if text_fallback and head_in > text_hidden // 2:
            # Its own random draws must not change the graph student's training (dropout masks).
            with torch.random.fork_rng():
                self.text_fallback = nn.ModuleDict({
                    "encoder": self.encoder.sharing_embeddings(),
                    "text_mlp": MLP([num_kernels + 4 * dim, text_hidden, text_hidden // 2], dropout=0.1, norm=None),
                    "head": MLP([text_hidden // 2, 64, 1], dropout=0.1, norm=None)})
            self.text_fallback.requires_grad_(False)
        self._text_fallback_loaded = False
        self.node_vectors: dict[str, torch.Tensor] = {}
        self._projected_nodes: dict[str, torch.Tensor] = {}
        self.val_metrics = RelevanceValidation(relevance_threshold)

    # -- graph nodes -----------------------------------------------------------------
    def attach_graph(self, query_node_tokens: torch.Tensor, product_node_tokens: torch.Tensor) -> None:
        """Pool the text vector of every graph node once (frozen embeddings, so fixed).

        Args:
            query_node_tokens: (Nq, Lq) int64; product_node_tokens: (Np, Lp) int64.
            A zero row is appended to each table, so node index -1 means "no neighbour".
        """
        for kind, tokens in (("query", query_node_tokens), ("product", product_node_tokens)):
            vectors = self.encoder.pool_frozen(tokens.to(self.device))
            self.node_vectors[kind] = torch.cat([vectors, vectors.new_zeros(1, vectors.shape[1])])
        self._projected_nodes = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "featurizer"):
            featurizer = datamodule.featurizer
            wanted = self.hparams.get("similar_queries", 0)
            found = featurizer.similar_queries
            if wanted and (self.metapaths or self.reads_similar_query_statistics) and (
                    found is None or (found.m, found.min_similarity) != (wanted, self.hparams.min_similarity)):
                from graphrel.errors import GraphrelInputError

                raise GraphrelInputError("the student reads nearest logged queries that its data module does not "
                                         "add the same way", fix="give data.init_args the model's "
                                         "similar_queries and min_similarity")
            self.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
        if stage == "fit" and self.text_fallback is not None and not self._text_fallback_loaded:
            # `graphrel fit` (LightningCLI): the fallback is the run's text-only student.
            self._load_run_text_student(getattr(datamodule, "hparams", {}).get("run_dir"))

    @staticmethod
    def _run_text_student(run_dir) -> "KOrderStudent":
        from graphrel.errors import GraphrelInputError
        from graphrel.run import STUDENT_CHECKPOINT, TEXT_STUDENT

        path = Path(run_dir or ".") / TEXT_STUDENT / STUDENT_CHECKPOINT
        if not path.is_file():
            raise GraphrelInputError("the text fallback of a graph student needs the run's text-only student",
                                     path=path, fix="run the pipeline (its student_k0 stage) on this run "
                                     "directory first, or set model.init_args.text_fallback false")
        return KOrderStudent.load_from_checkpoint(path, map_location="cpu")

    def _load_run_text_student(self, run_dir) -> None:
        from graphrel.errors import GraphrelInputError

        text_student = self._run_text_student(run_dir)
        try:
            self.load_text_student(text_student)
        except ValueError as error:
            raise GraphrelInputError(f"the run's text-only student cannot be this student's fallback: {error}",
                                     path=Path(run_dir), fix="give the graph student the text student's "
                                     "text_dim, text_hidden and num_kernels, or set text_fallback false") from None

    def clear_inference_cache(self) -> None:
        """Forget tables projected for inference (weights changed)."""
        self._projected_nodes = {}
        self.encoder.clear_inference_cache()

    def train(self, mode: bool = True):
        self.clear_inference_cache()
        super().train(mode)
        if self.text_fallback is not None:
            self.text_fallback.eval()  # a frozen trained text student: no dropout
        return self

    def load_text_student(self, text_student: "KOrderStudent") -> None:
        """Copy a trained text-only student (k=0, no neighbourhood statistics) into the
        fallback that scores pairs whose query has no neighbour in the graph.

        Raises:
            ValueError: this student has no fallback (``text_fallback=False`` or no graph
                part), or ``text_student`` is not a text-only student of the same shape.
        """
        if self.text_fallback is None:
            raise ValueError("this student has no text fallback (text_fallback=False or it reads no graph)")
        if text_student.metapaths or text_student.hparams.neighbourhood_statistics:
            raise ValueError("the fallback must be a text-only student (order 0, no neighbourhood statistics)")
        if not torch.equal(text_student.encoder.embedding.weight, self.encoder.embedding.weight):
            raise ValueError("the text student reads other wordpiece embeddings (another backbone)")
        fallback = self.text_fallback
        pairs = ((fallback["encoder"].projection, text_student.encoder.projection),
                 (fallback["text_mlp"], text_student.text_mlp), (fallback["head"], text_student.head))
        for mine, theirs in pairs:
            if {k: v.shape for k, v in mine.state_dict().items()} != {k: v.shape for k, v in theirs.state_dict().items()}:
                raise ValueError("the text student has another shape (text_dim, text_hidden or num_kernels "
                                 "differ from this student's)")
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())
        fallback["encoder"].clear_inference_cache()
        self._text_fallback_loaded = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        add_class_path(checkpoint, self)  # for `graphrel predict --ckpt_path` (LightningCLI)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Lightning restores train/eval by setting ``.training`` directly, bypassing
        # train(); clearing here keeps the inference caches true to the weights.
        self.clear_inference_cache()

    def _neighbours(self, batch: dict) -> torch.Tensor:
        """Projected neighbour vectors (B, M, C, H) of every metapath the student reads.

        In training they come from the frozen pooled vectors (the projections learn). At
        inference, from one table of projected vectors of both node types, computed once per
        graph: one gather of H floats per neighbour for all metapaths (one gather per metapath
        cost 6 gathers, 6 checks and a stack per batch). Absent neighbours (-1) get some finite
        row; the attention gives them weight exactly 0 (their scores are NaN).
        """
        if self.training or torch.is_grad_enabled():
            out = []
            for name in self.metapaths:
                kind = NEIGHBOUR_TYPE[name]
                vectors = self.encoder.project(gather_rows(self.node_vectors[kind], batch[f"{name}/ids"]))
                out.append(self.metapath_attention.project(vectors, NODE_TYPES.index(kind)))
            return torch.stack(out, 1)
        if not self._projected_nodes:
            tables = [self.metapath_attention.project(self.encoder.project(self.node_vectors[kind]), node_type)
                      for node_type, kind in enumerate(NODE_TYPES)]
            first_row = dict(zip(NODE_TYPES, (0, len(tables[0]))))
            self._projected_nodes = {"table": torch.cat(tables), "first_row": torch.tensor(
                [first_row[NEIGHBOUR_TYPE[name]] for name in self.metapaths]).view(1, -1, 1)}
        ids = torch.stack([batch[f"{name}/ids"] for name in self.metapaths], 1)
        return gather_rows(self._projected_nodes["table"], ids + self._projected_nodes["first_row"])

    # -- model -------------------------------------------------------------------------
    def _text(self, batch: dict, encoder: WordpieceEncoder, text_mlp: MLP):
        """0-order relevance features h0 (B, text_hidden / 2) and pooled texts e_q, e_p (B, D)."""
        query, query_mask = encoder.tokens(batch["query_tokens"])
        title, title_mask = encoder.tokens(batch["product_tokens"])
        e_q, e_p = masked_mean(query, query_mask), masked_mean(title, title_mask)
        kernel_features = self.kernels(query, query_mask, title, title_mask,
                                       encoder.token_norms(batch["query_tokens"], query),
                                       encoder.token_norms(batch["product_tokens"], title))
        return text_mlp(torch.cat([kernel_features, e_q, e_p, e_q * e_p, (e_q - e_p).abs()], -1)), e_q, e_p

    def query_unknown(self, batch: dict) -> torch.Tensor:
        """(B,) bool: the pairs the text fallback scores.

        Without ``similar_queries``: pairs whose query has no other product in the graph (a
        query new to the log, or whose only edge is the pair itself). With them: pairs of
        which nothing is known, i.e. that, and no similar logged query, and no other query
        of the product in the graph.
        """
        if "Q-P/scores" in batch:
            unknown = torch.isnan(batch["Q-P/scores"]).all(-1)
        else:
            unknown = batch["neighbourhood"][:, 1] == 0  # log(1 + the query's degree)
        if self.hparams.get("similar_queries", 0):
            unknown = unknown & (batch["similar_queries"][:, 0] == 0)  # no similar logged query
            if "neighbourhood" in batch:
                unknown = unknown & (batch["neighbourhood"][:, 3] == 0)  # log(1 + the product's degree)
            else:
                unknown = unknown & torch.isnan(batch["P-Q/scores"]).all(-1)
        return unknown

    def _fallback_logits(self, batch: dict) -> torch.Tensor:
        fallback = self.text_fallback
        return fallback["head"](self._text(batch, fallback["encoder"], fallback["text_mlp"])[0]).squeeze(-1)

    def forward(self, batch: dict, return_attention: bool = False):
        unknown = None
        if self.text_fallback is not None and not self.training:
            unknown = self.query_unknown(batch)
            if bool(unknown.all()) and not return_attention:
                return self._fallback_logits(batch)
        text, e_q, e_p = self._text(batch, self.encoder, self.text_mlp)
        parts = [text]
        attention = {}
        if self.metapaths:
            if not self.node_vectors:
                raise RuntimeError("call attach_graph() before scoring with a graph student")
            projected = {kind: self.metapath_attention.project(e, NODE_TYPES.index(kind))
                         for kind, e in (("query", e_q), ("product", e_p))}
            centres = torch.stack([projected[NEIGHBOUR_TYPE[name]] for name in self.metapaths], 1)
            scores = torch.stack([batch[f"{name}/scores"] for name in self.metapaths], 1)
            summaries, weights, stats = self.metapath_attention(self._neighbours(batch), scores, centres)
            combined, semantic = self.semantic(summaries)
            attention = {name: weights[:, m] for m, name in enumerate(self.metapaths)}
            attention["metapaths"] = semantic
            parts += [combined, stats.flatten(1)]
        if self.hparams.neighbourhood_statistics:
            parts.append(batch["neighbourhood"])
        if self.reads_similar_query_statistics:
            parts.append(batch["similar_queries"])
        logits = self.head(torch.cat(parts, -1)).squeeze(-1)
        if unknown is not None and bool(unknown.any()):
            logits = torch.where(unknown, self._fallback_logits(batch), logits)
            attention["text_fallback"] = unknown
        return (logits, attention) if return_attention else logits

    # -- training ----------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int):
        logits = self(batch)
        targets = temperature_targets(batch["teacher_logit"], self.hparams.temperature)
        loss = distillation_loss(logits, targets, batch.get("label"), label_weight=self.hparams.label_weight)
        ranking = self.hparams.get("ranking_loss", "none")
        if ranking != "none" and self.hparams.ranking_weight > 0:
            options = {"temperature": self.hparams.temperature} if ranking == "listwise" else {}
            loss = loss + self.hparams.ranking_weight * RANKING_LOSSES[ranking](
                logits, batch["teacher_logit"], batch["query_group"], **options)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: dict, batch_idx: int):
        self.val_metrics.update(torch.sigmoid(self(batch)), batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.val_metrics.log(self)

    def predict_step(self, batch: dict, batch_idx: int):
        return torch.sigmoid(self(batch))

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.learning_rate,
                                      weight_decay=self.hparams.weight_decay, fused=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
