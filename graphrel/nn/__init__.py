"""Plain torch modules for students (tensors only, no Lightning, no files), one per file."""

from graphrel.nn.kernel_pooling import KernelPooling
from graphrel.nn.metapath_attention import MetapathAttention
from graphrel.nn.ngram_bag import NgramBag
from graphrel.nn.semantic_attention import SemanticAttention
from graphrel.nn.wordpiece_encoder import WordpieceEncoder

__all__ = ["KernelPooling", "MetapathAttention", "NgramBag", "SemanticAttention", "WordpieceEncoder"]
