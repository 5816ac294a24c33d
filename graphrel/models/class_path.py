"""The class path a LightningModule's checkpoint carries, so LightningCLI can rebuild it."""

from __future__ import annotations


def add_class_path(checkpoint: dict, model) -> None:
    """Name ``model``'s class in ``checkpoint["hyper_parameters"]["_class_path"]`` (when the
    checkpoint has hyper-parameters): LightningCLI in subclass mode (``graphrel predict |
    test --ckpt_path``) rebuilds the model from it, also from a checkpoint written by
    ``graphrel pipeline``."""
    if "hyper_parameters" in checkpoint:
        checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"],
                                          "_class_path": f"{type(model).__module__}.{type(model).__qualname__}"}
