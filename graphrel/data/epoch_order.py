"""Row order of one training epoch, the same in every DDP process.

Batch datasets here hand out whole batches (item ``i`` = rows
``order[i * batch_size:(i + 1) * batch_size]``). Under DDP each rank reads only its share
of the items (rank 1 never reads item 0), so the order must follow the trainer's epoch,
not the reads: :class:`EpochOrder` permutes the rows with ``seed + epoch``, the epoch
given by ``epoch_of`` (the trainer's ``current_epoch``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def trainer_epoch(module) -> int | None:
    """The current epoch of ``module``'s trainer (a LightningModule or -DataModule); None
    when it has no trainer. Pass ``functools.partial(trainer_epoch, module)`` as
    :class:`EpochOrder`'s ``epoch_of``."""
    trainer = getattr(module, "trainer", None)
    return None if trainer is None else int(trainer.current_epoch)


class EpochOrder:
    """Row permutation of the current epoch.

    Args:
        num_rows: N, rows of the dataset.
        shuffle: permute (True) or keep 0..N-1 (False).
        seed: epoch ``e``'s order is ``numpy.random.default_rng(seed + e).permutation(N)``.
        epoch_of: returns the current epoch (the trainer's), so that every DDP rank, which
            only reads its share of the items, cuts the same permutation. When it is None
            or returns None, the epoch counts the times item 0 was read (one process only).
        groups: (N,) int64 or None: rows of one group (a query's candidates) stay together,
            the groups in random order and the rows within each group too, so a batch holds
            whole queries (but one cut by a batch boundary), as ranking losses need.

    Shapes:
        - order_for(i) -> (N,) int64, the rows of the epoch in which item ``i`` is read.
    """

    def __init__(self, num_rows: int, shuffle: bool, seed: int,
                 epoch_of: Callable[[], int | None] | None = None, groups: np.ndarray | None = None) -> None:
        self.num_rows, self.shuffle, self.seed, self.epoch_of = num_rows, shuffle, seed, epoch_of
        self.groups = None if groups is None else pd.factorize(np.asarray(groups))[0]
        self.epoch = 0  # next epoch when counted by reads of item 0
        self._order_epoch: int | None = None
        self.order = np.arange(num_rows)

    def permutation(self, epoch: int) -> np.ndarray:
        """(N,) int64: the rows of ``epoch`` in order."""
        rng = np.random.default_rng(self.seed + epoch)
        if self.groups is None:
            return rng.permutation(self.num_rows)
        group_order = rng.permutation(int(self.groups.max()) + 1 if len(self.groups) else 0)
        return np.lexsort((rng.random(self.num_rows), group_order[self.groups]))

    def order_for(self, i: int) -> np.ndarray:
        """The row order to read item ``i`` with (reshuffled when a new epoch starts)."""
        if not self.shuffle:
            return self.order
        epoch = self.epoch_of() if self.epoch_of is not None else None
        if epoch is None:
            if i == 0:
                self.order = self.permutation(self.epoch)
                self.epoch += 1
        elif epoch != self._order_epoch:
            self.order = self.permutation(epoch)
            self._order_epoch, self.epoch = epoch, epoch + 1
        return self.order
