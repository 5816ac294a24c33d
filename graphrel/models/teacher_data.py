"""LightningDataModule of the cross-encoder teacher: labelled pairs, tokenised as pairs."""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import DataLoader

from graphrel.backbone import MINILM, load_tokenizer
from graphrel.data import load_dataset, split_by_query
from graphrel.models.split_datamodule import SplitDataModule


def sample_rows(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most ``limit`` rows, drawn reproducibly (all rows when ``limit`` is None)."""
    if limit is None or len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_index()


class TeacherDataModule(SplitDataModule):
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
