"""LightningDataModule of the graph students: teacher-scored pairs of a run, featurised with
their metapath neighbours."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from graphrel.backbone import MINILM, load_tokenizer
from graphrel.data.epoch_order import trainer_epoch
from graphrel.errors import GraphrelInputError
from graphrel.models.batches import EpochBatches
from graphrel.models.split_datamodule import SplitDataModule


class GraphBatches(EpochBatches):
    """Pre-featurised batches of graph students (one item = one batch, rows as :class:`EpochBatches`).

    An item holds the featuriser's tensors of its rows plus ``teacher_logit`` (B,) float32,
    ``label`` (B,) float32 (NaN = none), ``row_id`` (B,) int64, the frame's index labels
    of the rows (for a run: their row in ``pairs.parquet``; models ignore it, prediction
    writers use it), and ``query_group`` (B,) int64, the same number for the rows of one query
    (ranking losses compare a query's candidates). With ``group_by_query`` a shuffled epoch
    keeps each query's rows together.

    With ``shuffle``, a share ``new_query_share`` of each batch's rows, drawn with ``(seed,
    epoch, i)``, is read as if its query were new to the log (no query-side neighbours or
    statistics): a graph student then knows a missing neighbourhood (BERM evaluated on new
    queries).
    """

    def __init__(self, featurizer, frame: pd.DataFrame, batch_size: int, shuffle: bool, seed: int,
                 epoch_of=None, new_query_share: float = 0.0, group_by_query: bool = False) -> None:
        self.query_group = pd.factorize(frame["query_id"])[0].astype(np.int64)
        super().__init__(len(frame), batch_size, shuffle, seed, epoch_of,
                         groups=self.query_group if group_by_query else None)
        self.featurizer, self.frame = featurizer, frame
        self.new_query_share = new_query_share
        self.query_index, self.product_index = featurizer.neighbours.node_indices(frame["query_id"],
                                                                                  frame["product_id"])
        self.row_ids = frame.index.to_numpy(np.int64)

    def batch(self, i: int, rows: np.ndarray) -> dict:
        hide_query = None
        if self.shuffle and self.new_query_share > 0:
            epoch = max(self.epochs.epoch - 1, 0)  # the epoch whose permutation ``rows`` come from
            draws = np.random.default_rng((self.seed, epoch, i)).random(len(rows))
            if self.epochs.groups is not None:  # whole queries: a query is new for all its rows
                draws = draws[np.unique(self.query_group[rows], return_inverse=True)[1]]
            hide_query = draws < self.new_query_share
        batch = self.featurizer.from_nodes(self.query_index[rows], self.product_index[rows], hide_query=hide_query)
        batch["teacher_logit"] = torch.as_tensor(self.frame["teacher_logit"].to_numpy(np.float32)[rows])
        batch["label"] = torch.as_tensor(self.frame["label"].to_numpy(np.float32)[rows])
        batch["row_id"] = torch.as_tensor(self.row_ids[rows])
        batch["query_group"] = torch.as_tensor(self.query_group[rows])
        return batch


class StudentDataModule(SplitDataModule):
    """Teacher-scored pairs of a pipeline run, featurised for graph students.

    Reads ``<run_dir>/pairs.parquet`` (every pair with ``split`` and teacher scores, written
    by ``graphrel pipeline``) and ``<run_dir>/graph.pt``. Training pairs: the ``train``
    split plus transfer pairs of training queries (teacher targets; human labels only on
    ``train``). Validation: ``val`` pairs with their human labels. Prediction: the pairs
    of ``predict_split``, in file order.

    Every batch carries ``row_id`` (B,) int64, each pair's row in ``pairs.parquet`` (the
    index of the frame given to :meth:`set_data`), which
    :class:`graphrel.scoring.prediction_writer.ParquetPredictionWriter` pairs with the scores.

    Distributed runs (``trainer.strategy=ddp``): :meth:`setup` runs on every rank, so each
    rank builds its own featuriser (the student attaches the graph from it). Lightning
    gives each rank a share of the training and predict batches; every rank validates on
    the whole ``val`` split, so ``val_auc`` is the global figure and identical on every
    rank (checkpoint selection agrees); the training rows are shuffled with the same
    ``seed + epoch`` on every rank.

    Args:
        run_dir: a pipeline run directory.
        batch_size: pairs per step.
        cap: neighbours per metapath (4, as the pipeline's default preset).
        backbone: whose tokenizer reads the texts.
        seed: shuffling seed.
        predict_split: pairs scored by ``graphrel predict``: ``train``, ``val``, ``test``,
            ``test_context``, ``transfer`` (rows of ``pairs.parquet`` with that ``split``) or ``all``.
        group_by_query: training batches hold whole queries (for a student's ranking loss).
        new_query_share: share in [0, 1) of training pairs read as if their query were new
            to the log (query-side neighbourhood hidden), so that a graph student scores
            queries the log has never seen (protocol ``new_query``) at least as well as a
            text-only one.
        similar_queries, min_similarity: each pair's nearest logged queries the featuriser
            adds (:class:`graphrel.data.features.PairFeaturizer`); must equal the model's.

    Raises:
        GraphrelInputError: unknown ``predict_split``; a run without training pairs, or
            without pairs in ``predict_split`` when predicting.
    """

    PREDICT_SPLITS = ("train", "val", "test", "test_context", "transfer", "all")

    def __init__(self, run_dir: str = "runs/home_depot", batch_size: int = 256, cap: int = 4,
                 backbone: str = MINILM, seed: int = 0, predict_split: str = "test",
                 new_query_share: float = 0.3, similar_queries: int = 0, min_similarity: float = 0.5,
                 group_by_query: bool = False) -> None:
        super().__init__()
        if predict_split not in self.PREDICT_SPLITS:
            raise GraphrelInputError(f"unknown predict_split {predict_split!r}",
                                     fix=f"use one of {', '.join(self.PREDICT_SPLITS)}")
        if not 0 <= new_query_share < 1:
            raise GraphrelInputError(f"new_query_share must be in [0, 1), got {new_query_share}",
                                     fix="set data.init_args.new_query_share")
        self.save_hyperparameters()
        self.featurizer = None

    def setup(self, stage: str | None = None) -> None:
        if self.featurizer is not None:
            return
        from graphrel.run import load_run_graph, load_run_pairs
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache

        run = Path(self.hparams.run_dir)
        pairs = load_run_pairs(run, test_labels=True)  # `graphrel test` reports on test labels
        self.set_data(pairs, PairFeaturizer(load_run_graph(run), WordpieceCache(load_tokenizer(self.hparams.backbone)),
                                            cap=self.hparams.cap,
                                            similar_queries=self.hparams.get("similar_queries", 0),
                                            min_similarity=self.hparams.get("min_similarity", 0.5)))

    def set_data(self, pairs: pd.DataFrame, featurizer) -> None:
        """Use these teacher-scored pairs and this featuriser (the pipeline passes its own).

        ``pairs``' index labels become the batches' ``row_id`` (a non-unique or
        non-integer index is replaced by row positions 0..N-1).
        """
        if not pairs.index.is_unique or not pd.api.types.is_integer_dtype(pairs.index):
            pairs = pairs.reset_index(drop=True)
        from graphrel.data.split import training_pairs

        is_train = training_pairs(pairs)
        train = pairs[is_train].copy()
        train.loc[train["split"] != "train", "label"] = np.nan
        split = self.hparams.get("predict_split", "test")
        predict = pairs if split == "all" else pairs[pairs["split"] == split]
        self.frames = {"train": train, "val": pairs[pairs["split"] == "val"], "test": pairs[pairs["split"] == "test"],
                       "predict": predict}
        if len(self.frames["train"]) == 0:
            raise GraphrelInputError("no training pairs in the run", fix="check the run's split")
        self.featurizer = featurizer

    @property
    def predict_frame(self) -> pd.DataFrame:
        """The pairs :meth:`predict_dataloader` scores (index = ``row_id``); after :meth:`setup`."""
        return self.frames["predict"]

    def predict_dataloader(self) -> DataLoader:
        """Batches of the ``predict_split`` pairs in file order, each with ``row_id`` (B,).

        Under DDP Lightning hands the batches to the ranks round-robin; the batch size is
        lowered so that every rank gets at least one batch.
        """
        frame = self.frames["predict"]
        if len(frame) == 0:
            raise GraphrelInputError(f"no pairs in split {self.hparams.predict_split!r} of the run",
                                     path=self.hparams.run_dir, fix="choose another data.init_args.predict_split")
        world = self._world_size()
        batch_size = self.hparams.batch_size
        if world > 1 and -(-len(frame) // batch_size) < world:
            batch_size = -(-len(frame) // world)
        return DataLoader(GraphBatches(self.featurizer, frame, batch_size, False, self.hparams.seed),
                          batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        loader = self._loader("val", False)
        if self._world_size() > 1:
            # An explicit one-replica DistributedSampler: Lightning leaves it alone, so
            # every rank validates on all of ``val`` and logs the same global val_auc.
            sampler = torch.utils.data.DistributedSampler(loader.dataset, num_replicas=1, rank=0, shuffle=False)
            loader = DataLoader(loader.dataset, batch_size=None, sampler=sampler)
        return loader

    def _world_size(self) -> int:
        return int(getattr(self.trainer, "world_size", 1) or 1) if self.trainer is not None else 1

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = GraphBatches(self.featurizer, self.frames[split], self.hparams.batch_size, shuffle, self.hparams.seed,
                           epoch_of=partial(trainer_epoch, self),
                           new_query_share=self.hparams.get("new_query_share", 0.0) if shuffle else 0.0,
                           group_by_query=shuffle and self.hparams.get("group_by_query", False))
        return DataLoader(dataset, batch_size=None, shuffle=False)
