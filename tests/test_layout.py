"""The package's layout: rooms by concern, imports only downward, no module past ~400 lines.

Every ``import`` of every module under ``graphrel/`` is read with :mod:`ast` (module-level
and inside functions alike: a function-level import is still a dependency) and checked
against the room it is in (README.md, "Layout"):

    nn (tensors only) <- models (LightningModules + their DataModules) <- scoring <- pipeline, cli

``data/`` knows files, tables and graphs only (no Lightning, no run-directory layout);
``teachers/`` are scikit-learn estimators (no Lightning); ``retrieval/`` uses data, nn,
models and scoring, never the pipeline; nothing imports the command line. Inside ``retrieval/``
the sub-rooms (graphrel/retrieval/README.md) import one another only downward, with no circle.
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

#: Sub-room of graphrel/retrieval/ -> the other sub-rooms its modules may import ("": the stage
#: and its wiring at graphrel/retrieval/ itself; None: any sub-room).
RETRIEVAL_ALLOWED = {
    "search": set(),  # catalogue, top k, exact / HNSW / BM25 indexes
    "encoding": {"search"},  # query encoders, the XMC model
    "measures": {"search"},  # metrics, TREC runs, judged-only figures
    "serving": {"search", "encoding", "measures"},  # retriever directories, hybrid, fusion, `graphrel retrieve`
    "students": {"search", "encoding", "serving"},  # dual encoder, EmbedDistill, Blend and Match
    "knn": {"search", "serving"},  # cross-encoder k-NN search
    "": None,  # the retrieval stage
}

#: The one import circle left between retrieval modules, and why: ``Retriever.load`` returns a
#: ``HybridRetriever`` for a hybrid directory, and that class is a ``Retriever`` whose inputs it
#: loads with ``Retriever.load`` (both in serving/).
RETRIEVAL_MODULE_CIRCLE_EDGES = {("graphrel.retrieval.serving.retriever", "graphrel.retrieval.serving.hybrid")}


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


def retrieval_room_of(module: str, root: Path = REPO_ROOT) -> str | None:
    """``graphrel.retrieval.search.index`` -> ``search``; ``graphrel.retrieval.stage`` -> ``""``;
    a module outside ``graphrel.retrieval`` -> None."""
    parts = module.split(".")
    if parts[:2] != ["graphrel", "retrieval"]:
        return None
    return parts[2] if len(parts) > 2 and (root / "graphrel" / "retrieval" / parts[2]).is_dir() else ""


def retrieval_room_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """Sub-room of graphrel/retrieval/ -> the other sub-rooms its modules import."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "graphrel" / "retrieval").rglob("*.py")):
        path = path.relative_to(root).as_posix()
        room = retrieval_room_of(module_name(path), root)
        targets = {retrieval_room_of(imported, root) for imported in imports_of(path, root)}
        graph.setdefault(room, set()).update(t for t in targets if t is not None and t != room)
    return graph


def circle_in(graph: dict[str, set[str]]) -> list[str]:
    """One circle of ``graph`` as ``[a, b, ..., a]``; [] when it has none."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def walk(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := walk(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (found := walk(node, [node])):
            return found
    return []


def room_violations(graph: dict[str, set[str]]) -> list[str]:
    """The sub-room imports of ``graph`` against :data:`RETRIEVAL_ALLOWED`."""
    wrong = []
    for room, targets in sorted(graph.items()):
        if room not in RETRIEVAL_ALLOWED:
            wrong.append(f"retrieval/{room}/ is not a sub-room of the layout")
            continue
        allowed = RETRIEVAL_ALLOWED[room]
        wrong += [f"retrieval/{room or '.'} imports retrieval/{target or '.'}"
                  for target in sorted(targets) if allowed is not None and target not in allowed]
    return wrong


def retrieval_module_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """Module of graphrel/retrieval/ -> the retrieval modules it imports. Package faces
    (``__init__.py``) are left out: ``from package import module`` reads as the package."""
    packages = {module_name(p.relative_to(root).as_posix())
                for p in (root / "graphrel" / "retrieval").rglob("__init__.py")}
    graph = {}
    for path in sorted((root / "graphrel" / "retrieval").rglob("*.py")):
        name = module_name(path.relative_to(root).as_posix())
        if name not in packages:
            graph[name] = {m for m in imports_of(path.relative_to(root).as_posix(), root)
                           if m.startswith("graphrel.retrieval.") and m not in packages and m != name}
    return graph


def test_retrieval_modules_have_no_circle_but_the_named_one():
    graph = retrieval_module_graph()
    for source, target in RETRIEVAL_MODULE_CIRCLE_EDGES:
        assert target in graph[source], f"{source} no longer imports {target}: drop it from the list"
        graph[source] = graph[source] - {target}
    assert circle_in(graph) == []


def test_retrieval_rooms_have_no_circle():
    assert circle_in(retrieval_room_graph()) == []


def test_retrieval_rooms_import_only_downward():
    assert room_violations(retrieval_room_graph()) == []


def test_every_retrieval_room_is_listed_and_has_a_readme():
    rooms = {p.name for p in (PACKAGE / "retrieval").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert rooms == set(RETRIEVAL_ALLOWED) - {""}
    assert all((PACKAGE / "retrieval" / room / "README.md").is_file() for room in rooms)


def test_the_room_checks_can_fail(tmp_path):
    """A circle between two sub-rooms, and an import the list does not allow, are both caught."""
    retrieval = tmp_path / "graphrel" / "retrieval"
    for room in ("search", "serving"):
        (retrieval / room).mkdir(parents=True)
        (retrieval / room / "__init__.py").write_text("")
    (retrieval / "__init__.py").write_text("")
    (retrieval / "stage.py").write_text("from graphrel.retrieval.serving import retriever\n")
    (retrieval / "serving" / "retriever.py").write_text("from graphrel.retrieval.search.index import ExactIndex\n")
    (retrieval / "search" / "index.py").write_text(
        "def load():\n    from ..serving.retriever import Retriever\n    from graphrel.retrieval import stage\n")
    graph = retrieval_room_graph(tmp_path)
    assert graph == {"": {"serving"}, "serving": {"search"}, "search": {"serving", ""}}
    assert circle_in(graph) == ["", "serving", "search", ""]
    assert circle_in({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert room_violations(graph) == ["retrieval/search imports retrieval/.", "retrieval/search imports retrieval/serving"]
