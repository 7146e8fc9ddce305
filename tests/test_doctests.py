"""The examples in the core modules' docstrings run and say what they show."""

import doctest
import importlib

import pytest

CORE = ["gradfuzz.batching", "gradfuzz.durations", "gradfuzz.dtypes", "gradfuzz.planning", "gradfuzz.regions",
        "gradfuzz.simplicity", "gradfuzz.spec", "gradfuzz.strategies"]


@pytest.mark.parametrize("name", CORE)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
