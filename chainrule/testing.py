"""Gradient checking: compare chainrule's derivatives with finite differences.

What you can do with it: check that a function's reverse-mode (`vjp`) and forward-mode (`jvp`)
derivatives are right, to any order, and get a report of the worst element when they are not.

    >>> import numpy as np, chainrule.numpy as cnp
    >>> from chainrule.testing import check_grads
    >>> check_grads(lambda x: cnp.sin(x) * x, (np.linspace(0.1, 1, 4),), order=2)

How the check works. For a function `f` of arrays, pick a random direction `v` for the inputs
and a random cotangent `u` for the outputs, and compare the two sides of

    <u, J v>  =  <vjp(u), v>,        <a, b> = Re(sum(a * b))     (no conjugation)

The left side comes from centred finite differences, `(s(x + eps v) - s(x - eps v)) / (2 eps)`
with `s(x) = <u, f(x)>`; the right side from `chainrule.vjp`. Forward mode compares `jvp(f)(x, v)`
with `(f(x + eps v) - f(x - eps v)) / (2 eps)` element by element. One random direction finds a
wrong rule with probability one and costs two evaluations; only when it fails is the gradient
rebuilt element by element by finite differences (two evaluations per input element) so the
report can name the worst element: its index, the expected and computed values and the errors.

Higher orders: the derivative function `(x, u) -> vjp(f, x)(u)` is itself a function of arrays,
so `order=2` checks it the same way (and `(x, v) -> jvp(f)(x, v)` for forward mode), which tests
every rule's own derivative -- the rules are written in chainrule's ops, so this is what
`grad(grad(f))` relies on.

Complex numbers: a complex input is two real inputs (its real and imaginary parts), each with its
own random direction. The pairing `Re(sum(a * b))` without conjugation is what makes this
consistent with chainrule's (JAX's) convention: the gradient of a real `s(z)` is
`ds/dx - i ds/dy`, so `grad(lambda z: abs(z)**2)(1+2j) == 2-4j`.

Only floating and complex arguments are perturbed; integer and boolean arguments are passed
through unchanged (they have no derivative).
"""

import numpy as np

__all__ = ['check_grads', 'check_vjp', 'check_jvp', 'default_tolerance']

# eps, rtol, atol per real dtype: float32 has about 7 digits, so its finite differences need a
# larger step and give about 3 correct digits; float64 ones about 8-9.
_TOLERANCE = {
    np.dtype(np.float16): (3e-2, 1e-1, 1e-1),
    np.dtype(np.float32): (2e-3, 2e-2, 2e-3),
    np.dtype(np.float64): (1e-6, 1e-5, 1e-7),
}


def default_tolerance(dtype):
    """The default `(eps, rtol, atol)` for arguments of `dtype` (complex: of its real part)."""
    dt = np.dtype(dtype)
    if dt.kind == 'c':
        dt = np.finfo(dt).dtype
    return _TOLERANCE.get(dt, _TOLERANCE[np.dtype(np.float64)])


def check_grads(f, args, order=2, modes=('rev',), eps=None, rtol=None, atol=None, seed=0):
    """Check the derivatives of `f` at `args` against finite differences, up to `order`.

    Args:
        f: a function of arrays returning an array or a pytree of arrays (tuple, list, dict).
        args: the arguments (a tuple; a single array is taken as one argument). Only floating and
            complex arguments are differentiated.
        order: how many times to differentiate: 1 checks the derivative, 2 also the derivative
            of the derivative function, and so on.
        modes: any of `"rev"` (checks `chainrule.vjp`) and `"fwd"` (checks `chainrule.jvp`).
        eps: finite-difference step; by default chosen from the least precise argument dtype
            (see `default_tolerance`).
        rtol, atol: tolerances; by default chosen by dtype (float32 looser than float64).
        seed: the seed of the random directions (the check is deterministic).

    Returns:
        None.

    Raises:
        AssertionError: a derivative disagrees with finite differences; the message names the
            mode, the order, the argument and the worst element (index, expected, got, absolute
            and relative error).
        NotImplementedError: `"fwd"` was asked for but `chainrule.jvp` does not exist yet.
    """
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    for mode in modes:
        if mode not in ('rev', 'fwd'):
            raise ValueError(f'check_grads: unknown mode {mode!r} (use "rev" and/or "fwd")')
        if mode == 'fwd':
            _jvp()   # raises if forward mode is not available
    rng = np.random.default_rng(seed)
    # an explicit stack of (function, arguments, order) instead of recursion
    todo = [(f, args, 1)]
    while todo:
        fn, xs, level = todo.pop()
        for mode in modes:
            tol = dict(eps=eps, rtol=rtol, atol=atol, order=level, rng=rng)
            if mode == 'rev':
                check_vjp(fn, xs, **tol)
            else:
                check_jvp(fn, xs, **tol)
            if level < order and _diff_positions(xs):
                d = _derivative_function(fn, xs, mode, rng)
                todo.append((d, d.args, level + 1))


class _DerivFn:
    """A derivative function of `fn` with the arguments to check it at (`args`)."""

    __slots__ = ('fn', 'args', '__name__')

    def __init__(self, fn, args, name):
        self.fn, self.args, self.__name__ = fn, args, name

    def __call__(self, *xs):
        return self.fn(*xs)


def _derivative_function(fn, xs, mode, rng):
    """`(x, u) -> vjp(fn, x)(u)` (rev) or `(x, v) -> jvp(fn)(x, v)` (fwd), with a random `u`/`v`,
    as a function to check at the next order."""
    import chainrule as cr
    diff = _diff_positions(xs)
    n = len(diff)
    if mode == 'rev':
        out = fn(*xs)
        extra = tuple(_random_like(o, rng) for o in _as_tuple(out))

        def d(*ys):
            g = _on_diff_args(fn, _substitute(xs, diff, ys[:n]), diff)
            _, pull = cr.vjp(g, *ys[:n])
            u = ys[n:]
            return tuple(pull(_like(out, u)))
    else:
        extra = tuple(_random_like(xs[i], rng) for i in diff)

        def d(*ys):
            g = _on_diff_args(fn, _substitute(xs, diff, ys[:n]), diff)
            return _jvp()(g, tuple(ys[:n]), tuple(ys[n:]))[1]
    return _DerivFn(d, tuple(xs[i] for i in diff) + extra, f'{mode}-derivative of {_name(fn)}')


def _substitute(args, diff, values):
    out = list(args)
    for i, v in zip(diff, values):
        out[i] = v
    return out


def _on_diff_args(fn, args, diff):
    """`fn` as a function of the arguments at positions `diff` only (the others held fixed)."""
    def g(*zs):
        return fn(*_substitute(args, diff, zs))
    g.__name__ = _name(fn)
    return g


def check_vjp(f, args, *, eps=None, rtol=None, atol=None, order=1, rng=None):
    """Check `chainrule.vjp(f, *args)` against finite differences along a random direction
    (first order only; `check_grads` recurses). Arguments as in `check_grads`; `order` is only
    used in the report."""
    import chainrule as cr
    args, diff, rng, (eps, rtol, atol) = _prepare(args, rng, eps, rtol, atol)
    if not diff:
        return
    out = f(*args)
    outs = _as_tuple(out)
    us = tuple(_random_like(o, rng) for o in outs)
    vs = {i: _random_like(args[i], rng) for i in diff}
    _, pull = cr.vjp(_on_diff_args(f, args, diff), *[args[i] for i in diff])
    cts = pull(_like(out, us))
    cts = dict(zip(diff, cts))

    def s(x):
        return _pair(us, _as_tuple(f(*x)))

    # one random direction for all arguments at once: cheap, and finds any wrong rule
    fd, noise = _central(s, args, vs, eps)
    terms = [_real(np.asarray(cts[i], dtype=_wide(cts[i])) * vs[i]) for i in diff]
    an = float(sum(np.sum(t) for t in terms))
    scale = max(abs(an), abs(fd), float(sum(np.sum(np.abs(t)) for t in terms)))
    if abs(fd - an) <= atol + rtol * scale + noise:
        return
    # it failed: find the argument and element to blame, by finite differences per element
    report = [f'check_grads: reverse mode (vjp), order {order}, function {_name(f)}: the '
              f'directional derivative is {an:.10g} from vjp but {fd:.10g} from finite '
              f'differences (eps={eps}).']
    for i in diff:
        expected = _fd_gradient(s, args, i, eps)
        report.append(_worst(f'argument {i}', expected, cts[i], rtol, atol, 'vjp'))
    raise AssertionError('\n'.join(report))


def check_jvp(f, args, *, eps=None, rtol=None, atol=None, order=1, rng=None):
    """Check `chainrule.jvp(f, args, tangents)` against finite differences along a random
    direction, element by element of the output (first order; `check_grads` recurses)."""
    jvp = _jvp()
    args, diff, rng, (eps, rtol, atol) = _prepare(args, rng, eps, rtol, atol)
    if not diff:
        return
    vs = {i: _random_like(args[i], rng) for i in diff}
    _, tout = jvp(_on_diff_args(f, args, diff), tuple(args[i] for i in diff),
                  tuple(vs[i] for i in diff))
    plus = _as_tuple(f(*_shift(args, vs, eps)))
    minus = _as_tuple(f(*_shift(args, vs, -eps)))
    tout = _as_tuple(tout)
    report = []
    for k, (p, m, t) in enumerate(zip(plus, minus, tout)):
        p, m = np.asarray(p), np.asarray(m)
        expected = (p.astype(_wide(p)) - m.astype(_wide(m))) / (2 * eps)
        noise = 4 * _eps_of(p) * (np.abs(p) + np.abs(m)) / (2 * eps)
        got = np.asarray(t, dtype=_wide(t)) if t is not None else np.zeros_like(expected)
        err = np.abs(expected - got)
        if np.any(~(err <= atol + rtol * np.maximum(np.abs(expected), np.abs(got)) + noise)):
            report.append(_worst(f'output {k}', expected, got, rtol, atol, 'jvp'))
    if report:
        raise AssertionError('\n'.join(
            [f'check_grads: forward mode (jvp), order {order}, function {_name(f)}, along a '
             f'random direction (eps={eps}):'] + report))


# --- helpers ------------------------------------------------------------------------------------

def _jvp():
    import chainrule as cr
    jvp = getattr(cr, 'jvp', None)
    if jvp is None:
        raise NotImplementedError('check_grads: mode "fwd" needs chainrule.jvp (forward mode), '
                                  'which is not available yet; use modes=("rev",)')
    return jvp


def _name(f):
    return getattr(f, '__name__', type(f).__name__)


def _as_tuple(out):
    """The arrays of an output: a single array, or the leaves of a pytree (tuple, list, dict)."""
    from chainrule.tree import tree_leaves
    return tuple(tree_leaves(out))


def _like(out, leaves):
    """`leaves` in the structure of `out` (a cotangent for it)."""
    from chainrule.tree import tree_structure, tree_unflatten
    return tree_unflatten(tree_structure(out), list(leaves))


def _is_inexact(x):
    return np.asarray(x).dtype.kind in 'fc' if not hasattr(x, 'dtype') else x.dtype.kind in 'fc'


def _diff_positions(args):
    return [i for i, a in enumerate(args) if _is_inexact(a)]


def _wide(x):
    """float64 or complex128: finite differences are formed in double precision."""
    return np.complex128 if np.asarray(x).dtype.kind == 'c' else np.float64


def _eps_of(x):
    dt = np.asarray(x).dtype
    return np.finfo(dt).eps if dt.kind in 'fc' else np.finfo(np.float64).eps


def _real(x):
    return np.real(x)


def _prepare(args, rng, eps, rtol, atol):
    """Arguments as a tuple, the positions to differentiate, the random generator and the
    tolerances (`eps, rtol, atol`) of one check."""
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    diff = _diff_positions(args)
    rng = np.random.default_rng(0) if rng is None else rng
    return args, diff, rng, (_tolerances(args, diff, eps, rtol, atol) if diff else (None,) * 3)


def _tolerances(args, diff, eps, rtol, atol):
    # the least precise argument decides (a float32 argument makes the whole check float32)
    worst = max((default_tolerance(np.asarray(args[i]).dtype) for i in diff),
                key=lambda t: t[0])
    return (worst[0] if eps is None else eps, worst[1] if rtol is None else rtol,
            worst[2] if atol is None else atol)


def _random_like(x, rng):
    """A random array of x's shape and dtype (complex: random real and imaginary parts)."""
    a = np.asarray(x)
    r = rng.standard_normal(a.shape)
    if a.dtype.kind == 'c':
        r = r + 1j * rng.standard_normal(a.shape)
    return r.astype(a.dtype if a.dtype.kind in 'fc' else np.float64)


def _pair(us, outs):
    """<u, y> = Re(sum(u * y)), in double precision, summed over every output."""
    total = 0.0
    for u, y in zip(us, outs):
        y = np.asarray(y)
        total += float(np.sum(np.real(np.asarray(u, dtype=_wide(u)) * y.astype(_wide(y)))))
    return total


def _shift(args, vs, step):
    out = list(args)
    for i, v in vs.items():
        a = np.asarray(args[i])
        out[i] = (a + step * v).astype(a.dtype)
    return out


def _central(s, args, vs, eps):
    """Centred difference of scalar `s` along `vs`, and an estimate of its rounding error."""
    sp, sm = s(_shift(args, vs, eps)), s(_shift(args, vs, -eps))
    dts = [np.asarray(args[i]).dtype for i in vs]
    mach = max(np.finfo(d).eps for d in dts)
    # the outputs carry a relative rounding error of a few machine epsilons; divided by 2 eps
    return (sp - sm) / (2 * eps), 16 * mach * (abs(sp) + abs(sm)) / (2 * eps)


def _fd_gradient(s, args, i, eps):
    """The gradient of scalar `s` in argument i, element by element (JAX convention for complex
    arguments: ds/dre - i ds/dim)."""
    a = np.asarray(args[i])
    out = np.zeros(a.shape, dtype=_wide(a))
    for k in np.ndindex(*a.shape):
        e = np.zeros(a.shape, dtype=a.dtype)
        e[k] = 1
        d, _ = _central(s, args, {i: e}, eps)
        out[k] = d
        if a.dtype.kind == 'c':
            d_im, _ = _central(s, args, {i: 1j * e}, eps)
            out[k] = d - 1j * d_im
    return out


def _fmt(x):
    x = complex(x) if np.iscomplexobj(x) else float(x)
    return f'{x:.10g}'


def _worst(what, expected, got, rtol, atol, source):
    expected = np.asarray(expected)
    got = np.asarray(got) if got is not None else np.zeros_like(expected)
    if got.shape != expected.shape:
        return (f'  {what}: {source} gave shape {got.shape}, expected {expected.shape}')
    got = got.astype(_wide(got))
    err = np.abs(expected - got)
    if err.size == 0:
        return f'  {what}: empty'
    rel = err / np.maximum(np.maximum(np.abs(expected), np.abs(got)), np.finfo(np.float64).tiny)
    # nan errors (a nan derivative) count as the worst of all
    k = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
    idx = tuple(int(j) for j in k)
    return (f'  {what} (shape {expected.shape}): worst element at index {idx}: expected '
            f'{_fmt(expected[k])} (finite differences), got {_fmt(got[k])} ({source}); abs error '
            f'{err[k]:.3g}, rel error {rel[k]:.3g} (rtol={rtol}, atol={atol}); '
            f'{int(np.sum(~(err <= atol + rtol * np.abs(expected))))} of {err.size} elements '
            'outside tolerance')
