"""``graphrel fit / validate / test / predict``: Lightning's CLI on graphrel's models, with a
``--ckpt_path last`` that finds the last checkpoint of an earlier fit.

Lightning resolves ``--ckpt_path last`` only in the checkpoint folder of the *new* fit's log
version (``lightning_logs/version_N+1/checkpoints``), which is empty: a resumed fit silently
started again from step 0 (measured with Lightning 2.6). :class:`GraphrelCLI` resolves it
before the run, from every version of the logger (:func:`last_checkpoint`), preferring the
version whose ``config.yaml`` is given (``graphrel fit --config
lightning_logs/version_0/config.yaml --ckpt_path last``). Several ``--config`` files are
merged as LightningCLI (jsonargparse) documents: later files override earlier ones key by
key, command-line flags after them override both.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from graphrel.errors import GraphrelInputError

__all__ = ["GraphrelCLI", "last_checkpoint"]


class GraphrelCLI(LightningCLI):
    """LightningCLI whose ``--ckpt_path last`` also finds the last checkpoint of an earlier
    fit (:func:`last_checkpoint`)."""

    def _resolve_last(self) -> None:
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") == "last":
            config["ckpt_path"] = last_checkpoint(self.trainer, self.config[self.subcommand].get("config") or [])

    before_fit = before_validate = before_test = before_predict = _resolve_last


def last_checkpoint(trainer, config_files) -> str:
    """What ``--ckpt_path last`` resumes from: the newest ``last*.ckpt`` of the trainer's
    ModelCheckpoint callbacks with ``save_last``, looked for in their own directory
    (Lightning's lookup) and, for a callback without ``dirpath``, in the ``checkpoints/``
    folder of every version of the first logger (``lightning_logs/version_*/checkpoints``).
    When a ``--config`` file is the ``config.yaml`` of a version that has a last checkpoint,
    that version's is taken. ``"last"`` when there is none yet: Lightning then warns and
    starts afresh (``--ckpt_path last`` may be set before the first fit).

    Args:
        trainer: the CLI's Trainer (its checkpoint callbacks and loggers).
        config_files: the ``--config`` paths given.

    Returns:
        A checkpoint path, or ``"last"``.

    Raises:
        GraphrelInputError: no ModelCheckpoint callback saves a last checkpoint.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.save_last]
    if not callbacks:
        raise GraphrelInputError("--ckpt_path last: no ModelCheckpoint callback saves a last checkpoint",
                                 fix="add save_last: true to a ModelCheckpoint's init_args in trainer.callbacks "
                                     "(as configs/korder.yaml), or pass --ckpt_path PATH")
    found: set[Path] = set()
    for callback in callbacks:
        found |= {Path(path).resolve() for path in callback._find_last_checkpoints(trainer)}
        if callback.dirpath is None and trainer.loggers:  # where Lightning puts them: save_dir/name/version/
            logger = trainer.loggers[0]
            root = Path(logger.save_dir if logger.save_dir is not None else trainer.default_root_dir, str(logger.name))
            pattern = re.compile(rf"^{re.escape(callback.CHECKPOINT_NAME_LAST)}(-\d+)?$")
            found |= {path.resolve() for path in root.glob(f"*/checkpoints/*{callback.FILE_EXTENSION}")
                      if pattern.match(path.stem)}
    if not found:
        return "last"
    own = {Path(os.fspath(file)).resolve().parent / "checkpoints" for file in config_files}
    chosen = max([path for path in found if path.parent in own] or found, key=lambda path: path.stat().st_mtime)
    logging.getLogger("graphrel").info("--ckpt_path last: %s", chosen)
    return str(chosen)
