"""`chainrule.numpy`: NumPy's API, differentiable.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2))(cnp.array([0.5, -1.0])).round(4)
    array([ 0.7233, -0.8399])

Every function takes NumPy arrays, Python numbers, `Tensor`s or tracers, with NumPy's names,
signatures (`axis`, `keepdims`, `ddof`) and semantics (broadcasting, NumPy 2 dtype promotion).
With plain arrays and no transform active the result is exactly NumPy's. Everything here is a
composite of the primitives in `chainrule.ops` and has no derivative code of its own.

Differences from NumPy, all deliberate: functions that are not differentiable (`argmax`,
`floor`, comparisons) return constants; indexed assignment is functional (`cnp.at(x)[idx].set(v)`
returns a new array, as in JAX); `sort` differentiates through the permutation it finds.
"""

import builtins

import numpy as _np

from chainrule import ops
from chainrule.core import ConcretizationError as _ConcretizationError
from chainrule.core import ShapeError, Tracer, concrete, dtype_of, shape_of
from chainrule.ops import (  # noqa: F401  (re-exported: these are NumPy's names already)
    abs, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cbrt, ceil, conj, cos, cosh,
    equal, exp, exp2, expm1, floor, floor_divide, greater, greater_equal, imag, isfinite, isinf,
    isnan, less, less_equal, log, log1p, log2, log10, logical_and, logical_not, logical_or,
    logical_xor, matmul, maximum, minimum, mod, not_equal, real, rint, sign, sin, sinh, sqrt,
    stop_gradient, tan, tanh, trunc, where)

# NumPy constants and dtypes, so `cnp` can stand in for `np`
from numpy import (  # noqa: F401,E402
    bool_, complex64, complex128, dtype, e, euler_gamma, finfo, float16, float32, float64, iinfo,
    inf, int8, int16, int32, int64, nan, newaxis, pi, uint8)

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


def _is_traced(*xs):
    return builtins.any(isinstance(x, Tracer) for x in xs)


def _values(*xs):
    """The concrete arrays behind `xs` when NumPy can take them directly -- plain values, and
    `Tensor`s holding concrete data (the eager path stays NumPy's) -- or None: then the caller
    binds the primitives of `chainrule.ops.sorting`, which `vmap`, `jit` and `grad` see."""
    out = []
    for x in xs:
        if isinstance(x, Tracer):
            if not getattr(x, '_is_tensor', False):
                return None
            try:
                x = concrete(x)
            except _ConcretizationError:
                return None
        out.append(x)
    return out


# --- array creation ---------------------------------------------------------------------------

def array(obj, dtype=None, copy=True, ndmin=0):
    """`np.array`, and also from (nested) lists of traced scalars: `cnp.array([x, 2 * y])`."""
    if isinstance(obj, Tracer):
        out = obj if dtype is None else ops.astype(obj, dtype)
        return out if ndmin <= out.ndim else ops.reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
    if isinstance(obj, (list, tuple)) and _contains_tracer(obj):
        out = stack([array(o) for o in obj])
        return out if dtype is None else ops.astype(out, dtype)
    return _np.array(obj, dtype=dtype, copy=copy, ndmin=ndmin)


def _contains_tracer(obj):
    stack_ = [obj]
    while stack_:
        o = stack_.pop()
        if isinstance(o, Tracer):
            return True
        if isinstance(o, (list, tuple)):
            stack_.extend(o)
    return False


def asarray(obj, dtype=None):
    if isinstance(obj, Tracer) or (isinstance(obj, (list, tuple)) and _contains_tracer(obj)):
        return array(obj, dtype=dtype)
    return _np.asarray(obj, dtype=dtype)


def _const_like(fn):
    def f(a, dtype=None, shape=None):
        return fn(shape_of(a) if shape is None else shape, dtype=dtype or dtype_of(a))
    f.__name__ = fn.__name__ + '_like'
    return f


zeros_like = _const_like(_np.zeros)
ones_like = _const_like(_np.ones)
empty_like = _const_like(_np.zeros)


def full_like(a, fill_value, dtype=None, shape=None):
    if isinstance(fill_value, Tracer):
        return ops.broadcast_to(ops.astype(fill_value, dtype or dtype_of(a)), shape or shape_of(a))
    return _np.full(shape or shape_of(a), fill_value, dtype=dtype or dtype_of(a))


def _sizes_known(fn, name=None):
    """NumPy's creation function `fn` (sizes in, constants out), with a ConcretizationError
    naming it (or `name`) when a size is a traced value (NumPy raised a bare TypeError)."""
    name = name or fn.__name__
    def known(v):
        if isinstance(v, Tracer):
            try:
                return concrete(v)
            except _ConcretizationError:
                raise _ConcretizationError(
                    f'{name}: a size or shape argument is a {type(v).__name__} of shape '
                    f'{tuple(v.shape)} and dtype {v.dtype} that a transform is tracing; sizes '
                    'must be known when the function is traced. Compute them from shapes '
                    '(x.shape[0]) or pass them as static arguments of jit (static_argnums / '
                    'static_argnames).') from None
        if isinstance(v, (tuple, list)) and any(isinstance(x, Tracer) for x in v):
            return type(v)(known(x) for x in v)
        return v

    def wrapper(*args, **kwargs):
        return fn(*[known(a) for a in args], **{k: known(v) for k, v in kwargs.items()})
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


# constants: nothing to differentiate
arange, empty, eye, geomspace, identity, indices, logspace, ones, tri, zeros = map(
    _sizes_known, (_np.arange, _np.empty, _np.eye, _np.geomspace, _np.identity, _np.indices,
                   _np.logspace, _np.ones, _np.tri, _np.zeros))


def meshgrid(*xi, copy=True, sparse=False, indexing='xy'):
    """`np.meshgrid`, differentiable in the coordinate vectors: output i is vector i reshaped
    along axis i (axes 0 and 1 swapped for `indexing='xy'`) and broadcast to the grid."""
    if not _is_traced(*xi):
        return _np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    if indexing not in ('xy', 'ij'):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    nd = len(xi)
    axes = list(range(nd))
    if indexing == 'xy' and nd > 1:
        axes[0], axes[1] = 1, 0
    outs = [ops.reshape(x, (1,) * a + (-1,) + (1,) * (nd - a - 1)) for x, a in zip(xi, axes)]
    if not sparse:
        grid = _np.broadcast_shapes(*[shape_of(o) for o in outs])
        outs = [ops.broadcast_to(o, grid) for o in outs]
    return tuple(outs)


def full(shape, fill_value, dtype=None):
    """`np.full`, differentiable in `fill_value` (its gradient is the cotangent's sum)."""
    if not isinstance(fill_value, Tracer):
        return _np.full(shape, fill_value, dtype=dtype)
    shape = (int(shape),) if isinstance(shape, (int, _np.integer)) else tuple(shape)
    return ops.broadcast_to(fill_value if dtype is None else ops.astype(fill_value, dtype), shape)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`np.linspace`, differentiable in `start` and `stop`: sample i is
    `start + (stop - start) * i / div`, linear in both."""
    if not _is_traced(start, stop):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    div = num - 1 if endpoint else num
    dt = result_type(start, stop, float(num))
    span = stop - start
    step = span / div if div > 0 else span * _np.nan
    bshape = _np.broadcast_shapes(shape_of(start), shape_of(stop))
    t = (_np.arange(num) / div if div > 0 else _np.zeros(num)).astype(dt)
    out = start + _np.reshape(t, (num,) + (1,) * len(bshape)) * span
    if endpoint and num > 1:     # exactly `stop` at the end, as NumPy
        out = ops.at_set(out, ops.broadcast_to(stop, bshape), (num - 1,))
    out = moveaxis(out, 0, axis) if axis != 0 else out
    out = out if dtype is None else ops.astype(out, dtype)
    return (out, step) if retstep else out


# --- the rest of HIPS autograd's differentiable functions -----------------------------------------

def fabs(x):
    """`np.fabs`: the absolute value of a real array, as floats."""
    if not isinstance(x, Tracer):
        return _np.fabs(x)
    if dtype_of(x).kind == 'c':
        raise TypeError('fabs: complex input is not supported (use abs)')
    return abs(_float(x))


def rollaxis(a, axis, start=0):
    """`np.rollaxis`, as a transpose (prefer `moveaxis`)."""
    n = len(shape_of(a))
    axis %= n
    start = start + n if start < 0 else start
    if not 0 <= start <= n:
        raise ShapeError(f'rollaxis: start {start} is out of bounds for {n} dimensions')
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = [i for i in range(n) if i != axis]
    axes.insert(start, axis)
    return ops.transpose(a, tuple(axes))


def real_if_close(a, tol=100):
    """`np.real_if_close`: the real part when every imaginary part is within `tol` machine
    epsilons of zero (decided on the values, so not under `jit`)."""
    if dtype_of(a).kind != 'c':
        return a
    t = tol * _np.finfo(dtype_of(a)).eps if tol > 1 else tol
    v = _concrete_for('real_if_close', 'whether its result is real or complex depends on the '
                      'values (use cnp.real if the imaginary parts are known to be negligible)', a)
    return real(a) if _np.all(_np.abs(_np.imag(v)) < t) else a


def partition(a, kth, axis=-1, kind='introselect', order=None):
    """`np.partition`, differentiable: each element's gradient follows it to its place."""
    if not isinstance(a, Tracer):
        return _np.partition(a, kth, axis, kind, order)
    if axis is None:
        a, axis = ravel(a), 0
    v = _values(a)
    perm = _np.argpartition(v[0], kth, axis, kind, order) if v is not None else \
        ops.sorting.argpartition(a, kth, axis)
    return ops.sorting.take_along_axis(a, perm, axis)


# --- elementwise composites -------------------------------------------------------------------

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


# --- reductions -------------------------------------------------------------------------------

def _in_dtype(a, dtype):
    """`a` cast to a reduction's `dtype=` before reducing, as NumPy does (the accumulator has
    that dtype: `sum([0.3, 1.7], dtype=int)` is 0 + 1, not int(2.0))."""
    if dtype is None:
        return a
    return ops.astype(a if isinstance(a, Tracer) else _np.asarray(a), dtype)


def _out_dtype(out, dtype):
    """A reduction's result in its `dtype=` (small integers would otherwise widen)."""
    return out if dtype is None else ops.astype(out, dtype)


def sum(a, axis=None, dtype=None, keepdims=False):
    if dtype is None:                       # the common case, without the casts' calls
        return ops.sum(a, axis=axis, keepdims=keepdims)
    return _out_dtype(ops.sum(_in_dtype(a, dtype), axis=axis, keepdims=keepdims), dtype)


def _count(a, axis):
    s = shape_of(a)
    axis = ops.normalize_axis(axis, len(s))
    return int(_np.prod([s[i] for i in axis])) if axis else 1


def mean(a, axis=None, dtype=None, keepdims=False):
    a = _float(a)
    # NumPy: accumulated in `dtype`, and the mean returned in it
    return _out_dtype(sum(a, axis=axis, dtype=dtype, keepdims=keepdims) / _count(a, axis), dtype)


def _float(a):
    """Integer inputs to mean/var promote to float64, as in NumPy."""
    if not isinstance(a, Tracer):
        a = _np.asarray(a)
    return ops.astype(a, _np.float64) if dtype_of(a).kind in 'biu' else a


def var(a, axis=None, dtype=None, ddof=0, keepdims=False):
    a = _float(a)
    d = a - mean(a, axis=axis, keepdims=True)
    sq = real(d * conj(d)) if dtype_of(d).kind == 'c' else d * d
    return sum(sq, axis=axis, dtype=dtype, keepdims=keepdims) / builtins.max(
        _count(a, axis) - ddof, 0)


def std(a, axis=None, dtype=None, ddof=0, keepdims=False):
    v = var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    if not isinstance(v, Tracer):
        return sqrt(v)
    # zero variance (one element per group, or constant data): the gradient is 0, as abs's at 0,
    # not sqrt's infinite slope times 0 = nan
    pos = greater(v, 0)
    return where(pos, sqrt(where(pos, v, 1)), 0)


def max(a, axis=None, keepdims=False, initial=None):
    out = ops.max(a, axis=axis, keepdims=keepdims)
    return out if initial is None else maximum(out, initial)


def min(a, axis=None, keepdims=False, initial=None):
    out = -ops.max(-a if isinstance(a, Tracer) else -_np.asarray(a), axis=axis, keepdims=keepdims)
    return out if initial is None else minimum(out, initial)


amax, amin = max, min


def ptp(a, axis=None, keepdims=False):
    return max(a, axis, keepdims) - min(a, axis, keepdims)


def prod(a, axis=None, dtype=None, keepdims=False):
    """Product over `axis`; the gradient is the product of the other elements (exact with zeros)."""
    s = shape_of(a)
    ax = ops.normalize_axis(axis, len(s))
    if not isinstance(a, Tracer):
        return _np.prod(a, axis=ax, dtype=dtype, keepdims=keepdims)
    a = _in_dtype(a, dtype)
    if not ax:
        return a
    rest = [i for i in range(len(s)) if i not in ax]
    moved = ops.transpose(a, tuple(rest) + ax)
    flat = ops.reshape(moved, tuple(s[i] for i in rest) + (-1,))
    out = _prod_last(flat)
    if keepdims:
        out = ops.reshape(out, tuple(1 if i in ax else d for i, d in enumerate(s)))
    return _out_dtype(out, dtype)


def _prod_last(x):
    # a binary-tree product over the last axis: every element's gradient is the product of
    # the others, computed exactly even when some are zero (no division)
    n = shape_of(x)[-1]
    if n == 0:
        return ops.sum(x, axis=-1) * 0 + 1
    while n > 1:
        if n % 2:
            x = ops.concatenate([x, ones_like(x, shape=shape_of(x)[:-1] + (1,))], axis=-1)
            n += 1
        x = x[..., 0::2] * x[..., 1::2]
        n //= 2
    return x[..., 0]


def cumsum(a, axis=None, dtype=None):
    return _out_dtype(ops.cumsum(_in_dtype(a, dtype), axis), dtype)


def cumprod(a, axis=None, dtype=None):
    return _out_dtype(ops.cumprod(_in_dtype(a, dtype), axis), dtype)


def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) without overflow (also `chainrule.scipy`-style `logsumexp`)."""
    shape = shape_of(a)
    axes = ops.normalize_axis(axis, len(shape), 'logsumexp')
    if builtins.any(shape[i] == 0 for i in axes):
        # the log of an empty sum: -inf, as NumPy, SciPy and JAX give (max has no identity)
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        return _np.full(out, -_np.inf, _np.result_type(dtype_of(a), _np.float16))
    m = ops.stop_gradient(max(a, axis=axis, keepdims=True))
    m = where(isfinite(m), m, 0)
    out = log(sum(exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else squeeze(out, axis=ops.normalize_axis(axis, len(shape_of(a))))


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        scl = _count(a, axis)
    else:
        if shape_of(weights) != shape_of(a):
            if axis is None or len(shape_of(weights)) != 1:
                raise ShapeError(f'average: weights of shape {shape_of(weights)} need axis= for '
                                 f'a of shape {shape_of(a)}')
            nd = len(shape_of(a))
            ax = _axis1(axis, nd, 'average')
            weights = reshape(weights, tuple(-1 if i == ax else 1 for i in range(nd)))
            weights = broadcast_to(weights, shape_of(a))
        scl = sum(weights, axis=axis, keepdims=keepdims)
        avg = sum(a * weights, axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg



# --- NaN-aware reductions, order statistics, integration ----------------------------------------

def nansum(a, axis=None, dtype=None, keepdims=False):
    """`np.nansum`: the sum with NaNs counted as zero (so their gradient is zero)."""
    if not isinstance(a, Tracer):
        return _np.nansum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    return sum(where(isnan(a), 0, a), axis=axis, dtype=dtype, keepdims=keepdims)


def nanmean(a, axis=None, dtype=None, keepdims=False):
    """`np.nanmean`: the mean of the elements that are not NaN (NaN where there are none)."""
    if not isinstance(a, Tracer):
        return _np.nanmean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    a = _float(a)
    n = sum(ops.astype(logical_not(isnan(a)), dtype_of(a)), axis=axis, keepdims=keepdims)
    return _out_dtype(nansum(a, axis, None, keepdims) / n, dtype)


def quantile(a, q, axis=None, out=None, overwrite_input=False, method='linear',
             keepdims=False):
    """`np.quantile` (NumPy's default `method='linear'`), differentiable in `a`: `a` sorted
    along `axis`, then the two order statistics around position `q (n - 1)` interpolated
    linearly, so the gradient goes to those two elements. `q` is a constant."""
    if not isinstance(a, Tracer):
        return _np.quantile(a, q, axis=axis, out=out, overwrite_input=overwrite_input,
                            method=method, keepdims=keepdims)
    return _quantile(a, q, 1.0, _np.quantile, axis, out, method, keepdims)


def percentile(a, q, axis=None, out=None, overwrite_input=False, method='linear',
               keepdims=False):
    """`np.percentile`: `quantile` with `q` in percent."""
    if not isinstance(a, Tracer):
        return _np.percentile(a, q, axis=axis, out=out, overwrite_input=overwrite_input,
                              method=method, keepdims=keepdims)
    return _quantile(a, q, 100.0, _np.percentile, axis, out, method, keepdims)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """`np.median`: the middle element along `axis`, or the mean of the two middle ones."""
    if not isinstance(a, Tracer):
        return _np.median(a, axis=axis, out=out, overwrite_input=overwrite_input,
                          keepdims=keepdims)
    return _quantile(a, 0.5, 1.0, _np.median, axis, out, 'linear', keepdims)


def _quantile(a, q, scale, np_fn, axis, out, method, keepdims):
    if method != 'linear' or out is not None:
        raise NotImplementedError(f"{np_fn.__name__}: on traced values only method='linear' "
                                  "(NumPy's default) is differentiable here, and not out=")
    q = concrete(q)
    # the result dtype as NumPy gives it (a Python-number q is weak: float32 stays float32)
    dt = _np.asarray(np_fn(_np.zeros(1, dtype_of(a)), *(() if np_fn is _np.median else (q,))))
    qs = _np.asarray(q, dtype=_np.float64) / scale
    if qs.size and (qs.min() < 0 or qs.max() > 1):
        raise ValueError(f'{np_fn.__name__}: q must lie in [0, {scale:g}]')
    s = shape_of(a)
    axes = ops.normalize_axis(axis, len(s))
    rest = [i for i in range(len(s)) if i not in axes]
    # the reduced axes moved last and merged into one, then sorted
    x = sort(reshape(transpose(a, rest + list(axes)), [s[i] for i in rest] + [-1]), axis=-1)
    x = ops.astype(x, dt.dtype)
    n = shape_of(x)[-1]
    pos = qs * (n - 1)
    lo = _np.floor(pos).astype(_np.intp)
    hi = _np.minimum(lo + 1, n - 1)
    frac = _np.asarray(pos - lo, dtype=dt.dtype)
    below, above = take(x, lo, axis=-1), take(x, hi, axis=-1)   # rest + q.shape
    res = below + (above - below) * frac
    res = moveaxis(res, list(range(len(rest), len(rest) + qs.ndim)), list(range(qs.ndim)))
    if keepdims:
        res = reshape(res, qs.shape + tuple(1 if i in axes else s[i] for i in range(len(s))))
    return res


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """`np.trapezoid`: the trapezoidal rule, sum of (y[i+1] + y[i]) / 2 * (x[i+1] - x[i]) along
    `axis`; differentiable in `y`, `x` and `dx`."""
    if not _is_traced(y, x, dx):
        return (getattr(_np, 'trapezoid', None) or _np.trapz)(y, x, dx, axis)   # NumPy < 2
    nd = len(shape_of(y))
    ax = _axis1(axis, nd, 'trapezoid')
    if x is None:
        d = dx
    elif len(shape_of(x)) == 1:
        d = reshape(diff(x), tuple(-1 if i == ax else 1 for i in range(nd)))
    else:
        d = diff(x, axis=ax)
    hi = (slice(None),) * ax + (slice(1, None),)
    lo = (slice(None),) * ax + (slice(None, -1),)
    return sum(d * (y[hi] + y[lo]) / 2.0, axis=ax)


def float_power(x1, x2):
    """`np.float_power`: `power` computed in float64 (complex128 for complex inputs)."""
    if not _is_traced(x1, x2):
        return _np.float_power(x1, x2)
    kinds = [dtype_of(v).kind if isinstance(v, Tracer) else _np.asarray(v).dtype.kind
             for v in (x1, x2)]
    dt = _np.complex128 if 'c' in kinds else _np.float64
    return power(asarray(x1, dtype=dt), asarray(x2, dtype=dt))


def copy(a, order='K', subok=False):
    """`np.copy`: for a `Tensor`, `clone()` (a new Tensor whose gradient flows back to `a`);
    other traced values cannot be modified in place, so they are their own copy."""
    if getattr(a, '_is_tensor', False):
        return a.clone()
    if isinstance(a, Tracer):
        return a
    return _np.copy(a, order=order, subok=subok)

def _concrete_for(op, why, x):
    """`concrete(x)`, with an error saying why `op` needs the values when there are none."""
    try:
        return concrete(x)
    except _ConcretizationError as e:
        raise _ConcretizationError(f'{op}: {why}, so it cannot be computed on batched (vmap) or '
                                   f'abstract (jit) values. {e}') from None


def _nondiff_reduce(fn):
    def f(*args, **kwargs):
        # every argument made concrete: a Tensor left among `args` would dispatch straight back
        # here through __array_function__, forever
        def values(x):
            return _concrete_for(fn.__name__, 'the shape of its result depends on the values', x)
        return fn(*[values(x) for x in args], **{k: values(v) for k, v in kwargs.items()})
    f.__name__ = fn.__name__
    f.__doc__ = f'`np.{fn.__name__}` on the values (not differentiable; its result\'s shape ' \
        'depends on the values, so not inside vmap or jit).'
    return f


argwhere, nonzero, flatnonzero, unique = map(_nondiff_reduce, (
    _np.argwhere, _np.nonzero, _np.flatnonzero, _np.unique))


# Not differentiable (integer or boolean results), with static result shapes: NumPy itself on
# concrete values, the primitives of chainrule.ops.sorting on values traced by vmap, jit or grad.

def argmax(a, axis=None, out=None, *, keepdims=False):
    """`np.argmax`: the index of the first largest element (flattened, or along `axis`)."""
    v = _values(a)
    if v is not None or out is not None:
        return _np.argmax(concrete(a), axis=axis, out=out, keepdims=keepdims)
    return ops.sorting.argmax(a, axis, keepdims)


def argmin(a, axis=None, out=None, *, keepdims=False):
    """`np.argmin`: the index of the first smallest element (flattened, or along `axis`)."""
    v = _values(a)
    if v is not None or out is not None:
        return _np.argmin(concrete(a), axis=axis, out=out, keepdims=keepdims)
    return ops.sorting.argmin(a, axis, keepdims)


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """`np.argsort`: the indices that sort `a` along `axis`."""
    v = _values(a)
    if v is not None:
        return _np.argsort(v[0], axis=axis, kind=kind, order=order, stable=stable)
    if axis is None:
        a, axis = ravel(a), 0
    return ops.sorting.argsort(a, axis, stable=bool(stable) or kind in ('stable', 'mergesort'))


def _all_any(np_fn, op, a, axis, out, keepdims, where, masked):
    v = _values(a, where)
    if v is not None or out is not None:
        kw = {} if where is None else {'where': concrete(where)}
        return np_fn(concrete(a), axis=axis, out=out, keepdims=keepdims, **kw)
    if where is not None:
        a = masked(a, where)
    return op(a, axis, keepdims)


def all(a, axis=None, out=None, keepdims=False, *, where=None):
    """`np.all`: whether every element (along `axis`, among those `where` selects) is true."""
    return _all_any(_np.all, ops.sorting.all, a, axis, out, keepdims, where,
                    lambda a, w: logical_or(a, logical_not(w)))


def any(a, axis=None, out=None, keepdims=False, *, where=None):
    """`np.any`: whether some element (along `axis`, among those `where` selects) is true."""
    return _all_any(_np.any, ops.sorting.any, a, axis, out, keepdims, where,
                    lambda a, w: logical_and(a, w))


def count_nonzero(a, axis=None, *, keepdims=False):
    """`np.count_nonzero`: the number of non-zero elements (along `axis`)."""
    v = _values(a)
    if v is not None:
        return _np.count_nonzero(v[0], axis=axis, keepdims=keepdims)
    return ops.sum(ops.astype(not_equal(a, 0), _np.intp), axis=axis, keepdims=keepdims)


def searchsorted(a, v, side='left', sorter=None):
    """`np.searchsorted`: where to insert `v` into the sorted 1-D `a` to keep it sorted."""
    vals = _values(a, v, sorter)
    if vals is not None:
        return _np.searchsorted(vals[0], vals[1], side=side, sorter=vals[2])
    if sorter is not None:
        a = take(a, sorter)
    return ops.sorting.searchsorted(a, v, side)


def digitize(x, bins, right=False):
    """`np.digitize`: the index of the bin each `x` falls in. Inside `vmap` and `jit` the bins'
    direction is decided by their first and last elements (non-monotonic bins go unnoticed)."""
    vals = _values(x, bins)
    if vals is not None:
        return _np.digitize(vals[0], vals[1], right=right)
    side = 'left' if right else 'right'     # as NumPy: the arguments are swapped
    n = shape_of(bins)[0]
    up = searchsorted(bins, x, side)
    down = n - searchsorted(flip(bins), x, side)
    return where(less_equal(bins[0], bins[-1]), up, down)


def isin(element, test_elements, assume_unique=False, invert=False):
    """`np.isin`: whether each element of `element` is among `test_elements`."""
    vals = _values(element, test_elements)
    if vals is not None:
        return _np.isin(vals[0], vals[1], assume_unique=assume_unique, invert=invert)
    s = shape_of(element)
    hit = ops.sorting.any(equal(reshape(element, s + (1,)), ravel(test_elements)), axis=-1)
    return logical_not(hit) if invert else hit


def shape(a):
    return shape_of(a)


def ndim(a):
    return len(shape_of(a))


def size(a, axis=None):
    s = shape_of(a)
    return int(_np.prod(s)) if axis is None else s[axis]


def result_type(*args):
    return _np.result_type(*[dtype_of(a) if isinstance(a, Tracer) else a for a in args])


def iscomplexobj(x):
    return dtype_of(x).kind == 'c'


def isrealobj(x):
    return not iscomplexobj(x)


# --- shape functions --------------------------------------------------------------------------

def reshape(a, newshape=None, order='C', *, shape=None):
    shape = newshape if shape is None else shape
    if order in ('A', 'K'):     # NumPy: 'F' for an array laid out in Fortran order only
        fortran = isinstance(a, _np.ndarray) and a.flags.f_contiguous and not a.flags.c_contiguous
        order = 'F' if fortran else 'C'
    if order == 'F':            # Fortran order = C order on the axes reversed, then reversed back
        shape = (shape,) if isinstance(shape, (int, _np.integer)) else tuple(shape)
        return ops.transpose(ops.reshape(ops.transpose(a), shape[::-1]))
    if order != 'C':
        raise ValueError(f"reshape: order must be 'C', 'F', 'A' or 'K', got {order!r}")
    return ops.reshape(a, shape)


def ravel(a, order='C'):
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    return ops.transpose(a, axes)


def permute_dims(a, axes=None):
    return ops.transpose(a, axes)


def _axis1(axis, ndim, op):
    """One axis, checked against `ndim` (a ShapeError naming `op` when out of bounds, as
    NumPy's AxisError) and made non-negative."""
    return ops.normalize_axis(int(axis), ndim, op)[0]


def moveaxis(a, source, destination):
    nd = len(shape_of(a))
    src = [_axis1(s, nd, 'moveaxis') for s in ((source,) if isinstance(source, int) else source)]
    dst = [_axis1(d, nd, 'moveaxis')
           for d in ((destination,) if isinstance(destination, int) else destination)]
    if len(src) != len(dst):
        raise ShapeError(f'moveaxis: source {source} and destination {destination} must have the '
                         'same number of elements')
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(a, tuple(order))


def swapaxes(a, axis1, axis2):
    nd = len(shape_of(a))
    perm = list(range(nd))
    axis1, axis2 = _axis1(axis1, nd, 'swapaxes'), _axis1(axis2, nd, 'swapaxes')
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return ops.transpose(a, tuple(perm))


def squeeze(a, axis=None):
    s = shape_of(a)
    if axis is None:
        ax = tuple(i for i, d in enumerate(s) if d == 1)
    else:
        ax = ops.normalize_axis(axis, len(s), 'squeeze')
        bad = [i for i in ax if s[i] != 1]
        if bad:
            raise ShapeError(f'squeeze: cannot select axis {bad[0]} of shape {s}: its size is not 1')
    return ops.reshape(a, tuple(d for i, d in enumerate(s) if i not in ax))


def expand_dims(a, axis):
    s = list(shape_of(a))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(s) + len(axes)
    for ax in ops.normalize_axis(axes, nd, 'expand_dims'):
        s.insert(ax, 1)
    return ops.reshape(a, tuple(s))


def broadcast_to(array, shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return ops.broadcast_to(array, shape)


def broadcast_arrays(*args):
    s = _np.broadcast_shapes(*[shape_of(a) for a in args])
    return [ops.broadcast_to(a, s) for a in args]


def atleast_1d(*arys):
    res = [a if len(shape_of(a)) >= 1 else ops.reshape(a, (1,)) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = []
    for a in arys:
        s = shape_of(a)
        res.append(a if len(s) >= 2 else ops.reshape(a, (1,) * (2 - len(s)) + s))
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys):
    res = []
    for a in arys:
        s = shape_of(a)
        if len(s) == 0:
            a = ops.reshape(a, (1, 1, 1))
        elif len(s) == 1:
            a = ops.reshape(a, (1, s[0], 1))
        elif len(s) == 2:
            a = ops.reshape(a, s + (1,))
        res.append(a)
    return res[0] if len(res) == 1 else res


def concatenate(arrays, axis=0, dtype=None):
    out = ops.concatenate([asarray(a) for a in arrays], axis)
    return out if dtype is None else ops.astype(out, dtype)


concat = concatenate


def stack(arrays, axis=0):
    arrays = [asarray(a) for a in arrays]
    if not arrays:
        raise ValueError('stack: need at least one array')
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f'stack: all input arrays must have the same shape, got '
                         f'{[shape_of(a) for a in arrays]}')
    return ops.concatenate([expand_dims(a, axis) for a in arrays], axis)


def hstack(tup):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, 0 if len(shape_of(arrs[0])) == 1 else 1)


def vstack(tup):
    return concatenate([atleast_2d(a) for a in tup], 0)


row_stack = vstack


def dstack(tup):
    return concatenate([atleast_3d(a) for a in tup], 2)


def column_stack(tup):
    arrs = []
    for a in tup:
        a = asarray(a)
        arrs.append(ops.reshape(a, (-1, 1)) if len(shape_of(a)) < 2 else a)
    return concatenate(arrs, 1)


def append(arr, values, axis=None):
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


def split(ary, indices_or_sections, axis=0):
    axis = _axis1(axis, len(shape_of(ary)), 'split')
    n = shape_of(ary)[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ShapeError(f'split: array of size {n} along axis {axis} does not divide into '
                             f'{indices_or_sections} equal sections (use array_split)')
        return array_split(ary, indices_or_sections, axis)
    return _split_at(ary, list(indices_or_sections), axis)


def array_split(ary, indices_or_sections, axis=0):
    axis = _axis1(axis, len(shape_of(ary)), 'array_split')
    n = shape_of(ary)[axis]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
        cuts = list(_np.cumsum(sizes)[:-1])
        return _split_at(ary, cuts, axis)
    return _split_at(ary, list(indices_or_sections), axis)


def _split_at(ary, cuts, axis):
    nd = len(shape_of(ary))
    axis = _axis1(axis, nd, 'split')
    bounds = [0] + [int(c) for c in cuts] + [shape_of(ary)[axis]]
    return [ary[(slice(None),) * axis + (slice(lo, hi),)] for lo, hi in zip(bounds, bounds[1:])]


def hsplit(ary, sections):
    return split(ary, sections, 1 if len(shape_of(ary)) > 1 else 0)


def vsplit(ary, sections):
    return split(ary, sections, 0)


def dsplit(ary, sections):
    return split(ary, sections, 2)


def flip(m, axis=None):
    nd = len(shape_of(m))
    axes = ops.normalize_axis(axis, nd, 'flip')
    return m[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(nd))]


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    perm = list(range(len(shape_of(m))))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    if k == 1:
        return transpose(flip(m, axes[1]), perm)
    return flip(transpose(m, perm), axes[1])


def roll(a, shift, axis=None):
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    if not isinstance(axis, int):
        for s, ax in zip(shift if not isinstance(shift, int) else [shift] * len(axis), axis):
            a = roll(a, s, ax)
        return a
    nd = len(shape_of(a))
    axis = _axis1(axis, nd, 'roll')
    n = shape_of(a)[axis]
    if n == 0:
        return a
    s = int(shift) % n
    if s == 0:
        return a
    pre = (slice(None),) * axis
    return concatenate([a[pre + (slice(n - s, None),)], a[pre + (slice(0, n - s),)]], axis)


def tile(A, reps):
    if isinstance(reps, Tracer) or (isinstance(reps, (tuple, list)) and
                                    builtins.any(isinstance(r, Tracer) for r in reps)):
        reps = _sizes_known(lambda r: r, 'tile')(reps)     # concrete, or a clear error
        reps = reps.tolist() if isinstance(reps, _np.ndarray) else reps
    reps = (int(reps),) if isinstance(reps, (int, _np.integer)) else tuple(int(r) for r in reps)
    s = shape_of(A)
    nd = builtins.max(len(s), len(reps))
    s = (1,) * (nd - len(s)) + s
    reps = (1,) * (nd - len(reps)) + reps
    a = reshape(A, s)
    # put a new axis of size r before each axis, broadcast, and merge the pairs
    inter = []
    for d in s:
        inter += [1, d]
    a = reshape(a, tuple(inter))
    big = []
    for r, d in zip(reps, s):
        big += [r, d]
    a = broadcast_to(a, tuple(big))
    return reshape(a, tuple(r * d for r, d in zip(reps, s)))


def repeat(a, repeats, axis=None):
    if axis is None or not shape_of(a):         # a 0-d input acts as 1-D, as in NumPy
        a, axis = ravel(a), 0 if axis is None else axis
    nd = len(shape_of(a))
    axis = _axis1(axis, nd, 'repeat')
    n = shape_of(a)[axis]
    r = _np.asarray(concrete(repeats))
    if r.ndim == 0 or r.shape == (1,):
        repeats = int(r.reshape(()))
    elif r.shape != (n,):
        raise ShapeError(f'repeat: repeats of shape {r.shape} do not match the {n} elements along '
                         f'axis {axis} of shape {shape_of(a)}')
    if isinstance(repeats, (int, _np.integer)):
        s = shape_of(a)
        b = expand_dims(a, axis + 1)
        b = broadcast_to(b, s[:axis + 1] + (int(repeats),) + s[axis + 1:])
        return reshape(b, s[:axis] + (n * int(repeats),) + s[axis + 1:])
    idx = _np.repeat(_np.arange(n), _np.asarray(concrete(repeats)))
    return take(a, idx, axis)


def pad(array, pad_width, mode='constant', constant_values=0):
    """`np.pad` for modes 'constant', 'edge', 'reflect', 'symmetric' and 'wrap'."""
    s = shape_of(array)
    try:
        pw = _np.broadcast_to(_np.asarray(pad_width, dtype=int), (len(s), 2))
    except ValueError:
        raise ShapeError(f'pad: pad_width {pad_width!r} does not fit shape {s} (one (before, '
                         'after) pair per axis, or one pair or number for all)') from None
    if mode == 'constant':
        out_shape = tuple(d + int(lo) + int(hi) for d, (lo, hi) in zip(s, pw))
        idx = tuple(slice(int(lo), int(lo) + d) for d, (lo, _) in zip(s, pw))
        if isinstance(constant_values, Tracer) or _np.ndim(constant_values) != 0:
            raise NotImplementedError('pad: constant_values must be a number')
        base = _np.full(out_shape, constant_values, dtype=result_type(array))
        if not isinstance(array, Tracer):
            base[idx] = array
            return base
        return ops.at_set(base, array, idx)
    out = array
    for ax, (lo, hi) in enumerate(pw):
        n = shape_of(out)[ax]
        lo, hi = int(lo), int(hi)
        if not lo and not hi:
            continue
        if mode == 'edge':
            left, right = _np.zeros(lo, int), _np.full(hi, n - 1)
        elif mode == 'wrap':
            left, right = _np.arange(-lo, 0) % n, _np.arange(n, n + hi) % n
        elif mode in ('reflect', 'symmetric'):
            period = _np.r_[_np.arange(n), _np.arange(n - 1, -1, -1)] if mode == 'symmetric' \
                else _np.r_[_np.arange(n), _np.arange(n - 2, 0, -1)]
            left = period[_np.arange(-lo, 0) % len(period)]
            right = period[_np.arange(n, n + hi) % len(period)]
        else:
            raise NotImplementedError(f'pad: mode {mode!r} is not supported (constant, edge, '
                                      'reflect, symmetric, wrap)')
        idx = _np.concatenate([left, _np.arange(n), right]).astype(int)
        out = take(out, idx, ax)
    return out


# --- indexing ---------------------------------------------------------------------------------

def take(a, indices, axis=None, mode=None):
    """`np.take`, differentiable in `a`, with modes 'raise' (the default), 'wrap' and 'clip';
    `indices` may be traced (computed inside `vmap` or `jit`): then one gather primitive."""
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axis1(axis, len(shape_of(a)), 'take')
    n = shape_of(a)[axis]
    if mode == 'wrap':
        indices = mod(indices, n)
    elif mode == 'clip':
        indices = clip(indices, 0, n - 1)
    iv = _values(indices)
    if iv is None:
        return ops.sorting.take(a, indices, axis)
    return a[(slice(None),) * axis + (_np.asarray(iv[0]),)]


def take_along_axis(arr, indices, axis=-1):
    """`np.take_along_axis`, differentiable in `arr`; `indices` may be traced (the result of
    `argsort` inside `vmap` or `jit`). One gather primitive whose VJP is a scatter-add."""
    if axis is None:
        arr, axis = ravel(arr), 0
    if not _is_traced(arr, indices):
        return _np.take_along_axis(_np.asarray(arr), _np.asarray(indices), axis)
    return ops.sorting.take_along_axis(arr, indices, axis)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """`np.sort`, differentiable: `take_along_axis(a, argsort(a))`, so the gradient follows
    each element to its sorted place. The sort is stable unless `kind` names another one
    ('quicksort' is about 3x faster, but tied elements then get each other's gradients in an
    order NumPy chooses)."""
    if not isinstance(a, Tracer):
        return _np.sort(a, axis=axis, kind=kind, order=order)
    if axis is None:
        a, axis = ravel(a), 0
    if stable is None:
        stable = kind in (None, 'stable', 'mergesort')
    v = _values(a)
    perm = _np.argsort(v[0], axis=axis, kind='stable' if stable else None) if v is not None \
        else ops.sorting.argsort(a, axis, stable=stable)
    return ops.sorting.take_along_axis(a, perm, axis)


def diagonal(a, offset=0, axis1=0, axis2=1):
    s = shape_of(a)
    nd = len(s)
    if nd < 2:
        raise ShapeError(f'diagonal: needs an array of at least two dimensions, got shape {s}')
    a1, a2 = _axis1(axis1, nd, 'diagonal'), _axis1(axis2, nd, 'diagonal')
    if a1 == a2:
        raise ShapeError(f'diagonal: axis1 and axis2 are the same axis ({a1}) of shape {s}')
    rest = [i for i in range(nd) if i not in (a1, a2)]
    b = transpose(a, tuple(rest) + (a1, a2))
    n1, n2 = s[a1], s[a2]
    if offset >= 0:
        k = builtins.max(0, builtins.min(n1, n2 - offset))
        i, j = _np.arange(k), _np.arange(k) + offset
    else:
        k = builtins.max(0, builtins.min(n1 + offset, n2))
        i, j = _np.arange(k) - offset, _np.arange(k)
    return b[(Ellipsis, i, j)]


def diag(v, k=0):
    s = shape_of(v)
    if len(s) == 1:
        n = s[0] + builtins.abs(k)
        i = _np.arange(s[0]) + builtins.max(-k, 0)
        j = _np.arange(s[0]) + builtins.max(k, 0)
        if not isinstance(v, Tracer):
            return _np.diag(v, k)
        return ops.scatter_add(v, (i, j), (n, n))
    if len(s) == 2:
        return diagonal(v, k)
    raise ShapeError(f'diag: input must be 1-D or 2-D, got shape {s}')


def diagflat(v, k=0):
    return diag(ravel(v), k)


def trace(a, offset=0, axis1=0, axis2=1):
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


def tril(m, k=0):
    s = shape_of(m)
    mask = _np.tri(*s[-2:], k=k, dtype=bool)    # as NumPy: a 1-D m gives a square result
    return where(mask, m, _np.zeros((), dtype_of(m)))   # a zero of m's dtype: ints stay ints


def triu(m, k=0):
    s = shape_of(m)
    mask = ~_np.tri(*s[-2:], k=k - 1, dtype=bool)
    return where(mask, m, _np.zeros((), dtype_of(m)))


class _At:
    """`cnp.at(x)[idx].set(v)` / `.add(v)` / `.multiply(v)`: functional indexed updates (JAX's
    `x.at[idx].set(v)`); `x` itself is never modified."""

    __slots__ = ('x', 'idx')

    def __init__(self, x, idx=None):
        self.x, self.idx = x, idx

    def __getitem__(self, idx):
        return _At(self.x, idx)

    def set(self, values):
        return ops.at_set(self.x, values, self.idx)

    def add(self, values):
        return ops.at_add(self.x, values, self.idx)

    def subtract(self, values):
        return ops.at_add(self.x, -values, self.idx)

    def multiply(self, values):
        """Multiply the indexed elements by `values`; a position indexed k times is multiplied
        by all k of its values, as NumPy's `np.multiply.at` and JAX's `.at[].multiply`."""
        x, idx = self.x, self.idx
        parts = idx if isinstance(idx, tuple) else (idx,)
        if builtins.any(isinstance(i, Tracer) for i in parts):
            # traced indices (vmap, jit): positions unknown here, each written once
            return ops.at_set(x, x[idx] * values, idx)
        shape = shape_of(x)
        pos = _np.arange(int(_np.prod(shape))).reshape(shape)[idx]   # flat position per write
        if _np.unique(pos).size == pos.size:
            return ops.at_set(x, x[idx] * values, idx)
        # repeated positions: rounds of distinct positions, round r holding the r-th write to
        # each, applied one after another (multiplication commutes, so the order is free)
        pf = pos.ravel()
        vf = ravel(broadcast_to(values, pos.shape))
        order = _np.argsort(pf, kind='stable')
        first = _np.r_[True, pf[order][1:] != pf[order][:-1]]
        rank = _np.empty(pf.size, _np.intp)
        rank[order] = _np.arange(pf.size) - _np.maximum.accumulate(
            _np.where(first, _np.arange(pf.size), 0))
        out = ravel(x)
        for r in range(int(rank.max()) + 1):
            sel = _np.nonzero(rank == r)[0]
            out = ops.at_set(out, out[pf[sel]] * vf[sel], pf[sel])
        return reshape(out, shape)

    def get(self):
        return self.x[self.idx]


def at(x):
    return _At(x)


def index_update(x, idx, values):
    return ops.at_set(x, values, idx)


def index_add(x, idx, values):
    return ops.at_add(x, values, idx)


# --- products ---------------------------------------------------------------------------------

def dot(a, b):
    """`np.dot`: a scalar product for 0-d operands, `matmul` for 1-D/2-D, and for N-D a sum
    over the last axis of `a` and the second-to-last of `b`."""
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2 if len(sb) > 1 else -1]))


def vdot(a, b):
    return sum(conj(ravel(a)) * ravel(b))


def inner(a, b):
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    a, b = ravel(a), ravel(b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def tensordot(a, b, axes=2):
    """`np.tensordot` as transpose, reshape and one `matmul`."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, int):
        ax_a = list(range(len(sa) - axes, len(sa)))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [_axis1(x, len(sa), 'tensordot') for x in ax_a]
    ax_b = [_axis1(x, len(sb), 'tensordot') for x in ax_b]
    if len(ax_a) != len(ax_b) or builtins.any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b)):
        raise ShapeError(f'tensordot: shapes {sa} and {sb} do not align on axes {ax_a} and {ax_b}')
    free_a = [i for i in range(len(sa)) if i not in ax_a]
    free_b = [j for j in range(len(sb)) if j not in ax_b]
    k = int(_np.prod([sa[i] for i in ax_a]))
    A = reshape(transpose(a, free_a + ax_a), (-1, k))
    B = reshape(transpose(b, ax_b + free_b), (k, -1))
    return reshape(matmul(A, B), tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def kron(a, b):
    sa, sb = shape_of(a), shape_of(b)
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a, b = reshape(a, sa), reshape(b, sb)
    ai, bi = [], []
    for x, y in zip(sa, sb):
        ai += [x, 1]
        bi += [1, y]
    return reshape(reshape(a, tuple(ai)) * reshape(b, tuple(bi)),
                   tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1:], shape_of(b)[-1:]
    if na not in ((2,), (3,)) or nb not in ((2,), (3,)):
        raise ShapeError(f'cross: the vectors must have 2 or 3 components along the axis, got '
                         f'shapes {shape_of(a)} and {shape_of(b)}')
    if na == nb == (2,):        # NumPy: the z component of the 3-vectors (a0, a1, 0), (b0, b1, 0)
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    # a 2-vector against a 3-vector: its third component is 0
    a, b = (concatenate([v, v[..., :1] * 0], axis=-1) if n == (2,) else v
            for v, n in ((a, na), (b, nb)))
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    c = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, axisc)


def einsum(subscripts, *operands, optimize=False):
    """`np.einsum`: explicit or implicit output, ellipsis, repeated letters, the interleaved
    form; one primitive (see `chainrule.numpy._einsum`)."""
    from chainrule.numpy._einsum import einsum as _einsum
    return _einsum(subscripts, *operands, optimize=optimize)


# --- differences and gradients -----------------------------------------------------------------

def diff(a, n=1, axis=-1, prepend=None, append=None):
    nd = len(shape_of(a))
    axis = _axis1(axis, nd, 'diff')
    if prepend is not None or append is not None:
        parts = []
        for extra in (prepend, None, append):
            if extra is None and not parts and prepend is not None:
                continue
        parts = ([_expand_to(prepend, a, axis)] if prepend is not None else []) + [a] + \
            ([_expand_to(append, a, axis)] if append is not None else [])
        a = concatenate(parts, axis)
    for _ in range(n):
        hi = (slice(None),) * axis + (slice(1, None),)
        lo = (slice(None),) * axis + (slice(None, -1),)
        a = a[hi] - a[lo]
    return a


def _expand_to(v, a, axis):
    if len(shape_of(v)) == 0:
        s = list(shape_of(a))
        s[axis] = 1
        return broadcast_to(v, tuple(s))
    return v


def ediff1d(ary, to_end=None, to_begin=None):
    d = diff(ravel(ary))
    # as NumPy, to_begin/to_end take the dtype of ary (float32 stays float32)
    dt = dtype_of(d)
    parts = ([ops.astype(ravel(asarray(to_begin)), dt)] if to_begin is not None else []) + [d] + \
        ([ops.astype(ravel(asarray(to_end)), dt)] if to_end is not None else [])
    return concatenate(parts) if len(parts) > 1 else d


def gradient(f, *varargs, axis=None, edge_order=1):
    """`np.gradient` with unit or scalar spacing: centred differences inside, one-sided at the
    edges (edge_order=1)."""
    nd = len(shape_of(f))
    axes = list(range(nd)) if axis is None else [
        _axis1(a, nd, 'gradient') for a in ((axis,) if isinstance(axis, int) else axis)]
    if edge_order != 1:
        raise NotImplementedError('gradient: only edge_order=1 is supported')
    spacing = list(varargs) if varargs else [1.0] * len(axes)
    if len(spacing) == 1 and len(axes) > 1:
        spacing = spacing * len(axes)
    outs = []
    for ax, h in zip(axes, spacing):
        if _np.ndim(h) != 0:
            raise NotImplementedError('gradient: only scalar spacings are supported')
        if shape_of(f)[ax] < 2:
            raise ShapeError(f'gradient: shape {shape_of(f)} has {shape_of(f)[ax]} element(s) '
                             f'along axis {ax}; at least 2 are needed')
        sl = lambda s: (slice(None),) * ax + (s,)  # noqa: E731
        interior = (f[sl(slice(2, None))] - f[sl(slice(None, -2))]) / (2.0 * h)
        first = (f[sl(slice(1, 2))] - f[sl(slice(0, 1))]) / h
        last = (f[sl(slice(-1, None))] - f[sl(slice(-2, -1))]) / h
        outs.append(concatenate([first, interior, last], ax))
    return outs[0] if len(outs) == 1 else outs


def convolve(a, v, mode='full'):
    """1-D convolution (`np.convolve`), as a sum of shifted products."""
    a, v = ravel(a), ravel(v)
    n, m = shape_of(a)[0], shape_of(v)[0]
    if n < m:
        a, v, n, m = v, a, m, n
    full = zeros((n + m - 1,), result_type(a, v)) if not _is_traced(a, v) else None
    if full is not None:
        return _np.convolve(a, v, mode)
    terms = [pad(a * v[j], [(j, m - 1 - j)]) for j in range(m)]
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    if mode == 'full':
        return out
    if mode == 'same':
        start = (m - 1) // 2
        return out[start:start + n]
    if mode == 'valid':
        return out[m - 1:n]
    raise ValueError(f'convolve: unknown mode {mode!r}')


def correlate(a, v, mode='valid'):
    return convolve(a, conj(flip(ravel(v))), mode)


def interp(x, xp, fp, left=None, right=None):
    """Linear interpolation, differentiable in `fp`, and in `x` and `xp` between knots; the
    knot search is `searchsorted`, so it works inside `vmap` and `jit` too."""
    n = shape_of(xp)[0]
    i = clip(searchsorted(xp, x, side='right') - 1, 0, n - 2)
    x0, x1 = take(xp, i), take(xp, i + 1)
    t = (x - x0) / (x1 - x0)
    f0, f1 = take(fp, i), take(fp, i + 1)
    out = f0 + t * (f1 - f0)
    out = where(less(x, xp[0]), fp[0] if left is None else left, out)
    return where(greater(x, xp[-1]), fp[-1] if right is None else right, out)


def polyval(p, x):
    out = zeros_like(x)      # as NumPy: the result dtype is that of x and p together
    n = shape_of(p)[0]
    for k in range(n):
        out = out * x + p[k]
    return out


def cov(m, y=None, rowvar=True, bias=False, ddof=None):
    def rows(a):
        # as NumPy: computed in at least float64; with rowvar=False each 2-D input (m and y
        # alike) is transposed, a 1-D one is already a single variable
        a = atleast_2d(asarray(a))
        a = ops.astype(a, _np.result_type(dtype_of(a), _np.float64))
        return transpose(a) if not rowvar and shape_of(a)[0] != 1 else a
    m = rows(m)
    if y is not None:
        m = concatenate([m, rows(y)], 0)
    n = shape_of(m)[1]
    ddof = (0 if bias else 1) if ddof is None else ddof
    c = m - mean(m, axis=1, keepdims=True)
    out = matmul(c, transpose(conj(c))) / (n - ddof)
    return squeeze(out) if shape_of(out) == (1, 1) else out


def corrcoef(x, y=None, rowvar=True):
    c = cov(x, y, rowvar)
    d = sqrt(real(diagonal(c)))
    return c / reshape(d, (-1, 1)) / reshape(d, (1, -1))


bincount = _nondiff_reduce(_np.bincount)     # result shapes depend on the values
histogram = _nondiff_reduce(_np.histogram)

from chainrule.numpy import fft, linalg  # noqa: E402,F401
