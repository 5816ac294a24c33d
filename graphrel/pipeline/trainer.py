"""The Lightning ``Trainer`` every training stage of the main job uses."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def stage_trainer(epochs: int, run_dir: Path, name: str, progress: bool, monitor: str | None = "val_auc",
                  precision: str = "32-true"):
    """A deterministic CPU trainer without logger or sanity pass (it would draw seeds).

    With ``monitor``, the best epoch's checkpoint (highest ``monitor``) is kept as
    ``<run_dir>/<name>/best.ckpt``; without, no checkpoint is written. ``precision``: Lightning's
    (``"32-true"`` or ``"bf16-mixed"``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = []
    if monitor:
        callbacks.append(ModelCheckpoint(dirpath=run_dir / name, filename="best", monitor=monitor, mode="max",
                                         save_top_k=1, enable_version_counter=False))
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                     enable_checkpointing=bool(monitor),
                     enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                     deterministic=True, default_root_dir=run_dir, precision=precision)
