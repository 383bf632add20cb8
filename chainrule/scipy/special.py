"""`scipy.special`, differentiable: a table of derivatives of special functions.

What this module lets you do: call SciPy's special functions by their SciPy names, argument
order and defaults (`gammaln(x)`, `betainc(a, b, x)`, `logsumexp(a, axis=None, b=None,
keepdims=False, return_sign=False)`, `iv(v, z)`, ...) on arrays, `Tensor`s and traced values, and
differentiate them to any order under `grad`, `jvp`, `vmap` and `jit`. The primitives' values
come from SciPy itself (`pip install chainrule[scipy]`), so they are SciPy's to the last bit;
`ndtr`, `log_ndtr` and `ndtri` (the normal cdf, its log and its inverse) are here too, for
`chainrule.scipy.stats`.

Why some functions are primitives rather than composites: `betaln` as gammaln(a) + gammaln(b) -
gammaln(a + b) loses 7 digits at a = 1e10 (cancellation), and `logit` as log(p) - log1p(-p)
loses 5 near p = 1/2; SciPy's own functions lose none.

Each line of the table below declares one primitive: its SciPy name and, per argument, the
vector-Jacobian product `vjp(g, ans, *args)` written with chainrule's own ops and the functions of
this module, so derivatives of derivatives work (`digamma`'s rule is `polygamma(1, x)`, whose rule
is `polygamma(2, x)`, ...). All are elementwise, so each rule read with a tangent for `g` is also
the JVP, and `vmap` uses the elementwise batching rule. Where SciPy (or DLMF) gives no closed
formula -- the order `v` of the Bessel functions, `a` and `b` of `betainc`, `a` of `gammainc`,
`n` of `polygamma` -- asking for that derivative raises `MissingRuleError` naming the function
and the argument.

The rest (`logsumexp`, `softmax`, `xlogy`, `entr`, `multigammaln`, ...) are composites with no
derivative code of their own.
"""

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import (ConcretizationError, DTypeError, MissingRuleError, Primitive,
                            ShapeError, Tracer, bind, concrete, dtype_of)
from chainrule.ops.elementwise import batch_elementwise
from chainrule.ops.nn import erf
from chainrule.scipy import require_scipy

__all__ = [
    'gamma', 'gammaln', 'gammasgn', 'rgamma', 'digamma', 'psi', 'polygamma', 'multigammaln',
    'beta', 'betaln', 'betainc', 'gammainc', 'gammaincc', 'erf', 'erfc', 'erfinv', 'erfcinv',
    'ndtr', 'log_ndtr', 'ndtri', 'expit', 'logit', 'logsumexp', 'xlogy', 'xlog1py', 'entr',
    'softmax', 'log_softmax', 'j0', 'j1', 'jn', 'y0', 'y1', 'yn', 'i0', 'i1', 'i0e', 'i1e', 'iv',
    'ive', 'kv',
]

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)
_LOG_PI = math.log(math.pi)

_special = None
_ARRAYS = (np.ndarray, np.generic, int, float, complex)


def _scipy():
    global _special
    if _special is None:
        _special = require_scipy('special')
    return _special


def _float_dtype(args):
    """The floating dtype of a call: NumPy's promotion of the floating arguments (Python
    numbers weak), float64 when every argument is an integer (an order, a count)."""
    kinds = []
    for a in args:
        if type(a) in (float, complex):
            kinds.append(a)
        elif type(a) not in (int, bool) and ops.dtype_of(a).kind in 'fc':
            kinds.append(ops.dtype_of(a))
    return np.result_type(*kinds) if kinds else np.dtype(np.float64)


def _impl(name, fix=None):
    """The NumPy-level implementation: SciPy's function, its result in the arguments' floating
    dtype (SciPy computes `polygamma` and integer-order calls in float64)."""
    def impl(*args):
        args = [a if isinstance(a, _ARRAYS) else np.asarray(a) for a in args]
        if fix is not None:
            args = fix(*args)
        out = getattr(_scipy(), name)(*args)
        dt = _float_dtype(args)
        return out if out.dtype == dt else out.astype(dt)
    impl.__name__ = name
    return impl


def _int_order(n, x):
    # `yn` takes an integer order: integer-valued floats (n - 1 inside a rule) are passed as
    # integers, so SciPy does not warn about truncating them
    n = np.asarray(n)
    if n.dtype.kind == 'f' and np.all(n == np.floor(n)):
        n = n.astype(np.int64)
    return n, x


def _call(prim, *args):
    """Bind `prim` to `args` with NumPy broadcasting: traced arguments are broadcast to the
    common shape and cast to the common floating dtype, so no rule reasons about shapes or
    dtypes (constants stay as they are; SciPy broadcasts them)."""
    if not any(isinstance(a, Tracer) for a in args):
        return prim.impl(*args)
    shapes = [ops.shape_of(a) for a in args]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(f'{prim.name}: argument shapes {", ".join(map(str, shapes))} cannot be '
                         'broadcast together (NumPy broadcasting aligns trailing axes; each set '
                         'of sizes must be equal or 1)') from None
    dt = _float_dtype(args)
    new = []
    for a in args:
        if isinstance(a, Tracer):
            if a.dtype.kind in 'fc' and a.dtype != dt:
                a = ops.astype(a, dt)
            if a.shape != shape:
                a = ops.broadcast_to(a, shape)
        new.append(a)
    return bind(prim, *new)


def _real_sign(name, z):
    """sign(z) for the e^-|z| factor of a scaled Bessel function; for complex z that factor is
    e^-|Re z|, which is not complex-differentiable, so its derivative is refused, not guessed."""
    if np.dtype(dtype_of(z)).kind == 'c':
        raise DTypeError(f'{name}: the derivative for complex z is not available ({name} scales '
                         'by exp(-|Re z|), which is not complex-differentiable); use iv(v, z) * '
                         'exp(-abs(z.real)) written out, or real z')
    return ops.sign(z)


def _no_rule(fn, arg, hint):
    """The VJP of an argument with no derivative formula: a clear error when it is needed."""
    def rule(g, ans, *args):
        raise MissingRuleError(
            f'{fn}: no derivative in its argument {arg!r} ({hint}). Differentiate only in the '
            f'other arguments: pass {arg!r} as a constant (a NumPy array or a Python number), '
            f'or wrap it in chainrule.numpy.stop_gradient.')
    return rule


_PRIMS = {}


def _defprim(name, *vjps, fix=None):
    """Declare SciPy's elementwise function `name` as a primitive with these VJP rules (one per
    argument; `None` throughout for a function with no derivative) and return its wrapper."""
    rules = None if all(r is None for r in vjps) else list(vjps)
    prim = Primitive(name, _impl(name, fix), elementwise=True, vjp=rules,
                     doc=f'scipy.special.{name}')
    prim.batch = batch_elementwise(prim)
    _PRIMS[name] = prim

    def f(*args):
        if len(args) != len(vjps):
            raise TypeError(f'{name}() takes {len(vjps)} positional argument'
                            f'{"s" if len(vjps) > 1 else ""} ({len(args)} given)')
        return _call(prim, *args)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f'`scipy.special.{name}`, differentiable (see the table in this module).'
    return f


_ORDER = 'the derivative in the order has no closed form'
_PARAM = 'the derivative in the parameter has no closed form'


# --- the table: (name, vjp per argument in g, ans = f(*args), args) ------------------------------
# gamma and relatives: (log Gamma)' = digamma, digamma' = polygamma(1, .), and so on up
gamma     = _defprim('gamma',     lambda g, ans, x: g * (ans * digamma(x)))
gammaln   = _defprim('gammaln',   lambda g, ans, x: g * digamma(x))   # log|Gamma|: also x < 0
gammasgn  = _defprim('gammasgn',  None)                               # +-1: piecewise constant
# 1/Gamma has zeros at 0, -1, -2, ... where -ans * digamma is 0 * inf: the limit there is
# (-1)^n n! = cos(pi x) Gamma(1 - x)
rgamma    = _defprim('rgamma',    lambda g, ans, x: g * _rgamma_deriv(ans, x))
digamma   = _defprim('digamma',   lambda g, ans, x: g * polygamma(1, x))
polygamma = _defprim('polygamma', _no_rule('polygamma', 'n', 'an integer order'),
                                  lambda g, ans, n, x: g * polygamma(n + 1, x))
# beta functions: d/da log B(a, b) = digamma(a) - digamma(a + b)
beta      = _defprim('beta',      lambda g, ans, a, b: g * (ans * (digamma(a) - digamma(a + b))),
                                  lambda g, ans, a, b: g * (ans * (digamma(b) - digamma(a + b))))
betaln    = _defprim('betaln',    lambda g, ans, a, b: g * (digamma(a) - digamma(a + b)),
                                  lambda g, ans, a, b: g * (digamma(b) - digamma(a + b)))
# regularized incomplete beta/gamma: in x the integrand (DLMF 8.17.1, 8.2.1); in a, b none
betainc   = _defprim('betainc',   _no_rule('betainc', 'a', _PARAM),
                                  _no_rule('betainc', 'b', _PARAM),
                                  lambda g, ans, a, b, x: g * _beta_density(a, b, x))
gammainc  = _defprim('gammainc',  _no_rule('gammainc', 'a', _PARAM),
                                  lambda g, ans, a, x: g * _gamma_density(a, x))
gammaincc = _defprim('gammaincc', _no_rule('gammaincc', 'a', _PARAM),
                                  lambda g, ans, a, x: -g * _gamma_density(a, x))
# error functions (erf itself is chainrule.ops.nn's primitive); the inverses by 1/f'(f^-1(y))
erfc      = _defprim('erfc',      lambda g, ans, x: g * (ops.exp(-(x * x)) * (-2 / _SQRT_PI)))
erfinv    = _defprim('erfinv',    lambda g, ans, x: g * (ops.exp(ans * ans) * (_SQRT_PI / 2)))
erfcinv   = _defprim('erfcinv',   lambda g, ans, x: g * (ops.exp(ans * ans) * (-_SQRT_PI / 2)))
ndtr      = _defprim('ndtr',      lambda g, ans, x: g * (ops.exp(x * x * -0.5) / _SQRT_2PI))
# log Phi: phi / Phi = exp(-x^2/2 - log Phi), accurate in the far left tail (about -x)
log_ndtr  = _defprim('log_ndtr',  lambda g, ans, x: g * (ops.exp(x * x * -0.5 - ans) / _SQRT_2PI))
ndtri     = _defprim('ndtri',     lambda g, ans, x: g * (ops.exp(ans * ans * 0.5) * _SQRT_2PI))
# expit' = expit(x) expit(-x), not ans (1 - ans): 1 - ans is 0 once ans rounds to 1 (x > 37)
expit     = _defprim('expit',     lambda g, ans, x: g * (ans * expit(-x)))
logit     = _defprim('logit',     lambda g, ans, x: g / (x * (1 - x)))
# Bessel functions (DLMF 10.6.1, 10.29.1, 10.29.2): J' = (J_{n-1} - J_{n+1}) / 2, J_0' = -J_1,
# I' = (I_{v-1} + I_{v+1}) / 2, K' = -(K_{v-1} + K_{v+1}) / 2; the scaled ive = iv e^-|z| adds
# -sign(z) ive
j0        = _defprim('j0',        lambda g, ans, x: -g * j1(x))
j1        = _defprim('j1',        lambda g, ans, x: g * ((j0(x) - jn(2, x)) * 0.5))
jn        = _defprim('jn',        _no_rule('jn', 'n', _ORDER),
                                  lambda g, ans, n, x: g * ((jn(n - 1, x) - jn(n + 1, x)) * 0.5))
y0        = _defprim('y0',        lambda g, ans, x: -g * y1(x))
y1        = _defprim('y1',        lambda g, ans, x: g * ((y0(x) - yn(2, x)) * 0.5))
yn        = _defprim('yn',        _no_rule('yn', 'n', _ORDER),
                                  lambda g, ans, n, x: g * ((yn(n - 1, x) - yn(n + 1, x)) * 0.5),
                                  fix=_int_order)
i0        = _defprim('i0',        lambda g, ans, x: g * i1(x))
i1        = _defprim('i1',        lambda g, ans, x: g * ((i0(x) + iv(2, x)) * 0.5))
i0e       = _defprim('i0e',       lambda g, ans, x: g * (i1e(x) - ops.sign(x) * ans))
i1e       = _defprim('i1e',       lambda g, ans, x: g * ((i0e(x) + ive(2, x)) * 0.5
                                                        - ops.sign(x) * ans))
iv        = _defprim('iv',        _no_rule('iv', 'v', _ORDER),
                                  lambda g, ans, v, z: g * ((iv(v - 1, z) + iv(v + 1, z)) * 0.5))
ive       = _defprim('ive',       _no_rule('ive', 'v', _ORDER),
                                  lambda g, ans, v, z: g * ((ive(v - 1, z) + ive(v + 1, z)) * 0.5
                                                            - _real_sign('ive', z) * ans))
kv        = _defprim('kv',        _no_rule('kv', 'v', _ORDER),
                                  lambda g, ans, v, z: g * ((kv(v - 1, z) + kv(v + 1, z)) * -0.5))

psi = digamma

# the primitives themselves as module attributes, `gamma_p`, `jn_p`, ..., as in chainrule.ops
globals().update({f'{n}_p': p for n, p in _PRIMS.items()})


def _rgamma_deriv(ans, x):
    pole = ops.logical_and(ops.less_equal(x, 0), ops.equal(x, ops.floor(x)))
    # each branch sees a safe argument, so neither puts a nan into the other's derivative
    at_pole = ops.where(pole, x, 0.5)
    away = ops.where(pole, 0.5, x)
    return ops.where(pole, ops.cos(at_pole * math.pi) * gamma(1 - at_pole),
                     -(ans * digamma(away)))


def _beta_density(a, b, x):
    # x^(a-1) (1-x)^(b-1) / B(a, b), in logs; xlogy/xlog1py make a = 1 and b = 1 exact at the ends
    return ops.exp(xlogy(a - 1, x) + xlog1py(b - 1, -x) - betaln(a, b))


def _gamma_density(a, x):
    # x^(a-1) e^-x / Gamma(a)
    return ops.exp(xlogy(a - 1, x) - x - gammaln(a))


# --- composites -------------------------------------------------------------------------------

def _fixed_zero_log(x, y, log, bad):
    """`x * log(y)`, 0 where x = 0 (SciPy's convention, also for y = 0 or inf) unless y is nan.
    Where x = 0 and y is fine, y is kept, so the derivative in x is still log(y)."""
    x, y = cnp.asarray(x), cnp.asarray(y)
    drop = cnp.logical_and(cnp.equal(x, 0), bad(y))
    return x * log(cnp.where(drop, 1, y))


def xlogy(x, y):
    """`x * log(y)`, 0 where `x == 0` (unless `y` is nan), as `scipy.special.xlogy`."""
    return _fixed_zero_log(x, y, cnp.log,
                           lambda y: cnp.logical_or(cnp.less_equal(y, 0), cnp.isinf(y)))


def xlog1py(x, y):
    """`x * log1p(y)`, 0 where `x == 0` (unless `y` is nan), as `scipy.special.xlog1py`."""
    return _fixed_zero_log(x, y, cnp.log1p,
                           lambda y: cnp.logical_or(cnp.less_equal(y, -1), cnp.isinf(y)))


def entr(x):
    """`-x log(x)` for `x > 0`, 0 at 0, `-inf` for `x < 0`, as `scipy.special.entr`."""
    x = cnp.asarray(x)
    pos = cnp.greater(x, 0)
    return cnp.where(cnp.less(x, 0), -np.inf, -x * cnp.log(cnp.where(pos, x, 1)))


def multigammaln(a, d):
    """The log of the multivariate gamma function of dimension `d`,
    `d (d-1)/4 log(pi) + sum_{j<d} gammaln(a - j/2)`, as `scipy.special.multigammaln`."""
    if np.ndim(d) != 0 or d != np.floor(d) or d < 1:
        raise ValueError(f'multigammaln: the dimension d must be a positive integer, got {d!r}')
    d = int(d)
    a = cnp.asarray(a)
    try:
        low = np.asarray(concrete(a))
        if np.any(low <= (d - 1) / 2):
            raise ValueError(f'multigammaln: every a must be greater than (d - 1)/2 = '
                             f'{(d - 1) / 2} for d = {d}')
    except ConcretizationError:
        pass     # inside jit the values are not known: nothing to check
    half = np.arange(d, dtype=_float_dtype([a])) / 2      # in a's precision (float32 stays)
    terms = gammaln(cnp.expand_dims(a, -1) - half)
    return cnp.sum(terms, axis=-1) + d * (d - 1) / 4 * _LOG_PI


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """`log(sum(b * exp(a)))` over `axis`, without overflow, as `scipy.special.logsumexp`.

    Args:
        a: the exponents.
        axis: an axis or a tuple of axes to sum over (`None`: all).
        b: optional weights, broadcast with `a`; terms with `b == 0` drop out, even where `a`
            is infinite. Differentiable in `b` too.
        keepdims: keep the summed axes with size 1.
        return_sign: also return the sign of the sum (then the first result is `log|sum|`);
            without it a negative sum gives nan, as in SciPy.

    Returns:
        The result, or `(result, sign)` with `return_sign=True`.
    """
    a = cnp.asarray(a)
    if b is not None:
        a, b = cnp.broadcast_arrays(a, cnp.asarray(b))
        zero = cnp.equal(b, 0)
        top = cnp.where(zero, -np.inf, a)
    else:
        top = a
    m = ops.stop_gradient(cnp.max(top, axis=axis, keepdims=True))
    m = cnp.where(cnp.isfinite(m), m, 0)
    shifted = a - m
    if b is not None:
        # a weight-0 term may have a - m > 0 (it was left out of the max): keep exp finite there
        # (0 * inf would be nan), without changing its derivative in b, e^(a - m), elsewhere
        shifted = cnp.where(zero, cnp.minimum(shifted, 700.0), shifted)
        terms = b * cnp.exp(shifted)
    else:
        terms = cnp.exp(shifted)
    s = cnp.sum(terms, axis=axis, keepdims=True)
    if return_sign:
        sign = cnp.sign(s)
        s = cnp.abs(s)
    out = cnp.log(s) + m
    if not keepdims:
        axes = ops.normalize_axis(axis, len(ops.shape_of(a)))
        out = cnp.squeeze(out, axis=axes)
        if return_sign:
            sign = cnp.squeeze(sign, axis=axes)
    return (out, sign) if return_sign else out


def log_softmax(x, axis=None):
    """`x - logsumexp(x, axis)`, as `scipy.special.log_softmax` (`axis=None`: over all)."""
    x = cnp.asarray(x)
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=None):
    """`exp(x) / sum(exp(x))` over `axis`, as `scipy.special.softmax` (`axis=None`: over all)."""
    return cnp.exp(log_softmax(x, axis=axis))


def primitives():
    """The primitives this module declares, by name (for tests and the coverage table)."""
    return dict(_PRIMS)
