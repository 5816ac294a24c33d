"""The cross-encoder teacher as a scorer, like the students: ``graphrel score --model RUN/teacher``.

A teacher directory is the Hugging Face model directory the pipeline's teacher stage writes
(``config.json``, ``model.safetensors``, the tokenizer files, ``teacher.ckpt``). Its score
of a pair is the run's teacher score, ``sigmoid(logit / T)``
(:mod:`graphrel.scoring.teacher_labelling`), with the temperature ``T`` of the run that
trained it: ``pipeline.teacher.temperature`` of ``config.yaml`` beside the directory (a run's
``RUN/teacher``), else 1.0 (the config's default), and the same ``max_length``; on the backend
that labelled the run's pairs (``teacher_backend.json`` beside the directory, e.g. bf16,
:mod:`graphrel.scoring.teacher_backends`), else eager fp32, or fp32 when this machine cannot
run that backend (said in the log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphrel.errors import GraphrelInputError

__all__ = ["TeacherScorer", "is_teacher_directory", "run_teacher_backend", "TEACHER_FILES"]

log = logging.getLogger("graphrel")

#: The files a teacher directory's scores depend on (``--resume`` fingerprints them).
TEACHER_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def is_teacher_directory(directory: str | Path) -> bool:
    """Whether ``directory`` is a saved cross-encoder (a Hugging Face ``config.json`` with a
    sequence-classification architecture, and no ``student.json``)."""
    import json

    directory = Path(directory)
    if (directory / "student.json").is_file() or not (directory / "config.json").is_file():
        return False
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and any(str(name).endswith("ForSequenceClassification")
                                            for name in config.get("architectures") or [])


def _run_teacher_settings(directory: Path) -> tuple[float, int | None, str]:
    """(temperature, max_length or None, where they came from) for a teacher directory:
    the run's ``config.yaml`` beside it when it has a ``teacher`` section, else defaults."""
    config_path = directory.parent / "config.yaml"
    if config_path.is_file():
        import yaml

        try:
            config = yaml.safe_load(config_path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise GraphrelInputError(f"the run's config.yaml cannot be read ({error.__class__.__name__})",
                                     path=config_path, fix="restore the config.yaml the run wrote") from None
        pipeline = config.get("pipeline") if isinstance(config, dict) else None
        teacher = pipeline.get("teacher") if isinstance(pipeline, dict) else None
        if isinstance(teacher, dict):
            temperature = float(teacher.get("temperature", 1.0))
            max_length = teacher.get("max_length")
            if not temperature > 0:
                raise GraphrelInputError(f"teacher.temperature {temperature} is not > 0", path=config_path,
                                         fix="restore the config.yaml the run wrote")
            return temperature, (int(max_length) if max_length is not None else None), str(config_path)
    return 1.0, None, "defaults (no run config.yaml beside the teacher)"


@dataclass
class TeacherScorer:
    """A fine-tuned cross-encoder teacher, ready to score pairs from text.

    ``score(query_ids, queries, product_ids, product_texts)`` -> (N,) float32 in [0, 1]:
    ``sigmoid(logit / temperature)``; ids are not read (the teacher reads text only).
    Load with :meth:`load`.
    """

    teacher: object
    temperature: float = 1.0
    name: str = "teacher"
    score_batch_size: int = 128
    backend: str = "fp32"
    _forward: object = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, directory: str | Path) -> "TeacherScorer":
        """Load a teacher directory (``RUN/teacher``) with its run's temperature and length.

        Raises:
            GraphrelInputError: not a teacher directory, or an unreadable run config.
        """
        from graphrel.scoring.teacher_labelling import load_teacher

        directory = Path(directory)
        if not is_teacher_directory(directory):
            raise GraphrelInputError("not a teacher directory (no sequence-classification config.json)",
                                     path=directory, fix="pass a run's teacher directory, e.g. RUN/teacher")
        temperature, max_length, source = _run_teacher_settings(directory)
        overrides = {"max_length": max_length} if max_length is not None else {}
        teacher = load_teacher(directory, temperature=temperature, **overrides)
        teacher.eval()
        backend = run_teacher_backend(directory)
        log.debug("teacher %s: temperature %g, max_length %d (%s), backend %s", directory, temperature,
                  teacher.hparams.max_length, source, backend)
        return cls(teacher=teacher, temperature=temperature, name=directory.name, backend=backend)

    def reset_text_caches(self) -> None:
        """Nothing to forget: the teacher tokenises every pair afresh."""

    def paths(self, query_ids, product_ids, queries=None) -> dict[str, int]:
        """Every pair is read by the cross-encoder: ``{"cross_encoder": N}``."""
        return {"cross_encoder": len(query_ids)}

    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size: int | None = None,
              progress: bool = False) -> np.ndarray:
        """Teacher scores of pairs, in input order.

        Args:
            query_ids, product_ids: N ids (unused: the teacher reads text).
            queries, product_texts: N str each.
            batch_size: pairs per forward pass (default 128, the pipeline's ``score_batch_size``;
                batches are length-sorted).

        Returns:
            (N,) float32 in [0, 1], ``sigmoid(logit / temperature)``.
        """
        logits = self.logits(queries, product_texts, batch_size=batch_size, progress=progress)
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64) / self.temperature))).astype(np.float32)

    def logits(self, queries, product_texts, *, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Teacher logits (N,) float32 of pairs, in input order, on :attr:`backend`."""
        from graphrel.scoring.teacher_backends import teacher_forward
        from graphrel.scoring.teacher_labelling import teacher_logits

        if self._forward is None:  # built once: int8 quantises a copy of the model when built
            self._forward = teacher_forward(self.teacher, self.backend)
        return teacher_logits(self.teacher, list(queries), list(product_texts), progress=progress,
                              batch_size=batch_size or self.score_batch_size, forward=self._forward)


def run_teacher_backend(directory: str | Path) -> str:
    """The backend a run's teacher scores on: the one ``teacher_backend.json`` beside the teacher
    directory names (the run's labels came from it), if this machine can run it; else fp32."""
    import json

    from graphrel.scoring.teacher_backends import BACKENDS, RECORD, unavailable_backends

    record_path = Path(directory).parent / RECORD
    if not record_path.is_file():
        return "fp32"
    try:
        backend = json.loads(record_path.read_text()).get("backend", "fp32")
    except (OSError, ValueError, AttributeError):
        raise GraphrelInputError(f"the run's {RECORD} cannot be read", path=record_path,
                                 fix="restore the file the run wrote") from None
    if backend not in BACKENDS:
        raise GraphrelInputError(f"unknown teacher backend {backend!r}", path=record_path,
                                 fix=f"restore the file the run wrote (backends: {', '.join(BACKENDS)})")
    missing = unavailable_backends().get(backend)
    if missing:
        log.warning("the run's teacher labelled with %s, which this machine cannot run (%s): scoring in fp32",
                    backend, missing)
        return "fp32"
    return backend
