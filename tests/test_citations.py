"""Docstrings cite the source papers by their real titles, and only files of the project."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT

import graphrel.models.korder

BERM_TITLE = "Knowledge Distillation based Contextual Relevance Matching for E-commerce Product Search"
#: Titles of the papers cited by author ("Liu et al., "...""), keyed by first author.
TITLES = {
    "Liu": BERM_TITLE,
    "Jiang": "BERT2DNN: BERT Distillation with Massive Unlabeled Data for Online E-Commerce Search",
    "Kim": "EmbedDistill: A Geometric Knowledge Distillation for Information Retrieval",
}


def project_files():
    """Python sources of the package, tests and tools, the README and the configs."""
    for folder in ("graphrel", "tests", "tools"):
        yield from sorted((REPO_ROOT / folder).rglob("*.py"))
    yield REPO_ROOT / "README.md"
    yield from sorted((REPO_ROOT / "configs").glob("*.yaml"))


def flat(text: str) -> str:
    """Docstring text with line breaks and comment markers folded into single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"\n\s*#", " ", text))


def test_korder_docstring_names_berm_by_its_title_and_arxiv_id():
    doc = flat(graphrel.models.korder.__doc__)
    assert f'"{BERM_TITLE}"' in doc
    assert "arXiv 2210.01701" in doc and "EMNLP 2022" in doc


@pytest.mark.parametrize("author", sorted(TITLES))
def test_every_quoted_title_of_a_cited_paper_is_its_real_title(author):
    found = []
    for path in project_files():
        if path.name == "test_citations.py":
            continue
        for title in re.findall(rf'{author} et al\.,\s*"([^"]+)"', flat(path.read_text(encoding="utf-8"))):
            found.append((path.relative_to(REPO_ROOT).as_posix(), title))
    assert found, f"no title cited for {author} et al."
    assert [(path, title) for path, title in found if title != TITLES[author]] == []


def test_no_docstring_cites_a_file_outside_the_project():
    """Sources cite the papers, not a notes file that does not ship with the package."""
    outside = "METHODS" + ".md"
    assert not (REPO_ROOT / outside).exists()
    offenders = [path.relative_to(REPO_ROOT).as_posix() for path in project_files()
                 if outside in path.read_text(encoding="utf-8")]
    assert offenders == []
