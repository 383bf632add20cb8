"""Elementwise primitives: a table of derivatives.

Each line declares one primitive: its name, its NumPy implementation and, per argument, the
vector-Jacobian product `vjp(g, ans, *args)` written in chainrule's own ops (so derivatives of
derivatives work). Elementwise rules are multiplication by the local derivative, so the same
rule, read with a tangent in place of `g`, is the JVP (`elementwise=True`). The arguments of a
binary primitive always have one shape: the wrappers at the bottom insert `broadcast_to` (whose
VJP sums back to the original shape) and dtype conversions before binding, so no rule here
reasons about shapes or dtypes.

Complex numbers follow JAX's convention: a rule is the transpose of the derivative, with no
conjugation (`vjp` of `x * y` in `x` is `g * y`); `grad` of a real function of `z` is then the
conjugate of PyTorch's, e.g. `grad(lambda z: abs(z)**2)(1+2j) == 2-4j`.
"""

import numpy as np

from chainrule import core as _core, ops
from chainrule.core import (DTypeError, Primitive, ShapeError, Tracer, bind, pass_cotangent,
                            times_first, times_second)

# Python floats, not np.float64 scalars: NumPy 2 treats those as strong and would promote a
# float32 cotangent to float64
_LOG2 = float(np.log(2.0))
_LOG10 = float(np.log(10.0))


def batch_elementwise(prim):
    """The `vmap` rule of an elementwise primitive (one rule for the whole family).

    Batched arguments arrive with the batch axis first, `(B,) + shape`. Per-example shapes may
    differ in rank (a constant operand, `where`'s condition), so batched arguments get unit
    axes after the batch axis; traced arguments are then broadcast to the full output shape
    explicitly, so that a lower-level transform (reverse mode under `vmap`) sees one shape,
    as every elementwise rule assumes.
    """
    def rule(args, dims, **params):
        size = next(ops.shape_of(a)[0] for a, d in zip(args, dims) if d is not None)
        per = [ops.shape_of(a)[1:] if d is not None else ops.shape_of(a)
               for a, d in zip(args, dims)]
        full = (size,) + np.broadcast_shapes(*per)
        new = []
        for a, d, s in zip(args, dims, per):
            if d is not None and len(s) < len(full) - 1:
                a = ops.reshape(a, (size,) + (1,) * (len(full) - 1 - len(s)) + s)
            if isinstance(a, Tracer) and ops.shape_of(a) != full:
                a = broadcast_to(a, full)
            new.append(a)
        return bind(prim, *new, **params), 0
    return rule


def _elementwise(name, impl, **kw):
    prim = Primitive(name, impl, elementwise=True, **kw)
    if prim.batch is None:
        prim.batch = batch_elementwise(prim)
    return prim


def unary(name, impl, rule, **kw):
    return _elementwise(name, impl, vjp=[rule], **kw)


def binary(name, impl, rule_x, rule_y, **kw):
    return _elementwise(name, impl, vjp=[rule_x, rule_y], **kw)


def nondiff(name, impl):
    """An elementwise op with zero derivative everywhere it has one (`floor`, comparisons):
    its outputs are constants to every transform."""
    return _elementwise(name, impl, vjp=None)


# --- unary: (name, impl, vjp in g, ans = f(x), x) ------------------------------------------------
neg_p     = unary('neg',     np.negative, lambda g, ans, x: neg(g), linear=True)
exp_p     = unary('exp',     np.exp,      lambda g, ans, x: g * ans)
exp2_p    = unary('exp2',    np.exp2,     lambda g, ans, x: g * ans * _LOG2)
# expm1: exp(x), not ans + 1, which is 0 for x < -37 (ans rounds to -1) instead of e^x
expm1_p   = unary('expm1',   np.expm1,    lambda g, ans, x: g * exp(x))
log_p     = unary('log',     np.log,      lambda g, ans, x: g / x)
log2_p    = unary('log2',    np.log2,     lambda g, ans, x: g / (x * _LOG2))
log10_p   = unary('log10',   np.log10,    lambda g, ans, x: g / (x * _LOG10))
log1p_p   = unary('log1p',   np.log1p,    lambda g, ans, x: g / (x + 1))
sin_p     = unary('sin',     np.sin,      lambda g, ans, x: g * cos(x))
cos_p     = unary('cos',     np.cos,      lambda g, ans, x: -g * sin(x))
tan_p     = unary('tan',     np.tan,      lambda g, ans, x: g * (ans * ans + 1))
# arcsin, arccos, arctanh: (1 - x)(1 + x), not 1 - x*x, which rounds x*x and loses half the
# digits near |x| = 1 (rel. error 1e-9 at 1 - 1e-8)
arcsin_p  = unary('arcsin',  np.arcsin,   lambda g, ans, x: g / sqrt((1 - x) * (1 + x)))
arccos_p  = unary('arccos',  np.arccos,   lambda g, ans, x: -g / sqrt((1 - x) * (1 + x)))
arctan_p  = unary('arctan',  np.arctan,   lambda g, ans, x: g / (x * x + 1))
sinh_p    = unary('sinh',    np.sinh,     lambda g, ans, x: g * cosh(x))
cosh_p    = unary('cosh',    np.cosh,     lambda g, ans, x: g * sinh(x))
# tanh: 1/cosh(x)^2, not 1 - ans^2: ans rounds to 1 for x > 19 (the derivative 4e^-2x was 0)
tanh_p    = unary('tanh',    np.tanh,     lambda g, ans, x: g * _sech2(x))
arcsinh_p = unary('arcsinh', np.arcsinh,  lambda g, ans, x: g * _arcsinh_deriv(x))
# arccosh: 1/(sqrt(x-1) sqrt(x+1)), not 1/sqrt(x^2-1): the two differ in sign for complex x with
# Re x < 0 (NumPy's branch of arccosh follows the product form)
arccosh_p = unary('arccosh', np.arccosh,
                  lambda g, ans, x: g / (sqrt(x - 1) * sqrt(x + 1)))
arctanh_p = unary('arctanh', np.arctanh,  lambda g, ans, x: g / ((1 - x) * (1 + x)))
sqrt_p    = unary('sqrt',    np.sqrt,     lambda g, ans, x: g / (ans * 2))
cbrt_p    = unary('cbrt',    np.cbrt,     lambda g, ans, x: g / (ans * ans * 3))
abs_p     = unary('abs',     np.abs,      lambda g, ans, x: _abs_vjp(g, ans, x),
                  jvp=[lambda t, ans, x: _abs_jvp(t, ans, x)])
conj_p    = unary('conj',    np.conjugate, lambda g, ans, x: conj(g), linear=True)
real_p    = unary('real',    np.real,     lambda g, ans, x: _like_input(g, x), linear=True)
imag_p    = unary('imag',    np.imag,     lambda g, ans, x: _imag_vjp(g, x), linear=True)


def _sech2(x):
    s = 1 / cosh(x)     # squared after the division: cosh(x)^2 overflows for |x| > 355
    return s * s


def _arcsinh_deriv(x):
    # 1/sqrt(x^2 + 1), but x^2 overflows for |x| > sqrt(max) (1e154 in float64): there (real x)
    # it is 1/|x| to working precision. Each branch gets a safe input, so neither puts a nan
    # into the other's gradient.
    dt = ops.dtype_of(x)
    if not np.issubdtype(dt, np.floating):
        return 1 / sqrt(x * x + 1)
    big = abs(x) > float(np.finfo(dt).max) ** 0.5 / 4
    small = where(big, 0, x)
    return where(big, 1 / abs(where(big, x, 1)), 1 / sqrt(small * small + 1))


def _abs_jvp(t, ans, x):
    # d|z| = Re(conj(z) dz) / |z| for complex z (zero at 0): real, unlike the VJP's cotangent
    if np.issubdtype(ops.dtype_of(x), np.complexfloating):
        safe = where(ans == 0, 1, ans)
        return where(ans == 0, 0, real(conj(x) * t) / safe)
    return t * sign(x)


def _abs_vjp(g, ans, x):
    # real x: g * sign(x) (zero at 0, as NumPy's sign); complex x: g * conj(x) / |x|, the
    # transpose of d|z| = Re(conj(z) dz) / |z| (JAX's convention), zero at 0.
    if np.issubdtype(ops.dtype_of(x), np.complexfloating):
        safe = where(ans == 0, 1, ans)
        return where(ans == 0, 0, g / safe) * conj(x)
    return g * sign(x)


def _like_input(g, x):
    """Cotangent `g` of a real output, as the cotangent of a (possibly complex) input `x`."""
    if np.issubdtype(ops.dtype_of(x), np.complexfloating):
        return astype(g, ops.dtype_of(x))
    return g


def _imag_vjp(g, x):
    if np.issubdtype(ops.dtype_of(x), np.complexfloating):
        return astype(g, ops.dtype_of(x)) * (-1j)
    return g * 0


# --- binary: (name, impl, vjp in x, vjp in y) ------------------------------------------------------
add_p      = binary('add',      np.add,      pass_cotangent,
                                             pass_cotangent, linear=True)
sub_p      = binary('sub',      np.subtract, pass_cotangent,
                                             lambda g, ans, x, y: neg(g), linear=True)
mul_p      = binary('mul',      np.multiply, times_second,                  # g * y
                                             times_first)                   # g * x
div_p      = binary('div',      np.true_divide, lambda g, ans, x, y: g / y,
                                             lambda g, ans, x, y: g * (neg(ans) / y))
pow_p      = binary('pow',      np.power,    lambda g, ans, x, y: _pow_vjp_x(g, ans, x, y),
                                             lambda g, ans, x, y: g * (ans * _safe_log(x)))
maximum_p  = binary('maximum',  np.maximum,  lambda g, ans, x, y: g * _select_weight(x, y),
                                             lambda g, ans, x, y: g * _select_weight(y, x))
minimum_p  = binary('minimum',  np.minimum,  lambda g, ans, x, y: g * _select_weight(y, x),
                                             lambda g, ans, x, y: g * _select_weight(x, y))
arctan2_p  = binary('arctan2',  np.arctan2,  lambda g, ans, x, y: g * y / (x * x + y * y),
                                             lambda g, ans, x, y: neg(g) * x / (x * x + y * y))


def _pow_vjp_x(g, ans, x, y):
    # d/dx x**y = y * x**(y-1); written without dividing by x so x = 0 works for y >= 1.
    # The local derivative is formed first: under vmap (jacobians) g is a whole batch of
    # cotangents, and g * (y * ...) multiplies the batch once instead of twice.
    # At y = 0 the derivative is 0 (x**0 = 1 everywhere), not 0 * 0**-1 = nan at x = 0, as in
    # JAX and PyTorch: there the exponent y - 1 is replaced by 1, and y * x**1 = 0. The select
    # is skipped when y is a known nonzero constant (x**2, x**0.5).
    ym1 = y - 1
    if isinstance(y, Tracer) or (y == 0 if isinstance(y, (int, float)) else np.any(y == 0)):
        ym1 = where(y == 0, 1, ym1)
    return g * (y * x ** ym1)


def _safe_log(x):
    # d/dy x**y = x**y log x; at x = 0 the product is 0 (x**y = 0 for y > 0), not nan
    if type(x) in (int, float, complex):
        # a Python-number base (2.0 ** t): its log stays a Python number, weak as the base
        # was, so a float32 t keeps a float32 derivative (np.log(2.0) would be a float64)
        return 0.0 if x == 0 else complex(np.log(x)) if type(x) is complex else float(np.log(x))
    zero = x == 0
    return where(zero, 0, log(where(zero, 1, x)))


def _select_weight(x, y):
    """1 where x wins, 0 where it loses, 1/2 at ties (the gradient is split, as JAX and
    PyTorch do). In the dtype both give: a Python-number constant (`minimum(2.0, t)`) is weak,
    and takes t's dtype, as in the forward pass."""
    dt = np.result_type(*[v if _is_weak_scalar(v) else ops.dtype_of(v) for v in (x, y)])
    return astype(greater(x, y), dt) + astype(equal(x, y), dt) * 0.5


# --- not differentiable: outputs are constants --------------------------------------------------
sign_p          = nondiff('sign', np.sign)
floor_p         = nondiff('floor', np.floor)
ceil_p          = nondiff('ceil', np.ceil)
trunc_p         = nondiff('trunc', np.trunc)
rint_p          = nondiff('rint', np.rint)
round_p         = nondiff('round', lambda x, *, decimals=0: np.round(x, decimals))
equal_p         = nondiff('equal', np.equal)
not_equal_p     = nondiff('not_equal', np.not_equal)
less_p          = nondiff('less', np.less)
less_equal_p    = nondiff('less_equal', np.less_equal)
greater_p       = nondiff('greater', np.greater)
greater_equal_p = nondiff('greater_equal', np.greater_equal)
logical_and_p   = nondiff('logical_and', np.logical_and)
logical_or_p    = nondiff('logical_or', np.logical_or)
logical_xor_p   = nondiff('logical_xor', np.logical_xor)
logical_not_p   = nondiff('logical_not', np.logical_not)
bitwise_and_p   = nondiff('bitwise_and', np.bitwise_and)   # & | ^ ~ on integers and booleans
bitwise_or_p    = nondiff('bitwise_or', np.bitwise_or)
bitwise_xor_p   = nondiff('bitwise_xor', np.bitwise_xor)
invert_p        = nondiff('invert', np.invert)
isnan_p         = nondiff('isnan', np.isnan)
isinf_p         = nondiff('isinf', np.isinf)
isfinite_p      = nondiff('isfinite', np.isfinite)
floor_divide_p  = nondiff('floor_divide', np.floor_divide)
stop_gradient_p = _elementwise('stop_gradient', lambda x: x, vjp=None)

# `mod` (x - floor(x / y) * y) has derivative 1 in x and -floor(x / y) in y.
mod_p = binary('mod', np.mod, pass_cotangent,
               lambda g, ans, x, y: neg(g) * floor_divide(x, y))


# --- where: select by a constant condition ---------------------------------------------------------
where_p = Primitive(
    'where', np.where,
    vjp=[None,
         lambda g, ans, c, x, y: where(c, g, 0),
         lambda g, ans, c, x, y: where(c, 0, g)],
    jvp=[None, lambda t, ans, c, x, y: where(c, t, 0), lambda t, ans, c, x, y: where(c, 0, t)],
    batch=lambda args, dims: batch_elementwise(where_p)(args, dims),
)


# --- wrappers: broadcasting and dtype promotion happen here, before the primitive ----------------

_SCALARS = (int, float, bool, complex)
_INT_FLOAT = (int, float)
_WEAK = {'b': False, 'i': 0, 'u': 0, 'f': 0.0, 'c': 0j}   # a Python number of each kind


def _is_weak_scalar(v):
    """A Python number: NumPy 2 treats it as 'weak' (it takes the array's dtype)."""
    return type(v) in (int, float, bool)


def _result_type(prim, a, b):
    other, dt = (b, a) if isinstance(a, np.dtype) else (a, b)
    # (NumPy reads a str as a dtype name, `None` as float64, and makes text or object arrays;
    # `t == None` keeps NumPy's elementwise answer)
    if prim.name in ('equal', 'not_equal') or (other is not None and
                                               not isinstance(other, (str, bytes))):
        try:
            r = np.result_type(a, b)
            if r.kind not in 'OSUV':
                return r
        except TypeError:
            pass
    raise DTypeError(
        f'{prim.name}: cannot combine an array of dtype {dt} (a Tensor or traced value) with '
        f'a {type(other).__name__} ({other!r:.40}); the other operand must be an array, a '
        'number or a Tensor (a micrograd-style Value holds its number in .data)') from None


def _binary(prim, x, y):
    tx = isinstance(x, Tracer)
    ty = isinstance(y, Tracer)
    # the most common case first: a floating tracer and a Python int or float (t * 2.0), which
    # needs neither broadcasting nor promotion
    if tx and type(y) in _INT_FLOAT and x.dtype.kind in 'fc':
        return bind(prim, x, y)
    if ty and type(x) in _INT_FLOAT and y.dtype.kind in 'fc':
        return bind(prim, x, y)
    if not (tx or ty):
        if _core._eager_hook is not None:          # a diagnostic mode checks every result
            return bind(prim, x, y)
        try:
            return prim.impl(x, y)
        except ValueError as e:
            sx, sy = np.shape(x), np.shape(y)
            if sx != sy:
                raise ShapeError(f'{prim.name}: shapes {sx} and {sy} cannot be broadcast '
                                 'together') from e
            raise
    # a tracer standing for a Python number (a jit argument) promotes as the number would
    wx, wy = (getattr(x, 'weak', False), getattr(y, 'weak', False)) if tx and ty else (0, 0)
    sx = x.shape if tx else (() if type(x) in _SCALARS else np.shape(x))
    sy = y.shape if ty else (() if type(y) in _SCALARS else np.shape(y))
    if sx != sy and (tx and ty or (sy if tx else sx)):   # a constant scalar needs no broadcast
        try:
            s = np.broadcast_shapes(sx, sy)
        except ValueError:
            raise ShapeError(
                f'{prim.name}: shapes {sx} and {sy} cannot be broadcast together (NumPy '
                'broadcasting aligns trailing axes; each pair of sizes must be equal or 1). '
                'Reshape or expand_dims one argument.') from None
        if tx and sx != s:
            x = broadcast_to(x, s)
        if ty and sy != s:
            y = broadcast_to(y, s)
    # dtype promotion as NumPy does it, made explicit for traced arguments so their
    # cotangents come back in their own dtype (float32 stays float32, real stays real)
    dx = x.dtype if tx else None
    dy = y.dtype if ty else None
    if tx and ty:
        if dx != dy:
            r = np.result_type(_WEAK.get(dx.kind, dx) if wx and not wy else dx,
                               _WEAK.get(dy.kind, dy) if wy and not wx else dy)
            if dx != r:
                x = astype(x, r)
            if dy != r:
                y = astype(y, r)
    elif tx:
        if not (_is_weak_scalar(y) and dx.kind in 'fc'):
            r = _result_type(prim, dx, y)
            if dx != r:
                x = astype(x, r)
    else:
        if not (_is_weak_scalar(x) and dy.kind in 'fc'):
            r = _result_type(prim, x, dy)
            if dy != r:
                y = astype(y, r)
    return bind(prim, x, y)


def _binary_fn(prim):
    def f(x, y):
        return _binary(prim, x, y)
    f.__name__ = prim.name
    f.__doc__ = f'Elementwise `{prim.name}` with NumPy broadcasting and dtype promotion.'
    return f


def _unary_fn(prim):
    def f(x):
        return bind(prim, x)
    f.__name__ = prim.name
    return f


neg, exp, exp2, expm1, log, log2, log10, log1p = map(
    _unary_fn, (neg_p, exp_p, exp2_p, expm1_p, log_p, log2_p, log10_p, log1p_p))
sin, cos, tan, arcsin, arccos, arctan = map(
    _unary_fn, (sin_p, cos_p, tan_p, arcsin_p, arccos_p, arctan_p))
sinh, cosh, tanh, arcsinh, arccosh, arctanh = map(
    _unary_fn, (sinh_p, cosh_p, tanh_p, arcsinh_p, arccosh_p, arctanh_p))
sqrt, cbrt, abs, conj, real, imag = map(
    _unary_fn, (sqrt_p, cbrt_p, abs_p, conj_p, real_p, imag_p))
_real_sign, floor, ceil, trunc, rint, isnan, isinf, isfinite, logical_not, stop_gradient = map(
    _unary_fn, (sign_p, floor_p, ceil_p, trunc_p, rint_p, isnan_p, isinf_p, isfinite_p,
                logical_not_p, stop_gradient_p))
add, sub, mul, div, power, maximum, minimum, arctan2, mod = map(
    _binary_fn, (add_p, sub_p, mul_p, div_p, pow_p, maximum_p, minimum_p, arctan2_p, mod_p))
equal, not_equal, less, less_equal, greater, greater_equal = map(
    _binary_fn, (equal_p, not_equal_p, less_p, less_equal_p, greater_p, greater_equal_p))
logical_and, logical_or, logical_xor, floor_divide = map(
    _binary_fn, (logical_and_p, logical_or_p, logical_xor_p, floor_divide_p))
bitwise_and, bitwise_or, bitwise_xor = map(_binary_fn, (bitwise_and_p, bitwise_or_p, bitwise_xor_p))
invert = _unary_fn(invert_p)


def round(x, decimals=0):
    return bind(round_p, x, decimals=decimals)


def sign(x):
    """NumPy's `sign`: -1, 0 or 1 for real `x` (derivative 0); `z / |z|` (0 at 0) for complex
    `z` (NumPy 2), which is differentiable away from 0 and is differentiated as that formula."""
    if np.issubdtype(ops.dtype_of(x), np.complexfloating):
        a = abs(x)
        zero = equal(a, 0)
        return where(zero, 0, div(x, where(zero, 1, a)))     # the inner where: no 0/0 at 0
    return _real_sign(x)


def where(condition, x, y):
    """`np.where(condition, x, y)`: differentiable in `x` and `y`, with broadcasting."""
    if not (isinstance(condition, Tracer) or isinstance(x, Tracer) or isinstance(y, Tracer)):
        return np.where(condition, x, y)
    sc, sx, sy = ops.shape_of(condition), ops.shape_of(x), ops.shape_of(y)
    try:
        s = np.broadcast_shapes(sc, sx, sy)
    except ValueError:
        raise ShapeError(f'where: shapes {sc} (condition), {sx} and {sy} cannot be broadcast '
                         'together') from None
    dt = np.result_type(*[v.dtype if isinstance(v, Tracer) else v for v in (x, y)])
    if isinstance(x, Tracer):
        x = astype(broadcast_to(x, s), dt) if (sx != s or x.dtype != dt) else x
    else:
        x = np.broadcast_to(np.asarray(x, dt), s)
    if isinstance(y, Tracer):
        y = astype(broadcast_to(y, s), dt) if (sy != s or y.dtype != dt) else y
    else:
        y = np.broadcast_to(np.asarray(y, dt), s)
    return bind(where_p, condition, x, y)


def broadcast_to(x, shape):
    return ops.broadcast_to(x, shape)


def astype(x, dtype):
    return ops.astype(x, dtype)
