"""`chainrule.numpy` reductions and statistics: `sum`, `mean`, `var`, `max`, `prod`, `cumsum`,
`logsumexp`, `average`, the NaN-aware reductions, quantiles, `cov`/`corrcoef`."""

import builtins
import numpy as _np

from chainrule import ops
from chainrule.core import concrete, dtype_of, shape_of, ShapeError, Tracer
from chainrule.ops import (
    abs, conj, equal, exp, greater, isfinite, isnan, log, logical_not, matmul, maximum, minimum,
    real, sqrt)
from numpy import dtype


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
    # (a variance that is nan -- ddof >= the count -- stays nan, as NumPy's)
    pos = greater(v, 0)
    return where(pos, sqrt(where(pos, v, 1)), where(isnan(v), v, 0))


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
    flat = ops.reshape(moved, tuple(s[i] for i in rest) + (int(_np.prod([s[i] for i in ax])),))
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


def logsumexp(a, axis=None, keepdims=False, b=None, return_sign=False):
    """log(sum(b * exp(a))) without overflow, as `scipy.special.logsumexp` (`b=` scales each
    term; with `return_sign=True`, the pair (log|sum|, sign of the sum), else NaN for a
    negative sum, as SciPy gives)."""
    shape = shape_of(a)
    axes = ops.normalize_axis(axis, len(shape), 'logsumexp')
    if b is None and not return_sign and builtins.any(shape[i] == 0 for i in axes):
        # the log of an empty sum: -inf, as NumPy, SciPy and JAX give (max has no identity)
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        return _np.full(out, -_np.inf, _np.result_type(dtype_of(a), _np.float16))
    if b is not None:
        a = where(equal(b, 0), -_np.inf, a)     # SciPy: a term with b == 0 contributes nothing
    m = ops.stop_gradient(max(a, axis=axis, keepdims=True))
    m = where(isfinite(m), m, 0)
    e = exp(a - m) if b is None else b * exp(a - m)
    s = sum(e, axis=axis, keepdims=True)
    if return_sign:
        sgn = ops.stop_gradient(ops.sign(s))
        s = abs(s)
    out = log(s) + m
    if not keepdims:
        axes = ops.normalize_axis(axis, len(_np.broadcast_shapes(shape_of(a), shape_of(e))))
        out = squeeze(out, axis=axes)
        if return_sign:
            sgn = squeeze(sgn, axis=axes)
    return (out, sgn) if return_sign else out


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


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._creation import asarray, ones_like  # noqa: E402
from chainrule.numpy._elementwise import where  # noqa: E402
from chainrule.numpy._indexing import diagonal, sort, take  # noqa: E402
from chainrule.numpy._shape import (  # noqa: E402
    _axis1, atleast_2d, broadcast_to, concatenate, moveaxis, reshape, squeeze, transpose)
