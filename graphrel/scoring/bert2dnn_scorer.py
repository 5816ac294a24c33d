"""Scoring pairs from text with a trained BERT2DNN student directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.data.ngrams import gather_bags, match_features as pair_match_features
from graphrel.models.bert2dnn import NGRAMS_FILE, Bert2DnnStudent


@dataclass
class Bert2DnnScorer:
    """A trained BERT2DNN student ready to score pairs from text (same interface as
    :class:`graphrel.scoring.korder_scorer.StudentScorer`; ids are accepted and ignored: text only).

    Load with :meth:`load` from a directory holding ``student.json`` (``{"model":
    "Bert2DnnStudent", "checkpoint": "model.ckpt", "ngrams": "ngrams.json", ...}``), the
    checkpoint and the n-gram vocabulary.

    ``dtype=torch.bfloat16`` runs the MLP in bfloat16 (several times faster on CPUs with
    AMX / AVX-512 BF16 units; scores differ from float32 by about 1e-3); n-gram bags stay
    float32. A student directory may name its scoring dtype in ``student.json``
    (``"scoring_dtype"``, see :func:`graphrel.models.bert2dnn_training.train_bert2dnn`);
    :meth:`load` uses it unless told.
    """

    model: Bert2DnnStudent
    featurizer: object
    name: str = "bert2dnn"
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.model.eval()
        self.model.mlp.to(self.dtype)

    @classmethod
    def load(cls, directory: str | Path, *, dtype: str | torch.dtype | None = None) -> "Bert2DnnScorer":
        """Load a student directory written by :mod:`graphrel.models.bert2dnn_training`.

        Args:
            directory: the student directory.
            dtype: ``"float32"`` (exact) or ``"bfloat16"`` (faster MLP on CPUs with bf16 units);
                None: the manifest's ``scoring_dtype``, else float32.

        Raises:
            GraphrelInputError: missing directory, manifest, checkpoint or vocabulary, or a
                directory of another model type.
        """
        from graphrel.data.ngrams import NgramFeaturizer
        from graphrel.errors import GraphrelInputError
        from graphrel.scoring.load import read_student_manifest

        directory = Path(directory)
        manifest, checkpoint = read_student_manifest(directory, "Bert2DnnStudent", fix="re-run train_bert2dnn")
        try:
            model = Bert2DnnStudent.load_from_checkpoint(checkpoint, map_location="cpu")
        except (KeyError, TypeError, RuntimeError) as error:
            raise GraphrelInputError(f"not a BERT2DNN student checkpoint ({error.__class__.__name__})",
                                     path=checkpoint, fix="pass the checkpoint of a Bert2DnnStudent") from None
        vocabulary = directory / manifest.get("ngrams", NGRAMS_FILE)
        if vocabulary.is_file():
            featurizer = NgramFeaturizer.load(vocabulary)
        elif model.ngram_state is not None:
            featurizer = model.featurizer()
        else:
            raise GraphrelInputError("n-gram vocabulary not found", path=vocabulary, fix="re-run train_bert2dnn")
        if featurizer.num_embeddings != model.embedding.num_embeddings:
            raise GraphrelInputError("n-gram vocabulary does not match the checkpoint", path=vocabulary,
                                     fix="keep the ngrams.json saved with this checkpoint")
        if dtype is None:
            dtype = manifest.get("scoring_dtype", "float32")
        dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if dtype not in (torch.float32, torch.bfloat16):
            raise GraphrelInputError(f"unsupported scoring dtype {dtype}", path=directory / "student.json",
                                     fix="use float32 or bfloat16")
        return cls(model=model, featurizer=featurizer, name=directory.name, dtype=dtype)

    @torch.inference_mode()
    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size: int = 2048,
              progress: bool = False) -> np.ndarray:
        """Relevance scores of pairs from their texts, in input order.

        Each distinct text is featurised and embedded once (a catalogue repeats titles,
        a log repeats queries); the MLP then runs on pairs in batches.

        Args:
            query_ids, product_ids: N ids (unused: the student reads text only).
            queries, product_texts: N str texts.
            batch_size: pairs per MLP pass (large batches use the CPU's matrix units best).
            progress: show a progress bar.

        Returns:
            (N,) float32 scores in [0, 1].
        """
        from tqdm.auto import tqdm

        from graphrel.scoring.paused_gc import paused_garbage_collector

        with paused_garbage_collector():
            query_rows, query_vectors, query_bags = self._embed_unique(queries)
            product_rows, product_vectors, product_bags = self._embed_unique(product_texts)
            with_match = self.model.hparams.get("match_features", False)
            n = len(query_rows)
            if len(product_rows) != n:
                raise ValueError(f"{n} queries but {len(product_rows)} product texts")
            out = np.empty(n, dtype=np.float32)
            for start in tqdm(range(0, n, batch_size), desc=f"{self.name} scoring", disable=not progress,
                              unit="batch", mininterval=2.0):
                rows = slice(start, start + batch_size)
                e_q = query_vectors.index_select(0, query_rows[rows])
                e_p = product_vectors.index_select(0, product_rows[rows])
                match = None
                if with_match:
                    match = torch.from_numpy(pair_match_features(
                        *gather_bags(*query_bags, query_rows[rows].numpy()),
                        *gather_bags(*product_bags, product_rows[rows].numpy())))
                logits = self.model.pair_logits(e_q, e_p, match).float()
                out[rows] = self.model.scores(logits).numpy()
        return out

    def paths(self, query_ids, product_ids, queries=None) -> dict[str, int]:
        """Every pair takes the one text path: ``{"text": N}`` (the scorer reads no graph)."""
        return {"text": len(query_ids)}

    def reset_text_caches(self) -> None:
        """Forget the words of every text featurised so far (timing from a cold cache)."""
        self.featurizer.forget_words()

    def _embed_unique(self, texts) -> tuple[torch.Tensor, torch.Tensor, tuple[np.ndarray, np.ndarray]]:
        """Row of each text in a table of distinct-text vectors: (N,) int64, (U, D), and
        the distinct texts' bags (ids (M,), offsets (U,))."""
        codes, unique = pd.factorize(np.asarray(texts, dtype=object))
        ids, offsets = self.featurizer.encode(list(unique))
        vectors = self.model.embed(torch.from_numpy(ids), torch.from_numpy(offsets)).to(self.dtype)
        return torch.from_numpy(codes.astype(np.int64)), vectors, (ids, offsets)
