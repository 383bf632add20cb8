"""`chainrule.numpy` differences, integrals and signals: `diff`, `ediff1d`, `gradient`,
`trapezoid`, `convolve`, `correlate`, `interp`, `polyval`."""

import numpy as _np

from chainrule import ops
from chainrule.core import dtype_of, shape_of, ShapeError
from chainrule.ops import conj, greater, less
from numpy import zeros as _zeros


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
    full = _zeros((n + m - 1,), result_type(a, v)) if not _is_traced(a, v) else None
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


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _is_traced  # noqa: E402
from chainrule.numpy._creation import asarray, full, zeros_like  # noqa: E402
from chainrule.numpy._elementwise import clip, where  # noqa: E402
from chainrule.numpy._indexing import take  # noqa: E402
from chainrule.numpy._predicates import result_type, searchsorted  # noqa: E402
from chainrule.numpy._reductions import sum  # noqa: E402
from chainrule.numpy._shape import (  # noqa: E402
    _axis1, append, broadcast_to, concatenate, flip, pad, ravel, reshape)
