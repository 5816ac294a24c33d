"""The train / val / test loaders every DataModule here builds the same way."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader


class SplitDataModule(L.LightningDataModule):
    """Train / val / test loaders from one ``_loader(split, shuffle)`` (shuffled for train only)."""

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        raise NotImplementedError
