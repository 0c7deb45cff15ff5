"""Every public class and function of the modules a reader learns from carries a runnable example.

The examples themselves run as doctests (``--doctest-modules``, see pyproject.toml); this test
makes sure none is missing, so that a new public name cannot arrive without one.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

TAUGHT_MODULES = (
    "attention", "encoder", "decoder", "positional", "embedding",
    "tokenization.basic", "tokenization.wordpiece", "tokenization.bpe",
)


def _public_objects(module_name: str):
    module = importlib.import_module(f"transformer_course.{module_name}")
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            yield name, obj


@pytest.mark.parametrize("module_name", TAUGHT_MODULES)
def test_every_public_class_and_function_has_an_example(module_name):
    objects = dict(_public_objects(module_name))
    assert objects, f"{module_name}: no public class or function found in __all__"
    missing = [name for name, obj in objects.items() if ">>>" not in (obj.__doc__ or "")]
    assert not missing, f"{module_name}: no Examples section in {missing}"


def test_every_taught_module_opens_with_a_docstring_before_any_code():
    for module_name in TAUGHT_MODULES:
        module = importlib.import_module(f"transformer_course.{module_name}")
        source = inspect.getsource(module).lstrip()
        assert source.startswith('"""'), module_name
