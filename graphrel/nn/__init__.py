"""Plain torch modules for students (tensors only, no Lightning, no files)."""

from graphrel.nn.interaction import KernelPooling
from graphrel.nn.metapath import MetapathAttention, SemanticAttention
from graphrel.nn.text import WordpieceEncoder

__all__ = ["KernelPooling", "MetapathAttention", "SemanticAttention", "WordpieceEncoder"]
