"""Whole batches as dataset items, in the row order of the trainer's epoch.

The featurisers here are vectorised, so a DataModule hands Lightning one item per batch
(``DataLoader(batch_size=None)``). :class:`EpochBatches` decides which rows make item
``i``; subclasses build the batch from those rows (graph features for the k-order students,
n-gram bags for BERT2DNN).
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from graphrel.data.epoch_order import EpochOrder


class EpochBatches(Dataset):
    """Item ``i`` is the batch of rows ``order[i * batch_size:(i + 1) * batch_size]``.

    With ``shuffle`` the rows are permuted once per epoch with ``seed + epoch``, the epoch
    given by ``epoch_of`` (the trainer's, the same on every DDP rank, so the ranks' shares
    of an epoch together hold every row once; see
    :class:`graphrel.data.epoch_order.EpochOrder`); without, ``order`` is 0..N-1.

    Args:
        num_rows: N, rows of the frame.
        batch_size: rows per item (the last item may be smaller).
        shuffle, seed, epoch_of, groups: as :class:`~graphrel.data.epoch_order.EpochOrder`.

    Shapes:
        - rows(i) -> (<= batch_size,) int64 row positions of item ``i``
        - len() -> ceil(N / batch_size)
    """

    def __init__(self, num_rows: int, batch_size: int, shuffle: bool, seed: int, epoch_of=None,
                 groups: np.ndarray | None = None) -> None:
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epochs = EpochOrder(num_rows, shuffle, seed, epoch_of, groups)

    def __len__(self) -> int:
        return (self.epochs.num_rows + self.batch_size - 1) // self.batch_size

    def rows(self, i: int) -> np.ndarray:
        """Row positions of item ``i`` (starts a new epoch's permutation when it is due)."""
        return self.epochs.order_for(i)[i * self.batch_size:(i + 1) * self.batch_size]

    def __getitem__(self, i: int) -> dict:
        return self.batch(i, self.rows(i))

    def batch(self, i: int, rows: np.ndarray) -> dict:
        """The batch of item ``i`` made of ``rows`` (subclasses)."""
        raise NotImplementedError
