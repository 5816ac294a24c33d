"""A retriever directory and its Python API: ``Retriever.load(dir).search(queries, k)``.

Layout of a retriever directory::

    manifest.json            kind (dense | bm25 | xmc), name, teacher, parameters, dims, products
    catalogue.parquet        product_id, product_text (sorted by product id: the tie-break order)
    product_embeddings.npy   (dense) (N, d) float32, L2-normalised, row i = catalogue row i
    query_encoder/           (dense) sentence-transformers directory encoding queries
    hnsw_m32_efc40.faiss     (dense, optional) a saved HNSW graph (:func:`save_hnsw_index`)
    bm25/                    (bm25) bm25s index + tokenizer vocabulary
    xmc/                     (xmc) the XMC model (:class:`~graphrel.retrieval.encoding.xmc.XMCModel`): TF-IDF
                             query features + probabilistic label tree; it returns only its labels
    hybrid.json              (hybrid) no products of its own: the fusion of two sibling retriever
                             directories (:mod:`graphrel.retrieval.serving.hybrid`), loaded by :meth:`Retriever.load`

A dense retriever encodes queries with its query encoder and searches the product embeddings
with a faiss exact inner-product index (:class:`~graphrel.retrieval.search.index.ExactIndex`), or on
request an approximate HNSW index built at load time
(:class:`~graphrel.retrieval.search.hnsw.HNSWIndex`, ``Retriever.load(dir, index="hnsw")``; read
instead when :func:`save_hnsw_index` saved that graph in the directory); the
product embeddings may come from another encoder (an EmbedDistill asymmetric student keeps its
teacher's frozen product embeddings). Directories are written to a temporary sibling and renamed
into place, so a crash leaves no half-written retriever.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.search.index import IndexOptions, build_index

log = logging.getLogger("graphrel")

MANIFEST = "manifest.json"
PRODUCT_EMBEDDINGS = "product_embeddings.npy"
QUERY_ENCODER = "query_encoder"
BM25_DIR = "bm25"
XMC_DIR = "xmc"
FORMAT = "graphrel-retriever/1"


def checked_depth(k: int, catalogue_size: int) -> int:
    """The depth a search of ``k`` products per query returns: ``k``, or the catalogue's size
    (with a warning) when it has fewer products.

    Raises:
        ValueError: k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > catalogue_size:
        log.warning("k=%d is larger than the catalogue (%d products): returning %d per query",
                    k, catalogue_size, catalogue_size)
        return catalogue_size
    return k


def _write_directory(directory: Path, fill) -> None:
    """Build a directory in ``.NAME.tmp`` beside it with ``fill(tmp)``, then rename it into place."""
    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_dense_retriever(directory: str | Path, *, query_encoder, catalogue: Catalogue,
                         product_embeddings: np.ndarray, name: str, teacher: str | None = None,
                         product_encoder_parameters: int | None = None, extra: dict | None = None) -> None:
    """Write a dense retriever directory.

    Args:
        directory: output directory (replaced atomically if it exists).
        query_encoder: a ``SentenceTransformer`` whose embeddings live in the products' space.
        catalogue: the N products.
        product_embeddings: (N, d) float32, unit rows, aligned with ``catalogue``.
        name: the retriever's name in reports.
        teacher: name of the retriever this one was distilled from, or None.
        product_encoder_parameters: parameters of the encoder that made the product embeddings
            (reported; the product side is offline).
        extra: more manifest fields (training figures).

    Raises:
        ValueError: embeddings and catalogue disagree in size, or query and product dims differ.
    """
    from graphrel.retrieval.encoding.encoders import count_parameters

    vectors = np.ascontiguousarray(product_embeddings, dtype=np.float32)
    if vectors.shape[0] != len(catalogue):
        raise ValueError(f"{vectors.shape[0]} product embeddings for {len(catalogue)} products")
    if query_encoder.get_embedding_dimension() != vectors.shape[1]:
        raise ValueError(f"query encoder dim {query_encoder.get_embedding_dimension()} != product dim {vectors.shape[1]}")
    manifest = {"format": FORMAT, "kind": "dense", "name": name, "teacher": teacher,
                "parameters": count_parameters(query_encoder), "product_encoder_parameters": product_encoder_parameters,
                "dim": int(vectors.shape[1]), "products": len(catalogue), **(extra or {})}

    def fill(tmp: Path) -> None:
        catalogue.save(tmp)
        np.save(tmp / PRODUCT_EMBEDDINGS, vectors)
        query_encoder.save(str(tmp / QUERY_ENCODER))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    _write_directory(Path(directory), fill)


def save_bm25_retriever(directory: str | Path, *, catalogue: Catalogue, name: str = "bm25",
                        k1: float = 1.5, b: float = 0.75) -> None:
    """Index the catalogue's texts with BM25 (bm25s) and write a bm25 retriever directory."""
    from graphrel.retrieval.search.bm25 import BM25Index

    index = BM25Index(catalogue.texts, k1=k1, b=b)
    manifest = {"format": FORMAT, "kind": "bm25", "name": name, "teacher": None, "parameters": 0,
                "products": len(catalogue), "k1": k1, "b": b}

    def fill(tmp: Path) -> None:
        catalogue.save(tmp)
        index.save(tmp / BM25_DIR)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    _write_directory(Path(directory), fill)


def hnsw_index_path(directory: str | Path, options: IndexOptions) -> Path:
    """Where :func:`save_hnsw_index` puts the HNSW graph of ``options`` in a retriever directory."""
    return Path(directory) / f"hnsw_m{options.hnsw_m}_efc{options.hnsw_ef_construction}.faiss"


def save_hnsw_index(directory: str | Path, options: IndexOptions = IndexOptions("hnsw"), *,
                    threads: int | None = None) -> Path:
    """Build the HNSW graph of a dense retriever directory once and save it there.

    :meth:`Retriever.load` with the same ``hnsw_m`` and ``hnsw_ef_construction`` then reads it
    instead of building it (building takes seconds to tens of seconds for ~55k products;
    reading, well under one). The file is written to a temporary name and renamed into place.

    Args:
        directory: a dense retriever directory (its ``product_embeddings.npy``).
        options: HNSW options (``kind`` must be ``hnsw``; ``hnsw_ef_search`` is chosen at load).
        threads: faiss threads for the build.

    Returns:
        The file written (:func:`hnsw_index_path`).

    Raises:
        GraphrelInputError: not a dense retriever directory, or ``options.kind`` is not hnsw.
    """
    from graphrel.retrieval.search.hnsw import HNSWIndex

    directory = Path(directory)
    if options.kind != "hnsw":
        raise GraphrelInputError(f"only an HNSW index is saved, got index {options.kind!r}",
                                 fix="pass IndexOptions('hnsw', ...)")
    if not (directory / PRODUCT_EMBEDDINGS).is_file():
        raise GraphrelInputError(f"not a dense retriever directory (no {PRODUCT_EMBEDDINGS})", path=directory,
                                 fix="pass a dense retriever, e.g. RUN/retrieval/retrievers/dual_encoder")
    index = HNSWIndex(np.load(directory / PRODUCT_EMBEDDINGS), m=options.hnsw_m,
                      ef_construction=options.hnsw_ef_construction, threads=threads)
    path = hnsw_index_path(directory, options)
    tmp = path.parent / f".{path.name}.tmp"
    try:
        index.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_xmc_retriever(directory: str | Path, *, model, catalogue: Catalogue, name: str = "xmc",
                       extra: dict | None = None) -> None:
    """Write an XMC retriever directory (Blend and Match's secondary model).

    Args:
        model: a fitted :class:`~graphrel.retrieval.encoding.xmc.XMCModel` whose labels are catalogue products.
        catalogue: the N products (search returns catalogue rows; only the model's labels come out).

    Raises:
        ValueError: a label that is not a catalogue product.
    """
    known = set(catalogue.product_ids)
    missing = next((p for p in model.product_ids if p not in known), None)
    if missing is not None:
        raise ValueError(f"XMC label {missing!r} is not a catalogue product")
    manifest = {"format": FORMAT, "kind": "xmc", "name": name, "teacher": None,
                "parameters": int(model.size_bytes() // 8), "parameters_note": "sparse tree weights, estimated as "
                "the saved tree's bytes / 8 (index + float32 value)", "products": len(catalogue),
                "labels": len(model), "training": model.training, **(extra or {})}

    def fill(tmp: Path) -> None:
        catalogue.save(tmp)
        model.save(tmp / XMC_DIR)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    _write_directory(Path(directory), fill)


class Retriever:
    """Top-k products of the catalogue for queries. Load with :meth:`load`.

    Attributes:
        manifest: the directory's ``manifest.json``.
        catalogue: the products it returns.
    """

    def __init__(self, manifest: dict, catalogue: Catalogue, *, query_encoder=None, index=None,
                 bm25=None, xmc=None) -> None:
        self.manifest = manifest
        self.catalogue = catalogue
        self.query_encoder = query_encoder
        self.index = index
        self.bm25 = bm25
        self.xmc = xmc
        self._rows = None

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @classmethod
    def load(cls, directory: str | Path, *, threads: int | None = None,
             index: str | IndexOptions = "exact") -> "Retriever":
        """Load a retriever directory.

        Args:
            directory: a retriever directory.
            threads: faiss threads (None: faiss's default).
            index: the index a dense retriever searches with: ``"exact"`` (default), ``"hnsw"``
                (approximate, default HNSW options) or an
                :class:`~graphrel.retrieval.search.index.IndexOptions` (e.g. another ``hnsw_ef_search``).
                The HNSW graph is read from the directory if :func:`save_hnsw_index` saved it
                (same ``hnsw_m`` and ``hnsw_ef_construction``), else built here from
                ``product_embeddings.npy``. Ignored by BM25; a hybrid passes it to its dense input.

        Returns:
            A :class:`Retriever`; for a hybrid directory a
            :class:`~graphrel.retrieval.serving.hybrid.HybridRetriever` (the same interface).

        Raises:
            GraphrelInputError: the directory does not exist or is not a retriever directory;
                an unknown index or an HNSW option out of range; a hybrid whose configuration or
                input directories are missing or bad.
        """
        options = IndexOptions.of(index)
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            what = "no such directory" if not directory.exists() else "not a retriever directory (no manifest.json)"
            raise GraphrelInputError(what, path=directory,
                                     fix="pass a retriever directory, e.g. RUN/retrieval/retrievers/bm25")
        try:
            manifest = json.loads(path.read_text())
        except ValueError:
            raise GraphrelInputError("manifest.json is not valid JSON", path=path,
                                     fix="rebuild the retriever") from None
        if manifest.get("format") != FORMAT:
            raise GraphrelInputError(f"unknown retriever format {manifest.get('format')!r}", path=path,
                                     fix=f"rebuild the retriever (expected {FORMAT})")
        if manifest.get("kind") == "hybrid":  # BM25 + a dense retriever fused: graphrel.retrieval.serving.hybrid
            from graphrel.retrieval.serving.hybrid import load_hybrid

            return load_hybrid(directory, threads=threads, index=options)
        catalogue = Catalogue.load(directory)
        if manifest["kind"] == "bm25":
            from graphrel.retrieval.search.bm25 import BM25Index

            return cls(manifest, catalogue, bm25=BM25Index.load(directory / BM25_DIR))
        if manifest["kind"] == "xmc":
            from graphrel.retrieval.encoding.xmc import XMCModel

            return cls(manifest, catalogue, xmc=XMCModel.load(directory / XMC_DIR))
        from graphrel.retrieval.encoding.encoders import load_encoder

        encoder = load_encoder(directory / QUERY_ENCODER)
        saved = hnsw_index_path(directory, options)
        if options.kind == "hnsw" and saved.is_file():
            from graphrel.retrieval.search.hnsw import HNSWIndex

            search_index = HNSWIndex.load(saved, ef_search=options.hnsw_ef_search, threads=threads)
            if len(search_index) != len(catalogue):
                raise GraphrelInputError(f"saved HNSW index has {len(search_index)} products, the catalogue "
                                         f"{len(catalogue)}", path=saved, fix="delete it or save it again")
        else:
            search_index = build_index(np.load(directory / PRODUCT_EMBEDDINGS), options, threads=threads)
        return cls(manifest, catalogue, query_encoder=encoder, index=search_index)

    def encode_queries(self, queries, *, batch_size: int = 256) -> np.ndarray | None:
        """Query embeddings (Q, d) float32, unit rows; None for BM25 (no encoder)."""
        if self.query_encoder is None:
            return None
        from graphrel.retrieval.encoding.encoders import encode

        return encode(self.query_encoder, queries, batch_size=batch_size)

    def prepare_queries(self, queries, *, batch_size: int = 256) -> None:
        """The query side of a search alone (timed as query encoding): BM25 tokenisation, XMC
        TF-IDF features, or the query encoder's forward pass."""
        if self.bm25 is not None:
            self.bm25.query_token_ids(queries)
        elif self.xmc is not None:
            self.xmc.features.transform(queries)
        else:
            self.encode_queries(queries, batch_size=batch_size)

    def search_rows(self, queries, k: int, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Top-k catalogue rows and scores per query, best first, ties by product id.

        Args:
            queries: Q query texts.
            k: >= 1; clamped to the catalogue size (with a warning).

        Returns:
            indices (Q, k) int64 catalogue rows and scores (Q, k) float32.

        Raises:
            ValueError: k < 1.
        """
        k = checked_depth(k, len(self.catalogue))
        queries = [str(q) for q in queries]
        if self.bm25 is not None:
            return self.bm25.search(queries, k)
        if self.xmc is not None:  # at most the model's labels: (Q, min(k, labels))
            self._rows = self._rows or {p: i for i, p in enumerate(self.catalogue.product_ids)}
            ids, scores = self.xmc.top_k(queries, k)
            return np.vectorize(self._rows.__getitem__, otypes=[np.int64])(ids).reshape(ids.shape), scores
        return self.index.search(self.encode_queries(queries, batch_size=batch_size), k)

    def search(self, queries, k: int, *, query_ids=None, batch_size: int = 256) -> pd.DataFrame:
        """The top ``k`` products of each query.

        Args:
            queries: Q query texts (non-empty strings).
            k: products per query, >= 1; clamped to the catalogue size with a warning.
            query_ids: (Q,) ids for the output (default: 0..Q-1).

        Returns:
            DataFrame ``query_id, rank (1..k), product_id, score`` (k rows per query, best
            first; score = cosine in [-1, 1] for dense retrievers, BM25 score >= 0 for bm25, the
            label probability in [0, 1] for xmc, which returns at most its labels' count).
        """
        from graphrel.retrieval.measures.evaluation import run_frame

        indices, scores = self.search_rows(queries, k, batch_size=batch_size)
        ids = np.arange(len(indices)) if query_ids is None else np.asarray(query_ids, dtype=object)
        return run_frame(ids, self.catalogue.product_ids, indices, scores)

    def time_search(self, queries, k: int, *, repeats: int = 3, warmup=None, batch_size: int = 256) -> dict:
        """Speed of the query encoder alone and of encoding + search, median of ``repeats`` runs.

        Args:
            queries: the timed queries.
            k: search depth.
            repeats: timed runs (>= 1); each runs every query once.
            warmup: queries run once (encode + search) before timing; default the first 64;
                ``[]``: none (the caller warmed up).

        Returns:
            ``{"query_encodings_per_second", "queries_per_second"}`` (BM25: query encoding =
            tokenisation; XMC: TF-IDF features).
        """
        queries = [str(q) for q in queries]
        warm = list(warmup) if warmup is not None else queries[:64]
        if warm:
            self.search_rows(warm, min(k, len(self.catalogue)), batch_size=batch_size)
        encode_times, search_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            self.prepare_queries(queries, batch_size=batch_size)
            encode_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            self.search_rows(queries, min(k, len(self.catalogue)), batch_size=batch_size)
            search_times.append(time.perf_counter() - start)
        return {"query_encodings_per_second": len(queries) / float(np.median(encode_times)),
                "queries_per_second": len(queries) / float(np.median(search_times))}
