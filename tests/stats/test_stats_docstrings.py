"""The examples in the docstrings are runnable and give the values shown (which were checked in R)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "amlcohort.stats.contingency",
    "amlcohort.stats.counts",
    "amlcohort.stats.cox",
    "amlcohort.stats.kaplan_meier",
    "amlcohort.stats.logrank",
    "amlcohort.stats.proportions",
    "amlcohort.stats._validation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name != "amlcohort.stats._validation":
        assert result.attempted > 0
