"""How the ego graph names things: node names and one-line texts."""

from __future__ import annotations

import re

__all__ = ["node_name", "short"]


def node_name(kind: str, node_id: str) -> str:
    """Name of a node in the ego graph: ``"query:<id>"`` or ``"product:<id>"``."""
    return f"{kind}:{node_id}"


def short(text: str, width: int, ellipsis: str = "...") -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= width else text[: max(1, width - len(ellipsis))].rstrip() + ellipsis
