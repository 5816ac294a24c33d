"""load_scorer's dispatch table names a loadable scorer class for every student type."""

import importlib

import pytest

from graphrel.errors import GraphrelInputError
from graphrel.scoring.load import GRAPH_SCORERS, SCORERS, load_scorer


@pytest.mark.parametrize("model", sorted(SCORERS))
def test_every_student_type_names_a_scorer_class_with_load(model):
    module, name = SCORERS[model].split(":")
    scorer = getattr(importlib.import_module(module), name)
    assert callable(scorer.load) and callable(scorer.score) and callable(scorer.reset_text_caches)
    assert set(GRAPH_SCORERS) <= set(SCORERS)


def test_an_unknown_student_type_is_a_user_error(tmp_path):
    (tmp_path / "student.json").write_text('{"model": "Mystery"}')
    with pytest.raises(GraphrelInputError, match="unsupported student type 'Mystery'"):
        load_scorer(tmp_path)
