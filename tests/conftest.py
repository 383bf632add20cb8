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


def pytest_terminal_summary(terminalreporter):
    """Say how many checks were skipped, grouped by reason (a missing optional reference such as
    PyTorch, SciPy or MPI), and how to enable them: a skipped cross-check is not a pass."""
    skipped = terminalreporter.stats.get('skipped', [])
    if not skipped:
        return
    reasons = {}
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep('-', f'{len(skipped)} checks skipped (not passed), by reason')
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f'{n:5d}  {reason}')
    if any(w in r.lower() for r in reasons for w in ('install', 'import', 'torch', 'mpi')):
        terminalreporter.write_line(
            'Some are cross-checks against a missing reference: install the test extra '
            '(pip install -e ".[test]") and torch==2.13.0 to run them.')
