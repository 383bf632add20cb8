"""Where did this NaN come from? `debug_nans` stops at the first operation that makes one.

What you can do with it:

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> with cr.debug_nans():
    ...     cr.grad(lambda x: cnp.sqrt(x).sum())(cnp.zeros(3))   # doctest: +SKIP
    FloatingPointError: debug_nans: the backward pass of 'sqrt' produced inf ...
      created at: example.py:2 in <lambda>:  cr.grad(lambda x: cnp.sqrt(x).sum())(...)
      hint: sqrt has an infinite derivative at 0 ...

While the mode is on (`with cr.debug_nans():`, `cr.config.debug_nans = True`, or the
environment variable `CHAINRULE_DEBUG_NANS=1` when chainrule is imported), every concrete
result of a primitive and every cotangent of the backward pass is checked. The first non-finite
value raises `FloatingPointError` naming the primitive, the pass (forward or backward), the
user's source line that created the operation, the ranges of its inputs, and a hint for the
usual culprits (`sqrt`/`norm`/`abs**p` at 0, `log(0)`, `x / 0`, `0 * inf`, overflow in
`exp`/`cosh`, a `where` whose unused branch is NaN).

How it is wired, and why it costs nothing when off: `chainrule.core.bind` calls
`core._eager_hook` instead of `impl` for concrete values when the hook is set, the backward
pass (`chainrule.interpreters.reverse.backprop`) calls `reverse._backward_hook` for each rule
when that is set, and the `Tensor` trace's and `jit`'s entry points are swapped for checking
versions; switching the mode off puts every one of them back. A jitted function's outputs are
checked, and when one is not finite the call is re-run op by op to find the culprit. The user's
source lines are captured only while the mode is on.
"""

import contextlib
import linecache
import os
import sys
import threading
import weakref

import numpy as np

__all__ = ['debug_nans', 'record_sources', 'config', 'Config', 'source_line', 'cut_of']

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIP_FILES = (_PKG, contextlib.__file__)

_lock = threading.Lock()
_modes = {'nans': 0, 'sources': 0}   # how many blocks (and the config flag) have each mode on
_origins = {}           # id(result) -> (ref to result, where it was created)
_cuts = {}              # id(array) -> (ref, reason, op, where): values whose gradient was cut
_MAX_ORIGINS = 200_000
_saved = {}             # the originals swapped out while the mode is on
_in_backward = threading.local()


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


# --- checking values ----------------------------------------------------------------------------

def _arrays(x):
    """The concrete arrays in a result (a tuple for multiple results), skipping tracers."""
    from chainrule.core import Tracer
    if isinstance(x, (tuple, list)):
        out = []
        for y in x:
            out.extend(_arrays(y))
        return out
    parts = getattr(x, 'parts', None)          # a TupleCotangent of the backward pass
    if parts is not None:
        return _arrays([p for p in parts if p is not None])
    if getattr(x, '_is_tensor', False):
        x = x.data
    if isinstance(x, Tracer) or x is None:
        return []
    if isinstance(x, (np.ndarray, np.generic, float, complex)):
        return [x]
    return []


def _nonfinite(x):
    a = np.asarray(x)
    if a.dtype.kind not in 'fc':
        return None
    ok = np.isfinite(a)
    return None if ok.all() else ok


def _first_bad(result):
    for a in _arrays(result):
        ok = _nonfinite(a)
        if ok is not None:
            return np.asarray(a), ok
    return None


def _describe(a):
    a = np.asarray(a)
    head = f'shape {a.shape}, {a.dtype}'
    if a.dtype.kind not in 'fc':
        return head
    fin = np.isfinite(a)
    parts = []
    if fin.any():
        v = a[fin]
        if a.dtype.kind == 'c':
            v = np.abs(v)
            parts.append(f'finite |values| in [{v.min():.4g}, {v.max():.4g}]')
        else:
            parts.append(f'finite values in [{v.min():.4g}, {v.max():.4g}]')
        if (v == 0).any():
            parts.append(f'{int((v == 0).sum())} exact zero(s)')
    n_nan = int(np.isnan(a).sum())
    n_inf = int(np.isinf(a).sum())
    if n_nan:
        parts.append(f'{n_nan} NaN')
    if n_inf:
        parts.append(f'{n_inf} inf')
    return head + (': ' + ', '.join(parts) if parts else '')


def _kind(a, ok):
    bad = a[~ok]
    nan = np.isnan(bad).any()
    inf = np.isinf(bad).any()
    return 'NaN and inf' if nan and inf else 'NaN' if nan else 'inf'


_WHERE = ('if a `where` (or a mask) discards these elements, their NaN still reaches the '
          'gradient, because 0 * inf = NaN: use the double-where trick, computing on a safe '
          'input too: `safe = cnp.where(ok, x, 1.0); y = cnp.where(ok, f(safe), 0.0)`')

_HINTS = {
    ('sqrt', 'backward'): 'sqrt has an infinite derivative at 0 (also reached through '
                          '`norm` of a zero vector and `abs(x) ** p` with p < 1): add a small '
                          'epsilon inside, `cnp.sqrt(x + 1e-12)`, or select around 0 with the '
                          'double-where trick',
    ('sqrt', 'forward'): 'sqrt of a negative number is NaN; ' + _WHERE,
    ('pow', 'backward'): '`x ** p` at x = 0 with p < 1 has an infinite derivative (`abs(x) ** '
                         'p`, `norm`), and its derivative in p needs log(x): keep x away from '
                         '0 (`cnp.abs(x) + 1e-12`) or use the double-where trick',
    ('pow', 'forward'): '`x ** p` of a negative x with a fractional p is NaN, and 0 ** -p is '
                        'inf; ' + _WHERE,
    ('log', 'forward'): 'log(0) is -inf and log of a negative number is NaN: use '
                        '`cnp.log(x + eps)`, `cnp.log1p`, or work in log space '
                        '(`cnp.logaddexp`, `log_softmax`); ' + _WHERE,
    ('log', 'backward'): 'the derivative of log, 1/x, is infinite at 0: keep x away from 0',
    ('div', 'forward'): 'x / 0 is inf (and 0 / 0 is NaN): guard the denominator, '
                        '`x / (d + eps)`; ' + _WHERE,
    ('div', 'backward'): 'the derivative of x / d has 1/d**2, infinite at d = 0: guard the '
                         'denominator (`d + eps`)',
    ('mul', 'forward'): '0 * inf is NaN: one factor is already infinite (look at the input '
                        'ranges), usually from an earlier overflow or division by zero',
    ('mul', 'backward'): '0 * inf is NaN: an infinite saved value or cotangent met a zero',
    ('exp', 'forward'): 'exp overflows float64 above about 709 (float32: 88): subtract the '
                        'maximum first (`logsumexp`, `softmax` do), or clip the argument',
    ('cosh', 'forward'): 'cosh overflows float64 above about 710: clip the argument or work '
                         'with log-cosh (`cnp.logaddexp(x, -x) - log(2)`)',
    ('sinh', 'forward'): 'sinh overflows float64 above about 710: clip the argument',
    ('where', 'backward'): _WHERE,
}
_HINTS[('exp', 'backward')] = _HINTS[('exp', 'forward')]
_HINTS[('cosh', 'backward')] = _HINTS[('cosh', 'forward')]
_HINTS[('sinh', 'backward')] = _HINTS[('sinh', 'forward')]
_HINTS[('abs', 'backward')] = _HINTS[('pow', 'backward')]
_HINTS[('log2', 'forward')] = _HINTS[('log10', 'forward')] = _HINTS[('log', 'forward')]


def _hints(name, phase, inputs, g=None, a=None, ok=None):
    out = []
    h = _HINTS.get((name, phase))
    if h:
        out.append(h)
    if phase == 'backward' and g is not None and ok is not None:
        # the incoming gradient is zero exactly where the result is not finite: the forward
        # value was discarded by a where/mask, and 0 * inf made the NaN
        try:
            ga = np.broadcast_to(np.asarray(g), a.shape)
            if np.all(ga[~ok] == 0) and _WHERE not in out:
                out.append('the incoming gradient is 0 at every bad element, so this op\'s '
                           'result was probably thrown away by a `where` or mask; ' + _WHERE)
        except (ValueError, TypeError):
            pass
    if any(_nonfinite(x) is not None for x in inputs):
        out.append('its inputs were already not finite: the problem is upstream (your data, or '
                   'a computation made before the mode was switched on)')
    return out


def _raise(name, phase, where, inputs, a, ok, extra='', g=None):
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0]) if bad.size else ()
    lines = [f'debug_nans: the {phase} pass of {name!r} produced {_kind(a, ok)}{extra}',
             f'  created at: {fmt_where(where)}']
    for i, x in enumerate(inputs):
        lines.append(f'  input {i}: {_describe(x)}')
    if g is not None:
        lines.append(f'  incoming gradient: {_describe(g)}')
    lines.append(f'  result: {int((~ok).sum())} of {ok.size} element(s) not finite, first at '
                 f'index {first}')
    for h in _hints(name, phase, inputs, g, a, ok):
        lines.append(f'  hint: {h}')
    err = FloatingPointError('\n'.join(lines))
    err.primitive, err.phase, err.where = name, phase, where
    raise err


def _concrete_inputs(args):
    out = []
    for x in args:
        if getattr(x, '_is_tensor', False):
            x = x.data
        if isinstance(x, (np.ndarray, np.generic, float, int, complex, bool)):
            out.append(np.asarray(x))
    return out


def _ref(x):
    try:
        return weakref.ref(x)
    except TypeError:               # NumPy scalars and Python numbers: small, keep them
        return lambda: x


def _remember(table, x, *info):
    if len(table) >= _MAX_ORIGINS:
        table.pop(next(iter(table)))
    table[id(x)] = (_ref(x),) + info


def _recall(table, x):
    hit = table.get(id(x))
    return hit[1:] if hit is not None and hit[0]() is x else None


def _check_forward(prim, args, params, result):
    bad = _first_bad(result) if _modes['nans'] else None
    ctx = getattr(_in_backward, 'node', None)
    if bad is not None:
        a, ok = bad
        if prim.name == 'jit_call':
            # a staged program made it: interpret its graph op by op (each op is checked here,
            # so the culprit raises)
            from chainrule.interpreters.staging import eval_graph
            eval_graph(params['graph'], list(args))
        if ctx is not None:            # inside a VJP rule: report the rule's op, backward
            node, i = ctx
            _raise(node.prim.name, 'backward', _origin(node), _concrete_inputs(node.args or ()),
                   a, ok, f' (computing the gradient of argument {i}, in its {prim.name!r})')
        _raise(prim.name, 'forward', source_line(3), _concrete_inputs(args), a, ok)
    if ctx is None:
        # remember where each result was made, for a backward-pass report; a Tensor's node
        # holds its raw data, a reverse-mode node the value (or lower tracer) that bind gave
        where = source_line(3)
        results = list(result) if isinstance(result, tuple) else [result]
        for r in results + [x.data for x in results if getattr(x, '_is_tensor', False)]:
            _remember(_origins, r, where)
        return where


def _origin(node):
    """Where the operation of tape node `node` was made (None when not recorded)."""
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


_PIECEWISE = {'floor', 'ceil', 'round', 'rint', 'trunc', 'sign', 'floor_divide', 'argmax',
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
        elif prim.name in _PIECEWISE:
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
    _check_forward(prim, args, params, out)
    return out


def _backward_hook(node, i, rule, g, out, args, params):
    if not _modes['nans']:
        return rule(g, out, *args, **params)
    prev = getattr(_in_backward, 'node', None)
    _in_backward.node = (node, i)
    try:
        gi = rule(g, out, *args, **params)
    finally:
        _in_backward.node = prev
    bad = _first_bad(gi)
    if bad is not None:
        a, ok = bad
        _raise(node.prim.name, 'backward', _origin(node), _concrete_inputs(args), a, ok,
               f' (the gradient of argument {i})', g=_arrays(g)[0] if _arrays(g) else None)
    return gi


def _install():
    from chainrule import core
    jit_mod = sys.modules['chainrule.jit']     # (the name `chainrule.jit` is the function)
    from chainrule.interpreters import reverse
    from chainrule.tensor import EagerTrace, Tensor
    _origins.clear()
    _cuts.clear()
    _saved['eager'] = EagerTrace.process
    _saved['jitted'] = jit_mod.Jitted.__call__
    orig_process, orig_call = EagerTrace.process, jit_mod.Jitted.__call__

    _saved['detach'] = Tensor.detach
    orig_process, orig_call, orig_detach = EagerTrace.process, jit_mod.Jitted.__call__, Tensor.detach

    def process(self, prim, args, params):
        out = orig_process(self, prim, args, params)
        where = _check_forward(prim, args, params, out)
        if where is not None:
            _record_cut(prim, args, out, where)
        return out

    def call(self, *args, **kwargs):
        out = orig_call(self, *args, **kwargs)
        if _modes['nans'] and _first_bad(_leaves(out)) is not None:
            self.fun(*args, **kwargs)    # op by op, checked: raises at the culprit
        return out

    def detach(self):
        out = orig_detach(self)
        if self.requires_grad and self._node is not None:
            _remember(_cuts, out.data,
                      (('detach', 'detach', source_line(2), (weakref.ref(self._node),)),))
        return out

    EagerTrace.process = process
    jit_mod.Jitted.__call__ = call
    Tensor.detach = detach
    core._eager_hook = _eager_hook
    reverse._backward_hook = _backward_hook


def _uninstall():
    from chainrule import core
    jit_mod = sys.modules['chainrule.jit']     # (the name `chainrule.jit` is the function)
    from chainrule.interpreters import reverse
    from chainrule.tensor import EagerTrace, Tensor
    EagerTrace.process = _saved.pop('eager')
    jit_mod.Jitted.__call__ = _saved.pop('jitted')
    Tensor.detach = _saved.pop('detach')
    core._eager_hook = None
    reverse._backward_hook = None


def _leaves(out):
    from chainrule.tree import tree_flatten
    return tree_flatten(out)[0]


def _enable(on, mode='nans'):
    with _lock:
        before = sum(_modes.values())
        _modes[mode] += 1 if on else -1
        after = sum(_modes.values())
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
        _enable(True, 'sources')
        return self

    def __exit__(self, *exc):
        _enable(False, 'sources')
        return False


class debug_nans:
    """Check every forward result and backward cotangent for NaN and inf (see the module
    docstring). Use as `with cr.debug_nans():` or as a decorator `@cr.debug_nans()`.

    Raises:
        FloatingPointError: at the first non-finite value, naming the primitive, the pass, the
            user's source line, the inputs' ranges and a hint. The error has attributes
            `primitive`, `phase` ('forward' or 'backward') and `where` (file, line, function,
            text).
    """

    def __enter__(self):
        _enable(True)
        return self

    def __exit__(self, *exc):
        _enable(False)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with debug_nans():
                return fn(*args, **kwargs)
        return wrapper


class Config:
    """chainrule's switches. `cr.config.debug_nans = True` turns NaN checking on until set back
    to False (the environment variable `CHAINRULE_DEBUG_NANS=1` sets it at import)."""

    def __init__(self):
        self._debug_nans = False

    @property
    def debug_nans(self):
        return self._debug_nans

    @debug_nans.setter
    def debug_nans(self, on):
        on = bool(on)
        if on != self._debug_nans:
            self._debug_nans = on
            _enable(on)

    def __repr__(self):
        return f'Config(debug_nans={self.debug_nans})'


config = Config()

if os.environ.get('CHAINRULE_DEBUG_NANS', '').strip().lower() in ('1', 'true', 'yes', 'on'):
    config.debug_nans = True
