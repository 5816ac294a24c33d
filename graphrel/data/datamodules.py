"""LightningDataModules: pairs for the teacher, graph-featurised pairs for students."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from graphrel.backbone import MINILM, load_tokenizer
from graphrel.data.pairs import load_dataset, split_by_query
from graphrel.errors import GraphrelInputError


def sample_rows(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most ``limit`` rows, drawn reproducibly (all rows when ``limit`` is None)."""
    if limit is None or len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_index()


class _SplitDataModule(L.LightningDataModule):
    """Train / val / test loaders from one ``_loader(split, shuffle)``."""

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class TeacherDataModule(_SplitDataModule):
    """Labelled pairs for fine-tuning the cross-encoder teacher.

    Args:
        kind, path, options: dataset (see :func:`graphrel.data.load_dataset`).
        val_fraction, test_fraction, seed: query-disjoint split.
        max_train_pairs, max_val_pairs: optional caps (random, seeded).
        batch_size: pairs per step.
        backbone, max_length: tokenizer and truncation.
    """

    def __init__(self, path: str = "data/home-depot/train.csv.zip", kind: str = "home_depot",
                 options: dict | None = None, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0, max_train_pairs: int | None = 12000, max_val_pairs: int | None = 2000,
                 batch_size: int = 32, backbone: str = MINILM, max_length: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.frames: dict[str, pd.DataFrame] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.frames:
            return
        h = self.hparams
        pairs = load_dataset(h.kind, h.path, **(h.options or {}))
        splits = split_by_query(pairs, val_fraction=h.val_fraction, test_fraction=h.test_fraction, seed=h.seed)
        self.set_frames(sample_rows(splits["train"].frame, h.max_train_pairs, h.seed),
                        sample_rows(splits["val"].frame, h.max_val_pairs, h.seed), splits["test"].frame)

    def set_frames(self, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame | None = None) -> None:
        """Use these pair frames (columns query, product_text, label) instead of loading."""
        self.frames = {"train": train, "val": val, "test": test if test is not None else val}
        self.tokenizer = load_tokenizer(self.hparams.backbone)

    def _collate(self, rows: list[tuple[str, str, float]]) -> dict:
        queries, products, labels = zip(*rows)
        batch = dict(self.tokenizer(list(queries), list(products), padding=True, truncation=True,
                                    max_length=self.hparams.max_length, return_tensors="pt"))
        batch["label"] = torch.tensor(labels, dtype=torch.float32)
        return batch

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        frame = self.frames[split]
        rows = list(zip(frame["query"], frame["product_text"], frame["label"].astype(float)))
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(rows, batch_size=self.hparams.batch_size, shuffle=shuffle,
                          collate_fn=self._collate, generator=generator)


class _Batches(torch.utils.data.Dataset):
    """Pre-featurised batches: the featuriser is vectorised, so a whole batch is one item."""

    def __init__(self, featurizer, frame: pd.DataFrame, batch_size: int, shuffle: bool, seed: int) -> None:
        self.featurizer, self.frame, self.batch_size = featurizer, frame, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.query_index, self.product_index = featurizer.neighbours.node_indices(frame["query_id"],
                                                                                  frame["product_id"])
        self.order = np.arange(len(frame))

    def __len__(self) -> int:
        return (len(self.frame) + self.batch_size - 1) // self.batch_size

    def reshuffle(self) -> None:
        if self.shuffle:
            self.order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.frame))
            self.epoch += 1

    def __getitem__(self, i: int) -> dict:
        if i == 0:
            self.reshuffle()
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        batch = self.featurizer.from_nodes(self.query_index[rows], self.product_index[rows])
        batch["teacher_logit"] = torch.as_tensor(self.frame["teacher_logit"].to_numpy(np.float32)[rows])
        batch["label"] = torch.as_tensor(self.frame["label"].to_numpy(np.float32)[rows])
        return batch


class StudentDataModule(_SplitDataModule):
    """Teacher-scored pairs of a pipeline run, featurised for graph students.

    Reads ``<run_dir>/pairs.parquet`` (every pair with ``split`` and teacher scores, written
    by ``graphrel pipeline``) and ``<run_dir>/graph.pt``. Training pairs: the ``train``
    split plus transfer pairs of training queries (teacher targets; human labels only on
    ``train``). Validation: ``val`` pairs with their human labels.

    Args:
        run_dir: a pipeline run directory.
        batch_size: pairs per step.
        cap: neighbours per metapath.
        backbone: whose tokenizer reads the texts.
        seed: shuffling seed.
    """

    def __init__(self, run_dir: str = "runs/home_depot", batch_size: int = 256, cap: int = 8,
                 backbone: str = MINILM, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.featurizer = None

    def setup(self, stage: str | None = None) -> None:
        if self.featurizer is not None:
            return
        from graphrel.run import load_run_graph, load_run_pairs
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache

        run = Path(self.hparams.run_dir)
        pairs = load_run_pairs(run)
        self.set_data(pairs, PairFeaturizer(load_run_graph(run), WordpieceCache(load_tokenizer(self.hparams.backbone)),
                                            cap=self.hparams.cap))

    def set_data(self, pairs: pd.DataFrame, featurizer) -> None:
        """Use these teacher-scored pairs and this featuriser (the pipeline passes its own)."""
        train_queries = set(pairs.loc[pairs["split"] == "train", "query_id"])
        is_train = (pairs["split"] == "train") | ((pairs["split"] == "transfer") & pairs["query_id"].isin(train_queries))
        train = pairs[is_train].copy()
        train.loc[train["split"] != "train", "label"] = np.nan
        self.frames = {"train": train, "val": pairs[pairs["split"] == "val"], "test": pairs[pairs["split"] == "test"]}
        if len(self.frames["train"]) == 0:
            raise GraphrelInputError("no training pairs in the run", fix="check the run's split")
        self.featurizer = featurizer

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = _Batches(self.featurizer, self.frames[split], self.hparams.batch_size, shuffle, self.hparams.seed)
        return DataLoader(dataset, batch_size=None, shuffle=False)
