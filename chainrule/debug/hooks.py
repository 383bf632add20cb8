"""The switchable hooks behind chainrule's diagnostics, and what they record.

What you can do with it: `record_sources()` records, while it is on, the user's source line of
every operation and where a value's gradient was cut (`detach()`, `no_grad()`,
`stop_gradient`, an integer cast, a piecewise-constant op); `explain_grad`, `memory_report` and
`backward(steps=True)` read these records. `debug_nans` (`chainrule.debug.nans`) uses the same
hooks to check every value.

How it is wired, and why it costs nothing when off: while some mode is on,
`chainrule.core.bind` calls `core._eager_hook` instead of `impl` for concrete values, the backward
pass (`chainrule.interpreters.reverse.backprop`) calls `reverse._backward_hook` for each rule,
and `EagerTrace.process` (the `Tensor` path), `Jitted.__call__` and `Tensor.detach` are swapped
for versions that check and record. When the last mode is switched off every one of them is put
back, so the code that runs is exactly the code that ran before. The records hold weak
references (NumPy scalars excepted) and at most 200,000 entries each.
"""

import contextlib
import contextvars
import linecache
import os
import sys
import threading
import weakref

import numpy as np

__all__ = ['record_sources', 'source_line', 'fmt_where', 'origin', 'cut_of', 'PIECEWISE']

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIP_FILES = (_PKG, contextlib.__file__)

_lock = threading.Lock()
modes = {'nans': 0, 'sources': 0}   # how many blocks (and the config flag) have each mode on
_origins = {}           # id(result) -> (ref to result, where it was created)
_cuts = {}              # id(array) -> (ref, cut points): values whose gradient was cut
_node_origins = {}      # id(tape node) -> (ref to node, where): in-place nodes (chainrule._views)
_MAX_ENTRIES = 200_000
_saved = {}             # the originals swapped out while a mode is on
# (node, argument) while a VJP rule runs with the NaN check on: ops inside are that rule's
in_backward = contextvars.ContextVar('chainrule_debug_in_backward', default=None)


# `debug_nans` blocks check only in their own context (thread, asyncio task), as `no_grad`
# applies only to its own; `cr.config.debug_nans = True` checks everywhere
nans_here = contextvars.ContextVar('chainrule_debug_nans_here', default=0)
nans_everywhere = [False]


def checking():
    """Whether NaN checks apply in this context."""
    return nans_everywhere[0] or nans_here.get() > 0


def source_line(skip_frames=1):
    """`(filename, lineno, function, text)` of the innermost frame outside chainrule (the
    user's line that called into it), or None."""
    f = sys._getframe(skip_frames)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_SKIP_FILES) and not fn.startswith('<frozen'):
            text = linecache.getline(fn, f.f_lineno).strip()
            return (fn, f.f_lineno, f.f_code.co_name, text)
        f = f.f_back
    return None


def fmt_where(where):
    """`file:line in function:  text` for a `source_line` result."""
    if where is None:
        return 'unknown (no frame outside chainrule)'
    fn, line, func, text = where
    return f'{fn}:{line} in {func}:  {text}'


def _ref(x):
    try:
        return weakref.ref(x)
    except TypeError:               # NumPy scalars and Python numbers: small, keep them
        return lambda: x


def _remember(table, x, *info):
    if len(table) >= _MAX_ENTRIES:
        table.pop(next(iter(table)))
    table[id(x)] = (_ref(x),) + info


def _recall(table, x):
    hit = table.get(id(x))
    return hit[1:] if hit is not None and hit[0]() is x else None


def _forward(prim, args, params, result):
    """Called with every concrete result while a mode is on: check it (debug_nans), and
    remember where it was made. Returns that source line (None inside a VJP rule)."""
    if modes['nans'] and checking():
        from chainrule.debug.nans import check_forward
        check_forward(prim, args, params, result)
    if in_backward.get() is not None:
        return None
    # a Tensor's node holds its raw data, a reverse-mode node the value that bind gave
    where = source_line(3)
    results = list(result) if isinstance(result, tuple) else [result]
    for r in results + [x.data for x in results if getattr(x, '_is_tensor', False)]:
        _remember(_origins, r, where)
    return where


def origin(node):
    """Where the operation of tape node `node` was made (None when not recorded)."""
    hit = _recall(_node_origins, node)
    if hit is not None:
        return hit[0]
    out = node.out
    for r in ([out] + list(out) if isinstance(out, tuple) else [out]):
        hit = _recall(_origins, r)
        if hit is not None:
            return hit[0]
    return None


def cut_of(array):
    """The cut points `[(reason, op, where, sources)]` behind `array`, the data of a value whose
    gradient was cut (recorded while a mode was on; `sources` are weak references to the tape
    nodes the gradient would have continued to): empty when none is known."""
    hit = _recall(_cuts, array)
    return list(hit[0]) if hit is not None else []


PIECEWISE = {'floor', 'ceil', 'round', 'rint', 'trunc', 'sign', 'floor_divide', 'argmax',
              'argmin', 'argsort', 'equal', 'not_equal', 'less', 'less_equal', 'greater',
              'greater_equal', 'isnan', 'isinf', 'isfinite', 'logical_and', 'logical_or',
              'logical_not', 'logical_xor', 'searchsorted'}


def _record_cut(prim, args, out, where):
    """A Tensor op whose result does not require grad: if an input did, record why the
    gradient stops here; if an input was itself cut, the result inherits its cut points."""
    outs = [r for r in (out if isinstance(out, tuple) else (out,))
            if getattr(r, '_is_tensor', False) and not r.requires_grad]
    if not outs:
        return
    if any(getattr(a, '_is_tensor', False) and a.requires_grad for a in args):
        from chainrule.tensor import is_grad_enabled
        if not is_grad_enabled():
            reason = 'no_grad'
        elif prim.name in PIECEWISE:
            reason = 'piecewise_constant'
        elif np.dtype(outs[0].dtype).kind in 'biu':
            reason = 'integer'          # (an integer cast may stop the gradient first)
        elif prim.name == 'stop_gradient':
            reason = 'stop_gradient'
        else:
            reason = 'not_differentiable'
        srcs = tuple(weakref.ref(a._node) for a in args if getattr(a, '_is_tensor', False)
                     and a.requires_grad and a._node is not None)
        infos = ((reason, prim.name, where, srcs),)
    else:
        infos = ()
        for a in args:
            for c in cut_of(a.data if getattr(a, '_is_tensor', False) else a):
                if c not in infos:
                    infos += (c,)
        if not infos:
            return
        if np.dtype(outs[0].dtype).kind in 'biu':   # astype: stop_gradient, then the cast
            infos = tuple(('integer', prim.name) + c[2:] if c[0] == 'stop_gradient'
                          and c[2] == where else c for c in infos)
    for r in outs:
        _remember(_cuts, r.data, infos)


# --- the hooks ----------------------------------------------------------------------------------

def _eager_hook(prim, args, params):
    out = prim.impl(*args, **params)
    _forward(prim, args, params, out)
    return out


def _backward_hook(node, i, rule, g, out, args, params):
    if not (modes['nans'] and checking()):
        return rule(g, out, *args, **params)
    from chainrule.debug.nans import check_backward
    token = in_backward.set((node, i))
    try:
        gi = rule(g, out, *args, **params)
    finally:
        in_backward.reset(token)
    check_backward(node, i, g, args, gi)
    return gi


def _install():
    from chainrule import _views, core
    jit_mod = sys.modules['chainrule.jit']     # (the name `chainrule.jit` is the function)
    from chainrule.interpreters import reverse
    from chainrule.tensor import EagerTrace, Tensor
    _origins.clear()
    _cuts.clear()
    _node_origins.clear()
    orig_process = _saved['eager'] = EagerTrace.process
    orig_call = _saved['jitted'] = jit_mod.Jitted.__call__
    orig_detach = _saved['detach'] = Tensor.detach

    def process(self, prim, args, params):
        out = orig_process(self, prim, args, params)
        where = _forward(prim, args, params, out)
        if where is not None:
            _record_cut(prim, args, out, where)
        return out

    def call(self, *args, **kwargs):
        out = orig_call(self, *args, **kwargs)
        if modes['nans'] and checking():
            from chainrule.debug.nans import check_jitted
            check_jitted(self, args, kwargs, out)
        return out

    def detach(self):
        out = orig_detach(self)
        if self.requires_grad and self._node is not None:
            _remember(_cuts, out.data,
                      (('detach', 'detach', source_line(2), (weakref.ref(self._node),)),))
        return out

    def node_made(node):
        if in_backward.get() is None:
            _remember(_node_origins, node, source_line(2))

    EagerTrace.process = process
    jit_mod.Jitted.__call__ = call
    Tensor.detach = detach
    _views._node_hook = node_made
    core._eager_hook = _eager_hook
    reverse._backward_hook = _backward_hook


def _uninstall():
    from chainrule import _views, core
    jit_mod = sys.modules['chainrule.jit']     # (the name `chainrule.jit` is the function)
    from chainrule.interpreters import reverse
    from chainrule.tensor import EagerTrace, Tensor
    EagerTrace.process = _saved.pop('eager')
    jit_mod.Jitted.__call__ = _saved.pop('jitted')
    Tensor.detach = _saved.pop('detach')
    _views._node_hook = None
    core._eager_hook = None
    reverse._backward_hook = None


def enable(on, mode):
    """Switch `mode` ('nans' or 'sources') on or off (counted: blocks nest)."""
    with _lock:
        before = sum(modes.values())
        modes[mode] += 1 if on else -1
        after = sum(modes.values())
        if before == 0 and after > 0:
            _install()
        elif before > 0 and after == 0:
            _uninstall()


class record_sources:
    """Record, for every operation run inside the block, the user's source line that made it,
    and where a value's gradient was cut (`detach()`, `no_grad()`, `stop_gradient`, an integer
    cast, a piecewise-constant op). `cr.explain_grad` and `cr.memory_report` use these records
    after the block. Nothing is recorded outside such a block (or `debug_nans`)."""

    def __enter__(self):
        enable(True, 'sources')
        return self

    def __exit__(self, *exc):
        enable(False, 'sources')
        return False


