"""Shared fixtures: throwaway primitives that leave the registry as they found it."""

import pytest

from chainrule.core import Primitive, registry


@pytest.fixture
def make_primitive():
    """`make_primitive(name, impl, **rules)` declares a primitive for one test (e.g. one with a
    deliberately wrong rule) and removes it from `chainrule.core.registry` afterwards, so the
    registry tests only ever see the library's own primitives."""
    made = []

    def make(name, impl, **rules):
        prim = Primitive(name, impl, **rules)
        made.append(name)
        return prim

    yield make
    for name in made:
        registry.pop(name, None)
