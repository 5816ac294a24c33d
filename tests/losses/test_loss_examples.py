"""The runnable examples in the docstrings of graphrel.losses run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import graphrel.losses

MODULES = ["graphrel.losses"] + [f"graphrel.losses.{m.name}" for m in pkgutil.iter_modules(graphrel.losses.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_every_loss_module_has_an_example():
    finder = doctest.DocTestFinder()
    for name in MODULES[1:]:
        examples = sum(len(test.examples) for test in finder.find(importlib.import_module(name)))
        assert examples > 0, name
