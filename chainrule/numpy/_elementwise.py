"""`chainrule.numpy`'s elementwise functions: NumPy's ufunc names bound to the primitives of
`chainrule.ops`, and the elementwise composites (`square`, `logaddexp`, `clip`, `isclose`, ...)."""

import numpy as _np

from chainrule import ops
from chainrule.core import dtype_of, shape_of, Tracer
from chainrule.ops import (  # noqa: F401  (re-exported: these are NumPy's names already)
    abs, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cbrt, ceil, conj, cos, cosh,
    equal, exp, exp2, expm1, floor, floor_divide, greater, greater_equal, imag, isfinite, isinf,
    isnan, less, less_equal, log, log1p, log2, log10, logical_and, logical_not, logical_or,
    logical_xor, matmul, maximum, minimum, mod, not_equal, real, rint, sign, sin, sinh, sqrt,
    stop_gradient, tan, tanh, trunc)
from numpy import nan, pi

add = ops.add
subtract = ops.sub
multiply = ops.mul
divide = true_divide = ops.div
power = ops.power
negative = ops.neg
absolute = abs
remainder = ops.mod
conjugate = conj
fix = trunc
bitwise_and, bitwise_or, bitwise_xor, invert = (ops.bitwise_and, ops.bitwise_or, ops.bitwise_xor,
                                                ops.invert)
bitwise_not = bitwise_invert = invert


def where(condition, x=None, y=None):
    """`np.where(condition, x, y)`, differentiable in `x` and `y`; with `condition` alone, the
    indices where it holds (`np.nonzero`), as in NumPy."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError('where: either both or neither of x and y should be given')
    return ops.where(condition, x, y)


def fabs(x):
    """`np.fabs`: the absolute value of a real array, as floats."""
    if not isinstance(x, Tracer):
        return _np.fabs(x)
    if dtype_of(x).kind == 'c':
        raise TypeError('fabs: complex input is not supported (use abs)')
    return abs(_float(x))


def real_if_close(a, tol=100):
    """`np.real_if_close`: the real part when every imaginary part is within `tol` machine
    epsilons of zero (decided on the values, so not under `jit`)."""
    if dtype_of(a).kind != 'c':
        return a
    t = tol * _np.finfo(dtype_of(a)).eps if tol > 1 else tol
    v = _concrete_for('real_if_close', 'whether its result is real or complex depends on the '
                      'values (use cnp.real if the imaginary parts are known to be negligible)', a)
    return real(a) if _np.all(_np.abs(_np.imag(v)) < t) else a


def positive(x):
    return x


def square(x):
    return x * x


def reciprocal(x):
    if not isinstance(x, Tracer):
        return _np.reciprocal(x)
    if dtype_of(x).kind in 'fc':
        return 1 / x
    # integers, as NumPy: 1/1 = 1, 1/-1 = -1, and 0 for every other value (integer division)
    return where(equal(abs(x), 1), x, 0)


def logaddexp(x, y):
    """log(exp(x) + exp(y)) without overflow."""
    m = ops.stop_gradient(ops.maximum(x, y))
    m = where(isfinite(m), m, 0)
    return m + log(exp(x - m) + exp(y - m))


def logaddexp2(x, y):
    m = ops.stop_gradient(ops.maximum(x, y))
    m = where(isfinite(m), m, 0)
    return m + log2(exp2(x - m) + exp2(y - m))


def hypot(x, y):
    return sqrt(x * x + y * y)


def sinc(x):
    """sin(pi x) / (pi x), 1 at 0 (with a gradient of 0 there)."""
    zero = equal(x, 0)
    safe = where(zero, 1.0, x)
    return where(zero, 1.0, sin(pi * safe) / (pi * safe))


def fmax(x, y):
    """Maximum that ignores NaNs."""
    # logical_or, not |: with y a plain array, `ndarray | Tensor` would ask NumPy's bitwise_or
    return where(logical_or(isnan(y), greater_equal(x, y)), x, y)


def fmin(x, y):
    return where(logical_or(isnan(y), less_equal(x, y)), x, y)


def clip(a, a_min=None, a_max=None, *, min=None, max=None):
    """`np.clip`: gradient 1 inside [a_min, a_max] (bounds included, as PyTorch), 0 outside.
    `min=`/`max=` are NumPy 2's names for the bounds."""
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    out = a
    if a_min is not None:
        out = where(less(a, a_min), a_min, out)
    if a_max is not None:       # compared after the lower bound: a_max wins if a_min > a_max
        out = where(greater(out, a_max), a_max, out)
    return out


def round(a, decimals=0):
    return ops.round(a, decimals)


around = round


def angle(z, deg=False):
    out = arctan2(imag(z), real(z))
    return out * (180 / pi) if deg else out


def deg2rad(x):
    return x * (pi / 180)


def rad2deg(x):
    return x * (180 / pi)


radians, degrees = deg2rad, rad2deg


def heaviside(x, h0):
    return where(less(x, 0), 0.0, where(greater(x, 0), 1.0, h0))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    if not isinstance(x, Tracer):
        return _np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    if dtype_of(x).kind not in 'fc':
        return x             # integers have no nan or inf (and must stay integers)
    out = where(isnan(x), nan, x)
    big = _np.finfo(dtype_of(x)).max if dtype_of(x).kind == 'f' else None
    if big is not None:
        out = where(equal(x, _np.inf), big if posinf is None else posinf, out)
        out = where(equal(x, -_np.inf), -big if neginf is None else neginf, out)
    return out


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """`np.isclose` (a boolean result, not differentiable)."""
    v = _values(a, b)
    if v is not None:
        return _np.isclose(*v, rtol=rtol, atol=atol, equal_nan=equal_nan)
    # NumPy's definition: |a - b| <= atol + rtol |b| where b is finite, or exactly equal (so
    # infinities are close only to themselves)
    out = logical_or(logical_and(less_equal(abs(a - b), atol + rtol * abs(b)), isfinite(b)),
                     equal(a, b))
    return logical_or(out, logical_and(isnan(a), isnan(b))) if equal_nan else out


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """`np.allclose`: a Python bool, or a traced boolean inside `vmap` and `jit`."""
    v = _values(a, b)
    if v is not None:
        return bool(_np.allclose(*v, rtol=rtol, atol=atol, equal_nan=equal_nan))
    return ops.sorting.all(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a, b, equal_nan=False):
    """`np.array_equal`: a Python bool, or a traced boolean inside `vmap` and `jit`."""
    v = _values(a, b)
    if v is not None:
        return bool(_np.array_equal(*v, equal_nan=equal_nan))
    if shape_of(a) != shape_of(b):
        return False
    same = equal(a, b)
    if equal_nan:
        same = logical_or(same, logical_and(isnan(a), isnan(b)))
    return ops.sorting.all(same)


def float_power(x1, x2):
    """`np.float_power`: `power` computed in float64 (complex128 for complex inputs)."""
    if not _is_traced(x1, x2):
        return _np.float_power(x1, x2)
    kinds = [dtype_of(v).kind if isinstance(v, Tracer) else _np.asarray(v).dtype.kind
             for v in (x1, x2)]
    dt = _np.complex128 if 'c' in kinds else _np.float64
    return power(asarray(x1, dtype=dt), asarray(x2, dtype=dt))


def select(condlist, choicelist, default=0):
    """`np.select`: from the first condition that holds, the matching choice (else `default`),
    elementwise; differentiable in the choices and `default`."""
    if len(condlist) != len(choicelist):
        raise ValueError(f'select: condlist and choicelist must be the same length, got '
                         f'{len(condlist)} conditions and {len(choicelist)} choices')
    if not _is_traced(default, *condlist, *choicelist):
        return _np.select(condlist, choicelist, default)
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where(cond, choice, out)      # the earlier conditions are applied last: they win
    if not _is_traced(out):                 # every choice was constant: NumPy's broadcast shape
        return _np.select(condlist, choicelist, default)
    shape = _np.broadcast_shapes(*[shape_of(v) for v in (default, *condlist, *choicelist)])
    return ops.broadcast_to(out, shape) if shape_of(out) != shape else out


def iscomplex(x):
    """`np.iscomplex`: elementwise, whether the imaginary part is nonzero (a constant)."""
    if not isinstance(x, Tracer):
        return _np.iscomplex(x)
    if dtype_of(x).kind != 'c':
        return _np.zeros(shape_of(x), dtype=bool)
    return ops.not_equal(imag(x), 0)


def isreal(x):
    """`np.isreal`: elementwise, whether the imaginary part is zero (a constant)."""
    return logical_not(iscomplex(x))


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _concrete_for, _is_traced, _values  # noqa: E402
from chainrule.numpy._creation import asarray  # noqa: E402
from chainrule.numpy._predicates import nonzero  # noqa: E402
from chainrule.numpy._reductions import _float, max, min  # noqa: E402
