"""The package's layout: rooms by concern, imports only downward, no module past ~400 lines.

Every ``import`` of every module under ``graphrel/`` is read with :mod:`ast` (module-level
and inside functions alike: a function-level import is still a dependency) and checked
against the room it is in (README.md, "Layout"):

    nn (tensors only) <- models (LightningModules + their DataModules) <- scoring <- pipeline, cli

``data/`` knows files, tables and graphs only (no Lightning, no run-directory layout);
``teachers/`` are scikit-learn estimators (no Lightning); ``retrieval/`` uses data, nn,
models and scoring, never the pipeline; nothing imports the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "graphrel"

#: The small modules at the bottom of every room (errors, settings, files, metrics).
BASE = {"errors", "backbone", "metrics", "intervals", "options", "lock"}

#: Room -> the other graphrel rooms its modules may import (a room may always import itself;
#: None: any room). No room but the command line's own may import ``cli``.
ALLOWED = {
    "": set(),  # graphrel/__init__.py
    "errors": set(),
    "options": {"errors"},
    "lock": {"errors"},
    "backbone": {"errors"},
    "metrics": {"errors"},
    "intervals": set(),  # the paired bootstrap over queries (numpy, SciPy)
    "run": {"errors"},  # the run-directory layout and atomic writes
    "nn": {"errors"},  # plain torch modules
    "losses": {"errors", "nn"},
    "data": BASE,  # no run layout, no model, no scoring
    "teachers": {"errors", "data", "metrics", "backbone"},  # scikit-learn estimators
    "models": {"nn", "data", "losses", "errors", "backbone", "metrics", "run"},
    "scoring": BASE | {"run", "nn", "losses", "data", "teachers", "models"},
    "explore": BASE | {"run", "nn", "losses", "data", "teachers", "models", "scoring"},
    "retrieval": BASE | {"run", "nn", "losses", "data", "teachers", "models", "scoring"},
    "pipeline": BASE | {"run", "nn", "losses", "data", "teachers", "models", "scoring", "explore", "retrieval"},
    "spark": BASE | {"run", "data", "scoring", "retrieval"},  # Spark jobs around the scorers and retrievers
    "cli": None,  # the top: any room
}

#: Room -> third-party packages its modules must not import.
FORBIDDEN_PACKAGES = {
    "data": {"lightning", "pytorch_lightning"},
    "nn": {"lightning", "pytorch_lightning"},
    "losses": {"lightning", "pytorch_lightning"},
    "teachers": {"lightning", "pytorch_lightning"},
}

#: Modules over MAX_LINES that are allowed to stay so, and why. (None today.)
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 400

def module_paths() -> list[str]:
    return sorted(path.relative_to(REPO_ROOT).as_posix() for path in PACKAGE.rglob("*.py"))


def module_name(path: str) -> str:
    """``graphrel/scoring/load.py`` -> ``graphrel.scoring.load``; a package's ``__init__.py``
    -> the package."""
    parts = path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    """``graphrel.models.korder`` -> ``models``; ``graphrel.run`` -> ``run``; ``graphrel`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: str, root: Path = REPO_ROOT) -> set[str]:
    """Every module ``path`` imports, anywhere in it (``from graphrel import run`` -> ``graphrel.run``)."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse((root / path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "graphrel" or node.module is None:  # names of a package: its modules
                found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.add(base)
    return found


def violations(path: str, root: Path = REPO_ROOT) -> list[str]:
    """The imports of ``path`` against its room's rules."""
    room = room_of(module_name(path))
    if room not in ALLOWED:
        return [f"{path}: {room!r} is not a room of the layout"]
    wrong = []
    for imported in sorted(imports_of(path, root)):
        if imported == "graphrel" or imported.startswith("graphrel."):
            target = room_of(imported)
            if target != room and ALLOWED[room] is not None and target not in ALLOWED[room]:
                wrong.append(f"{path} ({room}) imports {imported} ({target})")
        elif imported.split(".")[0] in FORBIDDEN_PACKAGES.get(room, ()):
            wrong.append(f"{path} ({room}) imports {imported}")
    return wrong


@pytest.mark.parametrize("path", module_paths())
def test_imports_go_downward(path):
    assert violations(path) == []


@pytest.mark.parametrize("path", module_paths())
def test_no_module_past_the_line_limit(path):
    lines = len((REPO_ROOT / path).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or path in LONG_MODULES, f"{path}: {lines} lines (> {MAX_LINES})"


def test_the_checks_can_fail(tmp_path):
    """The walk sees function-level and relative imports, and a rule breaks on them."""
    package = tmp_path / "graphrel"
    (package / "data").mkdir(parents=True)
    (package / "data" / "loader.py").write_text(
        "import numpy\n\ndef load():\n    from ..scoring import load\n    import lightning.pytorch as L\n")
    (package / "nn" / "x").mkdir(parents=True)
    (package / "nn" / "x" / "__init__.py").write_text("from graphrel import run as R\nfrom . import y\n")
    assert imports_of("graphrel/data/loader.py", tmp_path) == {"numpy", "graphrel.scoring", "lightning.pytorch"}
    assert violations("graphrel/data/loader.py", tmp_path) == [
        "graphrel/data/loader.py (data) imports graphrel.scoring (scoring)",
        "graphrel/data/loader.py (data) imports lightning.pytorch"]
    assert imports_of("graphrel/nn/x/__init__.py", tmp_path) == {"graphrel.run", "graphrel.nn.x.y"}
    assert violations("graphrel/nn/x/__init__.py", tmp_path) == [
        "graphrel/nn/x/__init__.py (nn) imports graphrel.run (run)"]


def test_rules_cover_every_room_of_the_readme_layout():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("\n## ", 1)]
    for room in ALLOWED:
        if room:  # (not graphrel/__init__.py)
            assert f"{room}/" in layout or f"{room}.py" in layout, room
    assert Path(PACKAGE / "retrieval" / "README.md").is_file()
