"""A saved AXN index directory, searched by ``graphrel knn`` over the whole catalogue.

Layout (``OUT/index/mf_ind`` and ``OUT/index/mf_trns``, written by the evaluation)::

    manifest.json            format, model, index source, training queries, k_d, CE calls spent,
                             standardisation (offset, scale), sqrt(s), the dual encoder and BM25
                             retriever directories (relative to the run directory when inside it)
    model.pt                 mf_ind: the two gated MLPs; mf_trns: the learned item embeddings
                             and their catalogue rows

Item embeddings are rebuilt at load from the dual encoder's product embeddings: MF-Ind maps every
catalogue product through its item MLP (it is inductive); MF-Trns uses its learned embeddings
for the items it was fitted on and sqrt(s) x the dual encoder's for the rest (their initial value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.knn.factorisation import GatedResidualMLP
from graphrel.run import atomic_path, write_json

FORMAT = "graphrel-knn-index/1"
MANIFEST = "manifest.json"
MODEL = "model.pt"


def _portable(path: Path, run_dir: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(path)


def save_knn_index(directory: str | Path, model, *, name: str, run_dir: str | Path, dual_encoder_dir: str | Path,
                   bm25_dir: str | Path, item_rows: np.ndarray, offset: float, scale: float, extra: dict) -> None:
    """Write an index directory atomically.

    Args:
        directory: output (replaced if it exists).
        model: a fitted :class:`~graphrel.retrieval.knn.factorisation.InductiveFactorisation` (``name``
            ``mf_ind``) or :class:`~graphrel.retrieval.knn.factorisation.TransductiveFactorisation` (``mf_trns``).
        run_dir: the run directory (paths inside it are stored relative to it).
        dual_encoder_dir, bm25_dir: the retrievers of the first round.
        item_rows: (N,) catalogue rows of the items the model was fitted on.
        offset, scale: the targets' standardisation.
        extra: more manifest fields (index source, queries, CE calls, training figures).
    """
    if name == "mf_ind":
        state = {"query_side": model.query_side.state_dict(), "item_side": model.item_side.state_dict()}
    elif name == "mf_trns":
        state = {"items": model.item_embeddings(), "item_rows": torch.as_tensor(np.asarray(item_rows))}
    else:
        raise ValueError(f"unknown index model {name!r}")
    manifest = {"format": FORMAT, "model": name, "offset": float(offset), "scale": float(scale),
                "input_scale": float(model.input_scale), "dim": int(model.item_embeddings().shape[1]),
                "dual_encoder": _portable(dual_encoder_dir, run_dir), "bm25": _portable(bm25_dir, run_dir), **extra}
    with atomic_path(directory, directory=True) as tmp:
        torch.save(state, tmp / MODEL)
        write_json(manifest, tmp / MANIFEST)


@dataclass
class KnnIndex:
    """A loaded index: item embeddings of the whole catalogue and the parametric query side.

    Attributes:
        manifest: the directory's manifest.
        item_embeddings: V, (catalogue, d) float32, row = the dual encoder's catalogue row.
        offset, scale: the standardisation of CE scores before the least squares.
        query_side: (n, d) dual-encoder query embeddings -> (n, d) u_param (for the lambda blend).
        dual_encoder_dir, bm25_dir: resolved retriever directories.
    """

    manifest: dict
    item_embeddings: torch.Tensor
    offset: float
    scale: float
    query_side: object
    dual_encoder_dir: Path
    bm25_dir: Path

    @classmethod
    def load(cls, directory: str | Path, *, run_dir: str | Path) -> "KnnIndex":
        """Load an index directory.

        Raises:
            GraphrelInputError: not an index directory, or its dual encoder is missing.
        """
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file() or not (directory / MODEL).is_file():
            what = "no such directory" if not directory.exists() else "not a k-NN index directory (no manifest.json)"
            raise GraphrelInputError(what, path=directory,
                                     fix="build the index first (the knn evaluation writes OUT/index/mf_ind), "
                                         "or pass --index")
        try:
            manifest = json.loads(path.read_text())
        except ValueError:
            raise GraphrelInputError("manifest.json is not valid JSON", path=path, fix="rebuild the index") from None
        if manifest.get("format") != FORMAT:
            raise GraphrelInputError(f"unknown k-NN index format {manifest.get('format')!r}", path=path,
                                     fix=f"rebuild the index (expected {FORMAT})")
        resolve = lambda p: Path(p) if Path(p).is_absolute() else Path(run_dir) / p  # noqa: E731
        dual_encoder_dir, bm25_dir = resolve(manifest["dual_encoder"]), resolve(manifest["bm25"])
        if not (dual_encoder_dir / "product_embeddings.npy").is_file():
            raise GraphrelInputError("the index's dual encoder has no product_embeddings.npy", path=dual_encoder_dir,
                                     fix="pass the run directory the index was built on (--run-dir)")
        products = torch.as_tensor(np.load(dual_encoder_dir / "product_embeddings.npy"), dtype=torch.float32)
        scale_in = float(manifest["input_scale"])
        state = torch.load(directory / MODEL, weights_only=True)
        dim = products.shape[1]
        with torch.no_grad():
            if manifest["model"] == "mf_ind":
                item_side, query_side = GatedResidualMLP(dim), GatedResidualMLP(dim)
                item_side.load_state_dict(state["item_side"])
                query_side.load_state_dict(state["query_side"])
                vectors = torch.cat([item_side(products[s:s + 8192] * scale_in) for s in range(0, len(products), 8192)])

                def embed(x):
                    with torch.no_grad():
                        return query_side(torch.as_tensor(x, dtype=torch.float32) * scale_in)
            else:
                vectors = products * scale_in
                vectors[state["item_rows"].long()] = state["items"]

                def embed(x):
                    return torch.as_tensor(x, dtype=torch.float32) * scale_in
        return cls(manifest, vectors, float(manifest["offset"]), float(manifest["scale"]), embed,
                   dual_encoder_dir, bm25_dir)
