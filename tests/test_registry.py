"""The registry of primitives: every primitive has its rules, and every primitive is exercised
by a test -- the op table for the core ones (forward pass or derivative rules), or the test file
of the module that declares it."""

import os
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.core import PerArg, Primitive, Trace, bind, list_primitives, new_level, registry
from chainrule.interpreters.reverse import ReverseTracer
from op_table import ROWS

HERE = os.path.dirname(__file__)

# Modules whose primitives are tested by their own test file rather than the op table.
COVERED_ELSEWHERE = {
    'chainrule.ops.linalg_solve': 'test_linalg.py',
    'chainrule.ops.grad_mode': 'test_combo_transform_writes.py',
    'chainrule.ops.linalg_decompositions': 'test_linalg.py',
    'chainrule.ops.linalg_einsum': 'test_einsum.py',
    'chainrule.ops.fft': 'test_fft.py',
    'chainrule.ops.nn_linear': 'test_nn.py',
    'chainrule.ops.nn_activations': 'test_nn.py',
    'chainrule.ops.nn_cross_entropy': 'test_nn.py',
    'chainrule.ops.nn_batch_norm': 'test_nn.py',
    'chainrule.ops.conv': 'test_conv.py',
    'chainrule.ops.recurrent': 'test_recurrent_fused.py',
    'chainrule.custom.jvp': 'test_custom.py',
    'chainrule.custom.vjp': 'test_custom.py',
    'chainrule.checkpoint': 'test_checkpoint.py',
    'chainrule.jit.call': 'test_jit.py',
    'chainrule.lax': 'test_lax.py',
    'chainrule.scipy.special': 'test_scipy_special.py',
    'chainrule.scipy.linalg': 'test_scipy_linalg.py',
    'chainrule.scipy.signal': 'test_scipy_signal.py',
    'chainrule.scipy.integrate': 'test_scipy_integrate.py',
    'chainrule.distributed.collectives': 'test_distributed.py',
    'chainrule.random._threefry': 'test_random.py',
}
# Primitives with no forward-mode rule, each with the reason.
NO_JVP = {'custom_vjp_call': 'a custom_vjp function defines only its VJP, as in JAX'}


def _library_primitives():
    """Registered primitives, less the throwaway ones tests declare and the internal
    `project<n>` helpers (they pick one result of a multiple-result primitive)."""
    return {n: p for n, p in registry.items()
            if not n.startswith(('test_', 'project'))}


def _declaring_modules():
    """{primitive name: module that declares it}, found by looking for the primitive object
    among each loaded chainrule module's globals (the most specific module wins)."""
    import chainrule.nn  # noqa: F401  (load every module that declares primitives)
    out = {}
    for name, mod in sorted(sys.modules.items()):
        if not name.startswith('chainrule') or mod is None:
            continue
        for v in list(vars(mod).values()):
            if isinstance(v, Primitive) and len(name) > len(out.get(v.name, '')):
                out[v.name] = name
    return out


# --- rules ------------------------------------------------------------------------------------

def test_every_primitive_has_a_vjp_or_is_marked_not_differentiable():
    for name, p in _library_primitives().items():
        if p.vjp is None:
            continue   # declared not differentiable: its outputs are constants to every transform
        if isinstance(p.vjp, PerArg):
            assert callable(p.vjp.fn), name
            continue
        rules = list(p.vjp)
        assert rules, f'{name}: an empty VJP list (use vjp=None for a non-differentiable op)'
        assert all(r is None or callable(r) for r in rules), f'{name}: VJP entries must be ' \
            'callables or None'
        assert any(callable(r) for r in rules), f'{name}: every VJP entry is None; declare ' \
            'vjp=None instead'


def test_every_differentiable_primitive_has_a_forward_rule():
    missing = [n for n, p in _library_primitives().items()
               if p.vjp is not None and not list_primitives()[n]['jvp'] and n not in NO_JVP]
    assert not missing, f'primitives with a VJP but no JVP rule: {missing}'


def test_list_primitives_reports_every_primitive():
    table = list_primitives()
    for name in _library_primitives():
        assert set(table[name]) >= {'vjp', 'jvp', 'batch', 'shape'}


# --- coverage ---------------------------------------------------------------------------------

class _Seen(ReverseTracer):
    """A value watched by `_Watch` (a reverse-mode tracer's shape and dtype, with no node)."""

    __slots__ = ()

    def __init__(self, trace, value):
        super().__init__(trace, value, None)


class _Watch(Trace):
    """A transform that changes nothing and records the name of every primitive bound."""

    __slots__ = ('seen',)

    def __init__(self, level, seen):
        super().__init__(level)
        self.seen = seen

    def process(self, prim, args, params):
        self.seen.add(prim.name)
        vals = [a.value if isinstance(a, _Seen) and a._trace is self else a for a in args]
        out = bind(prim, *vals, **params)
        if prim.multiple_results:
            return tuple(_Seen(self, o) for o in out)
        return _Seen(self, out)


def _leaves(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def primitives_used(fn, args):
    """Names of the primitives `fn(*args)` binds, forward and in its VJP rules."""
    seen = set()
    pos = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind in 'fc']
    with new_level(_Watch, seen) as trace:
        call = [_Seen(trace, a) for a in args]   # integer and boolean arguments too
        if not pos:
            fn(*call)
            return seen

        def f(*xs):
            c = list(call)
            for i, x in zip(pos, xs):
                c[i] = x
            out = fn(*c)
            # a dtype (cnp.result_type) is no output vjp can take; nothing to pull back
            return np.zeros(()) if isinstance(out, np.dtype) else out

        out, pull = cr.vjp(f, *[call[i] for i in pos])
        outs = _leaves(out)
        if all(getattr(o, 'dtype', np.dtype(object)).kind in 'fc' for o in outs):
            # watched cotangents, so the VJP rules' own primitives are recorded too
            cts = [_Seen(trace, np.ones(np.shape(o), o.dtype)) for o in outs]
            pull(type(out)(cts) if isinstance(out, (list, tuple)) else cts[0])
    return seen


@pytest.fixture(scope='module')
def covered():
    """{primitive name: op-table cases that exercise it}."""
    rng = np.random.default_rng(0)
    cov = {}
    for row in ROWS:
        for cid, shapes, kw in row.cases():
            args = row.sample(shapes, np.float64, rng)
            for name in primitives_used(lambda *a: row.fn(*a, **kw), args):
                cov.setdefault(name, []).append(cid)
    return cov


def test_every_core_primitive_is_exercised_by_the_op_table(covered):
    mods = _declaring_modules()
    prims = _library_primitives()
    core = [n for n in prims if (mods.get(n) or '').startswith(('chainrule.ops.elementwise',
                                                                 'chainrule.ops.structural'))]
    assert len(core) > 30
    missing = sorted(n for n in core if n not in covered)
    assert not missing, f'primitives no op-table row exercises: {missing}; add a row to ' \
        'tests/op_table.py'


def test_every_other_primitive_is_covered_by_its_module_test_file(covered):
    mods = _declaring_modules()
    unknown, absent = [], []
    for name in _library_primitives():
        mod = mods.get(name)
        if name in covered or (mod or '').startswith(('chainrule.ops.elementwise',
                                                      'chainrule.ops.structural')):
            continue
        if mod not in COVERED_ELSEWHERE:
            unknown.append((name, mod))
            continue
        path = os.path.join(HERE, COVERED_ELSEWHERE[mod])
        if not os.path.exists(path):
            absent.append((name, COVERED_ELSEWHERE[mod]))
    assert not unknown, f'primitives neither exercised by the op table nor declared in a module ' \
        f'listed in COVERED_ELSEWHERE: {unknown}'
    assert not absent, f'primitives whose module has no test file: {absent}'


def test_the_coverage_recorder_sees_forward_and_backward_primitives():
    used = primitives_used(lambda x: x[1:] * 2.0, [np.arange(4.0)])
    # getitem and mul forward; scatter_add is getitem's VJP
    assert {'getitem', 'mul', 'scatter_add'} <= used
