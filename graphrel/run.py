"""A pipeline run directory: what lives where, atomic writes, loading.

Layout of ``<run_dir>``::

    config.yaml              the pipeline config used
    pairs.parquet            every pair: PAIR_COLUMNS + split (train/val/test_context/test/
                             transfer); the labels of test queries withheld (NaN)
    test_labels.parquet      query_id, product_id, relevance, label of the test queries' pairs:
                             read by the evaluation only (``load_run_pairs(test_labels=True)``)
    label_scale.json         label_min, label_max and source of the data
    teacher/                 HF model directory of the fine-tuned teacher (+ teacher.ckpt)
    teacher_scores.parquet   query_id, product_id, teacher_logit, teacher_score (one cache)
    teacher_scores.parts/    while teacher scoring runs: saved chunks (an interrupted run resumes)
    stack/, stacked_scores.parquet   (stacking.enabled) lexical teacher, stack weights and
                             validation figures; the stacked teacher_logit/score students use
    stages.json              per finished stage: the config values and inputs it was built from
    graph.pt                 query-product HeteroData (teacher scores; train labels only): every
                             pair but the evaluated test pairs (protocol new_pairs; training)
    graph_new_query.pt       the same with training queries' edges only (protocol new_query)
    student_k0/, student_korder/   model.ckpt + student.json (what ``graphrel score`` loads)
    student_online/          BERM-O, distilled from student_korder (student.online)
    metrics.json, report.md, student_vs_teacher.png
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.errors import GraphrelInputError

PAIRS = "pairs.parquet"
TEST_LABELS = "test_labels.parquet"
LABEL_SCALE = "label_scale.json"
TEACHER_DIR = "teacher"
TEACHER_SCORES = "teacher_scores.parquet"
TEACHER_SCORE_PARTS = "teacher_scores.parts"
STACK_DIR = "stack"
STACKED_SCORES = "stacked_scores.parquet"
GRAPH = "graph.pt"
STUDENT_MANIFEST = "student.json"
TEXT_STUDENT = "student_k0"
GRAPH_STUDENT = "student_korder"
ONLINE_STUDENT = "student_online"
BERT2DNN_STUDENT = "student_bert2dnn"
STUDENT_CHECKPOINT = "model.ckpt"
RETRIEVAL_DIR = "retrieval"
KNN_DIR = "knn"


def _create_temporary(folder: Path, name: str, *, directory: bool = False) -> str:
    """Create an empty, unused ``folder/.NAME.XXXXXXXX.tmp`` (a file, or a folder with
    ``directory``) as a new one is created: mode ``0o666`` (folder ``0o777``) less the umask
    (and the folder's default ACL), not ``tempfile.mkstemp``'s 0600 (``mkdtemp``'s 0700)."""
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # pragma: no cover - a 32-bit name collision
            continue
        return tmp


def _follow_umask(folder: Path) -> None:
    """Give every file under ``folder`` the mode a new file gets (0o666 less the umask), every
    folder 0o777 less it: a library that writes into a saved model's folder with a private
    mode (safetensors wrote ``model.safetensors`` 0600) must not hide one file of a run from
    the teammates who can read the rest."""
    mask = os.umask(0o022)
    os.umask(mask)  # read it back at once (os.umask is the only portable way to read it)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            target = os.path.join(root, name)
            if not os.path.islink(target):
                os.chmod(target, 0o666 & ~mask)


@contextmanager
def atomic_path(path: str | Path, *, directory: bool = False):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The one way graphrel writes an output: a crash or interruption leaves no half-written
    ``path`` (the temporary file is removed). ``path`` gets the mode the umask gives any
    newly created file (e.g. 0644 under umask 022), so a teammate can read it as they could
    any other file the user writes there.

    With ``directory``, the temporary path is an empty folder to fill (e.g. a saved model);
    it takes the place of ``path``, and an existing folder ``path`` is removed only once
    the new one is complete. Every file in it gets the umask's mode too, whatever mode the
    code that wrote it chose.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path.parent, path.name, directory=directory)
    try:
        yield Path(tmp)
        if directory:
            _follow_umask(Path(tmp))
        if directory and path.is_dir():  # os.replace cannot replace a folder that holds files
            old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
            path.rename(old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        elif os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` to Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_npy(array: np.ndarray, path: str | Path) -> None:
    """Write ``array`` as ``.npy`` atomically, to ``path`` as named (no ``.npy`` appended)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def write_json(obj, path: str | Path) -> None:
    """Write JSON atomically (indented, NaN as null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(obj), indent=2, default=float))


def _nan_to_none(obj):
    """NaN floats anywhere in nested dicts/lists -> None (JSON null); strings untouched."""
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(value) for value in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise GraphrelInputError(f"{what} not found", path=path,
                                 fix="run `graphrel pipeline --run-dir DIR` first, or pass the right run directory")
    return path


def with_test_labels(pairs: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """``pairs`` (a run's, test labels withheld) with the test queries' ``relevance`` and
    ``label`` filled in from ``test_labels.parquet``.

    Raises:
        GraphrelInputError: the run has no ``test_labels.parquet``.
    """
    labels = pd.read_parquet(_need(Path(run_dir) / TEST_LABELS, "test labels"))
    out = pairs.copy()
    key = pd.MultiIndex.from_frame(out[["query_id", "product_id"]])
    found = labels.set_index(["query_id", "product_id"]).reindex(key)
    for column in ("relevance", "label"):
        if column in out:
            out[column] = out[column].where(found[column].isna().to_numpy(), found[column].to_numpy())
    return out


def load_run_pairs(run_dir: str | Path, *, test_labels: bool = False) -> pd.DataFrame:
    """Every pair of a run, with split and the run's teacher score: ``pairs.parquet`` joined
    with ``stacked_scores.parquet`` in a stacked run (``teacher_logit`` / ``teacher_score`` are
    the stack's, as on the graph's edges; the single teachers' logits are extra columns),
    else with ``teacher_scores.parquet``.

    The test queries' labels are withheld (NaN) unless ``test_labels`` (the retrieval
    stage's judged test products, ``graphrel test``, ``graphrel inspect --show-test-labels``):
    then :func:`with_test_labels` joins ``test_labels.parquet`` when the run has one (a run
    directory assembled by hand keeps its labels in ``pairs.parquet``). The evaluation calls
    :func:`with_test_labels` itself, which requires the file."""
    run_dir = Path(run_dir)
    pairs = pd.read_parquet(_need(run_dir / PAIRS, "run pairs"))
    if test_labels and (run_dir / TEST_LABELS).is_file():
        pairs = with_test_labels(pairs, run_dir)
    stacked = run_dir / STACKED_SCORES
    scores = pd.read_parquet(stacked if stacked.is_file() else _need(run_dir / TEACHER_SCORES, "teacher scores"))
    return pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")


def save_graph(graph, path: str | Path) -> None:
    """Save a HeteroData graph atomically (through a file object: torch names the archive's
    records after a file path, here a random temporary one; a file object's are ``archive/``,
    so the same graph gives the same bytes)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(graph, file)


def load_run_graph(run_dir_or_file: str | Path):
    """The run's query-product ``HeteroData`` (``graph.pt``)."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / GRAPH
    return torch.load(_need(path, "graph"), weights_only=False)
