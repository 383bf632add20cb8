"""`cr.coverage()`: the table of what works where, found by running, agrees with the op tests."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.debug.coverage_table import COLUMNS, _run, public_functions
from chainrule.debug.samples import Sample

from op_table import ROWS


@pytest.fixture(scope='module')
def table():
    return cr.coverage()


def test_one_function_gives_one_row():
    row = cr.coverage(cnp.flip)
    assert (row.name, row.module) == ('flip', 'chainrule.numpy')
    assert [getattr(row, c) for c in COLUMNS] == ['yes', 'yes', 'native', 'yes', 'yes', 'yes']


def test_not_a_public_function_is_a_clear_error():
    with pytest.raises(ValueError, match='not a public function'):
        cr.coverage(lambda x: x)


def test_every_public_function_runs_on_its_sample(table):
    names = {(m, n) for m, n, _ in public_functions()}
    assert {(r.module, r.name) for r in table} == names
    broken = [r.qualname for r in table if 'all' in r.notes]
    assert not broken, f'functions whose sample inputs fail: {broken}'
    assert '| `sin` | yes | yes | native | yes | yes | yes |' in table.to_markdown()


def test_utilities_and_drivers_are_left_out_with_a_reason(table):
    from chainrule.debug.samples import SKIP
    names = {r.name for r in table}
    for n in ['geterr', 'seterr', 'geterrcall', 'seterrcall']:      # NumPy's error state
        assert hasattr(cnp, n) and n not in names and SKIP[n]
    pytest.importorskip('scipy', reason='chainrule.scipy needs SciPy')
    from chainrule.scipy import optimize
    for n in optimize.__all__:                                       # optimizer drivers
        assert n not in names and 'optimizer' in SKIP[n]
    # the ODE solvers run on a fixed right-hand side, in every column (real times)
    for n in ['odeint', 'solve_ivp']:
        r = table[f'chainrule.scipy.integrate.{n}']
        assert [getattr(r, c) for c in COLUMNS] == ['yes', 'yes', 'native', 'yes', 'yes', 'yes']


def test_table_agrees_with_the_op_tests(table):
    # the op table's rows named exactly after a public function: the tests there pass, so the
    # coverage table must say the same (differentiable rows work in both modes and to second
    # order, complex rows work on complex inputs, constant rows have nothing to differentiate)
    rows = {r.name: r for r in ROWS}
    checked = 0
    for r in table:
        if r.module != 'chainrule.numpy' or r.name not in rows:
            continue
        op = rows[r.name]
        if op.diff:
            assert r.reverse in ('yes', 'zero'), r
            assert r.forward in ('yes', 'zero'), r
            assert r.jit == 'yes', r
            assert r.vmap in ('native', 'loop'), r
            if op.order >= 2:
                assert r.second_order == 'yes', r
            if op.complex:
                assert r.complex in ('yes', 'zero'), r
        else:
            assert r.reverse in ('n/a', 'zero'), r
        checked += 1
    assert checked > 150


def test_constant_and_piecewise_constant_functions():
    assert cr.coverage(cnp.argmax).reverse == 'n/a'       # integer result
    row = cr.coverage(cnp.floor)
    assert (row.reverse, row.forward) == ('zero', 'zero')
    assert cr.coverage(cnp.stop_gradient).reverse == 'zero'


def test_vmap_column_names_loop_fallback_and_failures():
    assert cr.coverage(cnp.nonzero).vmap == 'no'            # result shape depends on values
    assert 'ConcretizationError' in cr.coverage(cnp.nonzero).notes['vmap']


def test_a_wrong_derivative_rule_is_reported_wrong():
    @cr.custom_vjp
    def f(x):
        return cnp.sin(x)

    f.defvjp(lambda x: (cnp.sin(x), x), lambda x, g: (g * x,))   # ought to be g * cos(x)
    row = _run('test', 'f', f, Sample((3,)))
    assert row.reverse == 'wrong'
    good = _run('test', 'sin', cnp.sin, Sample((3,)))
    assert good.reverse == 'yes'


def test_a_function_failing_in_a_transform_is_reported_no():
    def needs_concrete(x):
        return x * float(np.asarray(cr.core.concrete(x)).sum())   # not traceable
    row = _run('test', 'needs_concrete', needs_concrete, Sample((3,)))
    assert row.jit == 'no' and 'jit' in row.notes
