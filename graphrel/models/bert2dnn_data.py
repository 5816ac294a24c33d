"""LightningDataModule for BERT2DNN students: teacher-scored pairs of a run as n-gram bags."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from graphrel.data.epoch_order import trainer_epoch
from graphrel.data.ngrams import NgramFeaturizer, gather_bags, match_features
from graphrel.errors import GraphrelInputError
from graphrel.models.batches import EpochBatches
from graphrel.models.split_datamodule import SplitDataModule

#: Which transfer pairs join the training pairs.
TRANSFER_CHOICES = ("none", "train_queries", "all")


class BagBatches(EpochBatches):
    """Whole batches of pre-encoded pairs (one item = one batch, rows as :class:`EpochBatches`).

    Every distinct query and product text of the frame is encoded once; a batch gathers
    its rows' bags (vectorised): ``query_ids`` / ``query_offsets``, ``product_ids`` /
    ``product_offsets`` (as :meth:`NgramFeaturizer.encode`), ``teacher_logit`` (B,) and
    ``label`` (B,) float32, and with ``match`` the exact n-gram overlap ``match`` (B, 3).
    """

    def __init__(self, featurizer: NgramFeaturizer, frame: pd.DataFrame, batch_size: int, shuffle: bool,
                 seed: int, match: bool = True, epoch_of=None) -> None:
        super().__init__(len(frame), batch_size, shuffle, seed, epoch_of)
        self.match = match
        self.sides = {}
        for side, column in (("query", "query"), ("product", "product_text")):
            codes, unique = pd.factorize(frame[column].to_numpy(dtype=object))
            self.sides[side] = (codes.astype(np.int64), *featurizer.encode(list(unique)))
        self.teacher_logit = frame["teacher_logit"].to_numpy(np.float32)
        self.label = frame["label"].to_numpy(np.float32)

    def batch(self, i: int, rows: np.ndarray) -> dict:
        batch = {}
        for side, (codes, ids, offsets) in self.sides.items():
            bag_ids, bag_offsets = gather_bags(ids, offsets, codes[rows])
            batch[f"{side}_ids"], batch[f"{side}_offsets"] = torch.from_numpy(bag_ids), torch.from_numpy(bag_offsets)
        if self.match:  # exact n-gram overlap (B, 3), for students with match_features=True
            batch["match"] = torch.from_numpy(match_features(batch["query_ids"].numpy(),
                                                             batch["query_offsets"].numpy(),
                                                             batch["product_ids"].numpy(),
                                                             batch["product_offsets"].numpy()))
        batch["teacher_logit"] = torch.from_numpy(self.teacher_logit[rows])
        batch["label"] = torch.from_numpy(self.label[rows])
        return batch


class Bert2DnnDataModule(SplitDataModule):
    """Teacher-scored pairs of a pipeline run, as n-gram bags for a BERT2DNN student.

    Reads ``<run_dir>/pairs.parquet`` (every pair with its ``split``: train / val / test /
    transfer) joined with ``<run_dir>/teacher_scores.parquet`` (``teacher_logit``).
    Training pairs: the ``train`` split plus transfer pairs (``transfer``), all with
    teacher logits, human labels only on ``train``. Validation: ``val`` pairs with their
    human labels; test: ``test``. The n-gram vocabulary (:attr:`ngrams`) is built from
    the training pairs' texts only.

    Args:
        run_dir: a finished pipeline run directory.
        batch_size: pairs per step (128 in the paper).
        transfer: ``"train_queries"`` (transfer pairs of training queries: no val/test
            query is seen in training, as the graph students), ``"all"`` (every transfer
            pair, also those of val/test queries: their texts and teacher scores, never
            labels, reach training) or ``"none"`` (the labelled train split only).
        min_count: least number of distinct training texts an n-gram must occur in to
            get its own id; rarer ones share ``num_buckets`` hashing buckets.
        num_buckets: hashing buckets of the featuriser.
        seed: shuffling seed.
        match_features: add each batch's exact n-gram overlap (``match`` (B, 3), see
            :func:`graphrel.data.ngrams.match_features`), which a student built with
            ``match_features=True`` needs; False skips the work for one without.
    """

    def __init__(self, run_dir: str = "runs/home_depot", batch_size: int = 128, transfer: str = "train_queries",
                 min_count: int = 2, num_buckets: int = 1 << 16, seed: int = 0, match_features: bool = True) -> None:
        super().__init__()
        if transfer not in TRANSFER_CHOICES:
            raise GraphrelInputError(f"transfer must be one of {TRANSFER_CHOICES}, got {transfer!r}",
                                     fix="set data.init_args.transfer")
        self.save_hyperparameters()
        self.ngrams: NgramFeaturizer | None = None
        self.frames: dict[str, pd.DataFrame] = {}

    def prepare_data(self) -> None:
        pass

    def setup(self, stage: str | None = None) -> None:
        if self.ngrams is not None:
            return
        from graphrel.run import load_run_pairs

        self.set_pairs(load_run_pairs(Path(self.hparams.run_dir), test_labels=True))  # `graphrel test`

    def set_pairs(self, pairs: pd.DataFrame) -> None:
        """Use these teacher-scored pairs (columns query, product_text, label, split,
        teacher_logit) instead of reading the run; builds the vocabulary."""
        missing = {"query_id", "query", "product_text", "label", "split", "teacher_logit"} - set(pairs.columns)
        if missing:
            raise GraphrelInputError(f"run pairs lack columns {sorted(missing)}",
                                     fix="pass a run written by `graphrel pipeline` (with teacher scores)")
        split = pairs["split"]
        is_train = split == "train"
        if self.hparams.transfer == "all":
            is_train |= split == "transfer"
        elif self.hparams.transfer == "train_queries":
            from graphrel.data.split import training_pairs

            is_train |= training_pairs(pairs)
        train = pairs[is_train & pairs["teacher_logit"].notna()].copy()
        train.loc[train["split"] != "train", "label"] = np.nan
        if len(train) == 0:
            raise GraphrelInputError("no teacher-scored training pairs in the run", fix="check the run's split")
        self.frames = {"train": train, "val": pairs[split == "val"], "test": pairs[split == "test"]}
        texts = pd.concat([train["query"], train["product_text"]]).to_numpy(dtype=object)
        self.ngrams = NgramFeaturizer.fit(texts, min_count=self.hparams.min_count,
                                          num_buckets=self.hparams.num_buckets)
        self._datasets: dict[str, BagBatches] = {}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self._datasets:
            self._datasets[split] = BagBatches(self.ngrams, self.frames[split], self.hparams.batch_size,
                                                shuffle, self.hparams.seed, self.hparams.match_features,
                                                epoch_of=partial(trainer_epoch, self))
        return DataLoader(self._datasets[split], batch_size=None, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False)
