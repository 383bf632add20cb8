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

The checks run through the switchable hooks of `chainrule.debug.hooks`, installed only while
a mode is on, so with the mode off nothing changes on any path. A jitted function's outputs are
checked, and when one is not finite the call is re-run op by op to find the culprit. The user's
source lines are captured only while the mode is on.
"""

import os

import numpy as np

from chainrule.debug import hooks
from chainrule.debug.hooks import origin, source_line

__all__ = ['debug_nans', 'config', 'Config']


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
             f'  created at: {hooks.fmt_where(where)}']
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


def check_forward(prim, args, params, result):
    """Raise at a non-finite concrete result of `prim` (called by the hooks)."""
    bad = _first_bad(result)
    if bad is None:
        return
    a, ok = bad
    if prim.name == 'jit_call':
        # a staged program made it: interpret its graph op by op (each op is checked, so the
        # culprit raises)
        from chainrule.interpreters.staging import eval_graph
        eval_graph(params['graph'], list(args))
    ctx = hooks.in_backward.get()
    if ctx is not None:            # inside a VJP rule: report the rule's op, backward
        node, i = ctx
        _raise(node.prim.name, 'backward', origin(node), _concrete_inputs(node.args or ()),
               a, ok, f' (computing the gradient of argument {i}, in its {prim.name!r})')
    _raise(prim.name, 'forward', source_line(4), _concrete_inputs(args), a, ok)


def check_backward(node, i, g, args, gi):
    """Raise at a non-finite cotangent `gi` for argument i of `node` (called by the hooks)."""
    bad = _first_bad(gi)
    if bad is not None:
        a, ok = bad
        gs = _arrays(g)
        _raise(node.prim.name, 'backward', origin(node), _concrete_inputs(args), a, ok,
               f' (the gradient of argument {i})', g=gs[0] if gs else None)


def check_jitted(jitted, args, kwargs, out):
    """A jitted call's outputs: when one is not finite, re-run the function op by op, checked,
    so the culprit raises with the user's line."""
    from chainrule.tree import tree_flatten
    if _first_bad(tree_flatten(out)[0]) is not None:
        jitted.fun(*args, **kwargs)


class debug_nans:
    """Check every forward result and backward cotangent for NaN and inf (see the module
    docstring). Use as `with cr.debug_nans():` or as a decorator `@cr.debug_nans()`. A block
    checks the code of its own context (thread, asyncio task), as `no_grad()` does;
    `cr.config.debug_nans = True` checks everywhere.

    Raises:
        FloatingPointError: at the first non-finite value, naming the primitive, the pass, the
            user's source line, the inputs' ranges and a hint. The error has attributes
            `primitive`, `phase` ('forward' or 'backward') and `where` (file, line, function,
            text).
    """

    def __init__(self):
        self._tokens = []

    def __enter__(self):
        self._tokens.append(hooks.nans_here.set(hooks.nans_here.get() + 1))
        hooks.enable(True, 'nans')
        return self

    def __exit__(self, *exc):
        hooks.enable(False, 'nans')
        hooks.nans_here.reset(self._tokens.pop())
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
            self._debug_nans = hooks.nans_everywhere[0] = on
            hooks.enable(on, 'nans')

    def __repr__(self):
        return f'Config(debug_nans={self.debug_nans})'


config = Config()

if os.environ.get('CHAINRULE_DEBUG_NANS', '').strip().lower() in ('1', 'true', 'yes', 'on'):
    config.debug_nans = True
