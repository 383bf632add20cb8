"""`Tensor`'s PyTorch face, reductions and order statistics: `median`, `kthvalue`, `topk`,
`mode`, `quantile`, `nansum`, `cummax`, `logcumsumexp`, `diff`, `renorm`, `cov`, ...; whole-tensor
comparisons (`isclose`, `allclose`, `equal`); and the methods that look at values and have no
gradient (`unique`, `bincount`, `histc`, `bernoulli`, `multinomial`, ...). Installed on `Tensor`
by `chainrule/_torch_methods.py`."""

import collections

import numpy as np

from chainrule import ops
from chainrule._args import ArgumentError
from chainrule.core import ChainruleError, DTypeError, ShapeError, Tracer
from chainrule.tensor import Tensor
from chainrule._torch_face import (_axis, _cnp, _dims, _norm_dim, _same_dtype, _tensor,
                                   values_indices)
from chainrule._torch_common import _as_float, _concrete, _data, _dim_or_flat, _float_of, _without


# --- reductions, order statistics ----------------------------------------------------------------



def _pick(self, dim, keepdim, pos, op, descending=False):
    """The value at sorted position `pos` along `dim`, and its index (the sort is stable)."""
    x, d = _dim_or_flat(self, dim, op)
    if not len(self.shape):
        return values_indices(self, _tensor(np.zeros((), np.int64), self))
    n = x.shape[d]
    if not 0 <= pos < n:
        raise IndexError(f'{op}(): position {pos} is out of range for dim {dim} of size {n}')
    s = x.sort(d, descending=descending) if isinstance(x, Tensor) else None
    vals = s.values[(slice(None),) * d + (slice(pos, pos + 1),)]
    idx = s.indices[(slice(None),) * d + (slice(pos, pos + 1),)]
    if dim is None or not keepdim:
        vals, idx = ops.reshape(vals, _without(tuple(x.shape), d)), ops.reshape(
            idx, _without(tuple(x.shape), d))
    return values_indices(vals, idx)


def median(self, dim=None, keepdim=False):
    """PyTorch's `median`: the lower of the two middle values for an even count (not their
    mean, as NumPy's); with `dim`, `(values, indices)`."""
    n = self.shape[_norm_dim('median', dim, tuple(self.shape))] if dim is not None and \
        self.shape else int(np.prod(self.shape))
    if dim is None and n == 0:          # PyTorch: the median of no values is nan
        return _tensor(np.full((), np.nan, _float_of(self)), self)
    r = _pick(self, dim, keepdim, (n - 1) // 2, 'median')
    return r.values if dim is None else r


def nanmedian(self, dim=None, keepdim=False):
    """`median` ignoring nans (the lower middle of the non-nan values along `dim`)."""
    x, d = _dim_or_flat(self, dim, 'nanmedian')
    if not len(self.shape):
        return self if dim is None else values_indices(self, _tensor(np.zeros((), np.int64),
                                                                     self))
    cnt = _cnp().sum(ops.logical_not(ops.isnan(x)), axis=d, keepdims=True)
    s = x.sort(d)          # nans sort last
    pos = ops.astype(_cnp().maximum((cnt - 1) // 2, 0), np.int64)
    vals = _cnp().take_along_axis(s.values, pos, axis=d)
    idx = _cnp().take_along_axis(s.indices, pos, axis=d)
    if dim is None or not keepdim:
        vals = ops.reshape(vals, _without(tuple(x.shape), d))
        idx = _tensor(ops.reshape(idx, _without(tuple(x.shape), d)), self)
    return vals if dim is None else values_indices(vals, idx)


def kthvalue(self, k, dim=-1, keepdim=False):
    d = _norm_dim('kthvalue', dim, tuple(self.shape)) if self.shape else 0
    return _pick(self, d if self.shape else None, keepdim, int(k) - 1, 'kthvalue')


def topk(self, k, dim=-1, largest=True, sorted=True):
    """PyTorch's `topk`: the `k` largest (smallest with `largest=False`) along `dim`, as
    `(values, indices)`, in order."""
    if not len(self.shape):
        if k not in (0, 1):
            raise IndexError(f'topk(): k={k} is out of range for a 0-d Tensor')
        return values_indices(self, _tensor(np.zeros((), np.int64), self))
    d = _norm_dim('topk', dim, tuple(self.shape))
    n = self.shape[d]
    if not 0 <= k <= n:
        raise IndexError(f'topk(): k={k} is out of range for dim {dim} of size {n} (Tensor of '
                         f'shape {tuple(self.shape)})')
    s = self.sort(d, descending=largest)
    sl = (slice(None),) * d + (slice(0, k),)
    return values_indices(s.values[sl], s.indices[sl])


def mode(self, dim=-1, keepdim=False):
    """The most frequent value along `dim` (the smallest among equally frequent ones) and the
    index of its last occurrence (PyTorch's choices). Concrete input: one `np.unique` per row;
    traced input (inside grad/vmap/jit): `_traced_mode`, the same choices as a composite."""
    if isinstance(_data(self), Tracer):
        return _traced_mode(self, dim, keepdim)
    a = _concrete(self, 'mode')
    d = _norm_dim('mode', dim, a.shape)
    if a.ndim == 0:
        return values_indices(self, _tensor(np.zeros((), np.int64), self))
    b = np.moveaxis(a, d, -1)
    idx = np.empty(b.shape[:-1] + (1,), np.int64)
    for pos in np.ndindex(*b.shape[:-1]):
        row = b[pos]
        vals, counts = np.unique(row, return_counts=True)
        v = vals[np.argmax(counts)]
        idx[pos] = np.nonzero(row == v)[0][-1]
    idx = np.moveaxis(idx, -1, d)
    vals = _cnp().take_along_axis(self, idx, axis=d)
    if not keepdim:
        vals, idx = ops.reshape(vals, _without(a.shape, d)), idx.reshape(_without(a.shape, d))
    return values_indices(vals, _tensor(idx, self))


def _traced_mode(self, dim, keepdim):
    """`mode` of traced values, of comparisons and reductions only: the count of each entry's
    value is a row of the pairwise-equality matrix summed (quadratic memory in the length of
    `dim`, as `cummax`); the mode is the smallest value of the largest count, its index the
    last position holding it. The value is gathered from `self`, so its gradient reaches that
    entry (PyTorch's)."""
    nd = len(self.shape)
    d = _norm_dim('mode', dim, nd)
    if nd == 0:
        return values_indices(self, _tensor(np.zeros((), np.int64), self))
    cnp = _cnp()
    x = cnp.moveaxis(self, d, -1)
    n = x.shape[-1]
    if n == 0:
        raise IndexError(f'mode(): dim {dim} has size 0 (Tensor of shape {tuple(self.shape)}); '
                         'the mode of no values is undefined')
    v = ops.stop_gradient(ops.astype(x, np.int8) if x.dtype == np.bool_ else x)
    counts = cnp.sum(ops.equal(cnp.expand_dims(v, -1), cnp.expand_dims(v, -2)), axis=-1)
    top = ops.equal(counts, cnp.max(counts, axis=-1, keepdims=True))
    kind = np.dtype(v.dtype).kind
    fill = np.inf if kind == 'f' else np.iinfo(v.dtype).max
    best = cnp.min(cnp.where(top, v, np.asarray(fill, v.dtype)), axis=-1, keepdims=True)
    last = cnp.where(ops.equal(v, best), np.arange(n), -1)
    idx = cnp.max(last, axis=-1, keepdims=True)
    vals = cnp.take_along_axis(x, idx, axis=-1)
    vals, idx = cnp.moveaxis(vals, -1, d), cnp.moveaxis(idx, -1, d)
    if not keepdim:
        vals, idx = cnp.squeeze(vals, axis=d), cnp.squeeze(idx, axis=d)
    return values_indices(vals, _tensor(idx, self) if isinstance(self, Tensor) else idx)


def quantile(self, q, dim=None, keepdim=False, *, interpolation='linear'):
    """PyTorch's `quantile`: `q` a number or a 1-D tensor (its dimension comes first in the
    result); `interpolation` 'linear', 'lower', 'higher', 'nearest' or 'midpoint'."""
    qv = _concrete(q, 'quantile') if isinstance(q, Tensor) else np.asarray(q)
    if qv.size and (qv.min() < 0 or qv.max() > 1):
        raise ValueError(f'quantile(): q must lie in [0, 1], got {qv.tolist()}')
    if interpolation not in ('linear', 'lower', 'higher', 'nearest', 'midpoint'):
        raise ValueError(f"quantile(): interpolation must be 'linear', 'lower', 'higher', "
                         f"'nearest' or 'midpoint', got {interpolation!r}")
    x, d = _dim_or_flat(self, dim, 'quantile')
    if interpolation == 'linear':
        out = _cnp().quantile(x, qv, axis=d, keepdims=bool(keepdim))
    else:
        s = x.sort(d).values
        n = x.shape[d]
        outs = []
        for qq in qv.reshape(-1):
            pos = qq * (n - 1)
            lo, hi = int(np.floor(pos)), int(np.ceil(pos))
            take = lambda i: s[(slice(None),) * d + (slice(i, i + 1),)]    # noqa: E731
            if interpolation == 'lower':
                v = take(lo)
            elif interpolation == 'higher':
                v = take(hi)
            elif interpolation == 'nearest':
                v = take(int(np.round(pos)))
            else:
                v = (take(lo) + take(hi)) / 2
            outs.append(v if keepdim else ops.reshape(v, _without(tuple(x.shape), d)))
        out = outs[0] if qv.ndim == 0 else _cnp().stack(outs)
    if keepdim and dim is None:
        out = ops.reshape(out, qv.shape + (1,) * len(self.shape))
    return _same_dtype(out, self)


def nanquantile(self, q, dim=None, keepdim=False, *, interpolation='linear'):
    """`quantile` ignoring nans: NaNs are sorted last and the positions counted among the rest."""
    qv = _concrete(q, 'nanquantile') if isinstance(q, Tensor) else np.asarray(q, np.float64)
    x, d = _dim_or_flat(self, dim, 'nanquantile')
    if interpolation != 'linear':
        raise ChainruleError("nanquantile(): only interpolation='linear' is supported")
    s = x.sort(d).values
    cnt = _cnp().sum(ops.logical_not(ops.isnan(x)), axis=d, keepdims=True)
    outs = []
    for qq in qv.reshape(-1):
        pos = qq * ops.astype(cnt - 1, x.dtype)
        lo = ops.astype(_cnp().floor(pos), np.int64)
        lo = _cnp().maximum(lo, 0)
        hi = _cnp().minimum(lo + 1, _cnp().maximum(cnt - 1, 0))
        frac = pos - ops.astype(lo, x.dtype)
        a = _cnp().take_along_axis(s, lo, axis=d)
        b = _cnp().take_along_axis(s, hi, axis=d)
        v = a + frac * (b - a)
        v = _cnp().where(ops.equal(cnt, 0), np.nan, v)
        outs.append(v if keepdim and dim is not None else ops.reshape(
            v, _without(tuple(x.shape), d) if dim is not None else ()))
    out = outs[0] if qv.ndim == 0 else _cnp().stack(outs).reshape(qv.shape + tuple(outs[0].shape))
    if keepdim and dim is None:
        out = ops.reshape(out, qv.shape + (1,) * len(self.shape))
    return _same_dtype(out, self)


def count_nonzero(self, dim=None):
    dims = _axis(_dims('count_nonzero', dim, len(self.shape)), len(self.shape))
    return _tensor(_cnp().count_nonzero(self, axis=dims), self) if isinstance(self, Tensor) \
        else _cnp().count_nonzero(self, axis=dims)


def _nan_reduction(name):
    def method(self, dim=None, keepdim=False, *, dtype=None):
        dims = _axis(_dims(name, dim, len(self.shape)), len(self.shape))
        x = self if dtype is None else ops.astype(self, dtype)
        return getattr(_cnp(), name)(x, axis=dims, keepdims=bool(keepdim))
    method.__name__ = method.__qualname__ = name
    return method


def aminmax(self, *, dim=None, keepdim=False):
    mm = collections.namedtuple('aminmax', ['min', 'max'])
    return mm(self.amin(dim=() if dim is None else dim, keepdim=keepdim),
              self.amax(dim=() if dim is None else dim, keepdim=keepdim))


def _cum_extremum(name, cmp):
    """(values, indices) of the running max/min along `dim`. The index of position i is the
    last j <= i holding the extremum so far (PyTorch's choice for ties): one argmax over the
    masked lower triangle, so the method works on traced values too (quadratic memory in the
    length of `dim`)."""
    def method(self, dim):
        nd = len(self.shape)
        d = _norm_dim(name, dim, nd)
        if nd == 0:
            return values_indices(self, _tensor(np.zeros((), np.int64), self))
        x = _cnp().moveaxis(self, d, -1)
        n = x.shape[-1]
        if n == 0:
            return values_indices(self, _tensor(np.zeros(tuple(self.shape), np.int64), self))
        if self.dtype == np.bool_:
            vals, idx = method(ops.astype(self, np.int8), dim)
            return values_indices(ops.astype(vals, np.bool_), idx)
        # rev[..., i, j] = x[..., n-1-j] for j >= n-1-i: position j of the reversed prefix
        lower = np.tri(n, dtype=bool)[:, ::-1]       # [i, j]: n-1-j <= i
        rev = _cnp().flip(x, axis=-1)
        rows = ops.broadcast_to(ops.reshape(rev, tuple(x.shape[:-1]) + (1, n)),
                                tuple(x.shape[:-1]) + (n, n))
        fill = -np.inf if cmp == 'max' else np.inf
        if np.dtype(self.dtype).kind not in 'fc':
            info = np.iinfo(self.dtype)
            fill = info.min if cmp == 'max' else info.max
        masked = _cnp().where(lower, rows, np.asarray(fill, self.dtype))
        arg = _cnp().argmax(masked, axis=-1) if cmp == 'max' else _cnp().argmin(masked, axis=-1)
        idx = (n - 1) - arg           # back to positions of x: the last occurrence wins
        vals = _cnp().take_along_axis(x, idx, axis=-1)
        return values_indices(_cnp().moveaxis(vals, -1, d),
                              _tensor(_cnp().moveaxis(idx, -1, d), self)
                              if isinstance(self, Tensor) else _cnp().moveaxis(idx, -1, d))
    method.__name__ = method.__qualname__ = name
    return method


def logcumsumexp(self, dim):
    """log(cumsum(exp(x))) along `dim`, shifted by the maximum along `dim` (entries far below
    it in a prefix of only such entries underflow to -inf, as in any global shift)."""
    nd = len(self.shape)
    d = _norm_dim('logcumsumexp', dim, nd)
    if nd == 0 or 0 in tuple(self.shape):
        return self
    m = ops.stop_gradient(_cnp().amax(self, axis=d, keepdims=True))
    m = _cnp().where(ops.isfinite(m), m, 0)
    return ops.log(_cnp().cumsum(ops.exp(self - m), axis=d)) + m


def diff(self, n=1, dim=-1, prepend=None, append=None):
    d = _norm_dim('diff', dim, tuple(self.shape))
    if self.dtype == np.bool_:          # PyTorch: the difference of booleans is their xor
        x = self
        parts = [p for p in (prepend, x, append) if p is not None]
        if len(parts) > 1:
            x = _cnp().concatenate(parts, axis=d)
        for _ in range(n):
            k = x.shape[d]
            x = ops.not_equal(_cnp().take(x, np.arange(1, k), axis=d),
                              _cnp().take(x, np.arange(k - 1), axis=d))
        return x
    return _cnp().diff(self, n=n, axis=d, prepend=prepend, append=append)


def renorm(self, p, dim, maxnorm):
    """Each slice along `dim` whose `p`-norm exceeds `maxnorm` scaled down to norm `maxnorm`."""
    nd = len(self.shape)
    d = _norm_dim('renorm', dim, nd)
    others = tuple(i for i in range(nd) if i != d)
    a = ops.abs(self)
    nrm = _cnp().sum(a ** p, axis=others, keepdims=True) ** (1.0 / p)
    factor = _cnp().where(ops.greater(nrm, maxnorm), maxnorm / (nrm + 1e-7), 1.0)
    return _same_dtype(self * factor, self)


def cov(self, *, correction=1, fweights=None, aweights=None):
    if len(self.shape) > 2:
        raise ShapeError(f'cov(): input must be 1-D or 2-D, got shape {tuple(self.shape)}')
    x = self
    if len(x.shape) < 2:
        x = ops.reshape(x, (1, -1))
    w = None
    n = x.shape[1]
    for name, v, kinds, what in (('fweights', fweights, 'iu', 'integer'),
                                 ('aweights', aweights, 'fc', 'floating-point')):
        if v is not None:
            kind = np.dtype(getattr(v, 'dtype', np.asarray(v).dtype)).kind
            if kind not in kinds:
                raise DTypeError(f'cov(): {name} must be {what} (PyTorch refuses it too), got '
                                 f'dtype {np.dtype(getattr(v, "dtype", np.asarray(v).dtype))}')
            w = v if w is None else w * v
    if w is None:
        w_sum = n
        avg = _cnp().mean(x, axis=1, keepdims=True)
        xc = x - avg
        c = ops.matmul(xc, ops.conj(ops.transpose(xc, (1, 0)))) / (w_sum - correction)
    else:
        w = _as_float(w if isinstance(w, (Tensor, Tracer)) else np.asarray(w))
        w_sum = _cnp().sum(w)
        avg = _cnp().sum(x * w, axis=1, keepdims=True) / w_sum
        xc = x - avg
        if correction == 0:
            norm = w_sum
        elif aweights is None:
            norm = w_sum - correction
        else:
            aw = aweights if isinstance(aweights, (Tensor, Tracer)) else np.asarray(aweights)
            norm = w_sum - correction * _cnp().sum(w * aw) / w_sum
        c = ops.matmul(xc * w, ops.conj(ops.transpose(xc, (1, 0)))) / norm
    c = _same_dtype(c, _as_float(self))
    return ops.reshape(c, ()) if len(self.shape) < 2 or self.shape[0] == 1 else c


def corrcoef(self):
    c = cov(self)
    if not len(c.shape):
        return c / c
    dg = _cnp().diagonal(c)
    s = ops.sqrt(ops.real(dg) if np.dtype(c.dtype).kind == 'c' else dg)
    r = c / ops.reshape(s, (-1, 1)) / ops.reshape(s, (1, -1))
    return _cnp().clip(r, -1, 1) if np.dtype(c.dtype).kind != 'c' else r


# --- comparisons of whole tensors ---------------------------------------------------------------

def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _cnp().isclose(self, other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.all(_concrete(isclose(self, other, rtol, atol, equal_nan), 'allclose')))


def equal(self, other):
    a, b = _concrete(self, 'equal'), _concrete(other, 'equal')
    return a.shape == b.shape and bool(np.all(a == b))


# --- values looked at: no gradient ---------------------------------------------------------------

def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
    a = _concrete(self, 'unique')
    out = np.unique(a, return_inverse=return_inverse, return_counts=return_counts, axis=dim)
    if not (return_inverse or return_counts):
        return _tensor(out, self)
    out = list(out)
    if return_inverse:
        out[1] = out[1].reshape(a.shape if dim is None else (-1,)).astype(np.int64)
    return tuple(_tensor(np.asarray(o), self) for o in out)


def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
    a = _concrete(self, 'unique_consecutive')
    if dim is not None:
        raise ChainruleError('unique_consecutive(dim=...): not supported; flatten first')
    flat = a.reshape(-1)
    start = np.ones(flat.shape, bool)
    start[1:] = flat[1:] != flat[:-1]
    vals = flat[start]
    res = [_tensor(vals, self)]
    if return_inverse:
        res.append(_tensor((np.cumsum(start) - 1).reshape(a.shape).astype(np.int64), self))
    if return_counts:
        res.append(_tensor(np.diff(np.append(np.nonzero(start)[0], flat.size)).astype(
            np.int64), self))
    return res[0] if len(res) == 1 else tuple(res)


def bincount(self, weights=None, minlength=0):
    a = _concrete(self, 'bincount')
    if a.ndim != 1 or a.dtype.kind not in 'iu':
        raise ShapeError(f'bincount(): input must be a 1-D integer Tensor, got shape {a.shape} '
                         f'dtype {a.dtype}')
    w = None if weights is None else _concrete(weights, 'bincount')
    return _tensor(np.bincount(a, w, minlength), self)


def histc(self, bins=100, min=0, max=0):
    a = _concrete(self, 'histc')
    lo, hi = (a.min(), a.max()) if min == max == 0 and a.size else (min, max)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    h, _ = np.histogram(a[(a >= lo) & (a <= hi)], bins=bins, range=(lo, hi))
    return _tensor(h.astype(a.dtype if a.dtype.kind == 'f' else np.float32), self)


def argwhere(self):
    return self.nonzero()


def frexp(self):
    m, e = np.frexp(_concrete(self, 'frexp'))
    mt = collections.namedtuple('frexp', ['mantissa', 'exponent'])
    return mt(_tensor(m, self), _tensor(e.astype(np.int32), self))


def bernoulli(self, p=None, *, generator=None):
    from chainrule.factories import _gen
    prob = _concrete(self if p is None else (p if isinstance(p, Tensor) else np.asarray(p)),
                     'bernoulli')
    if prob.size and not (prob.min() >= 0 and prob.max() <= 1):
        raise ArgumentError(f'bernoulli(): probabilities must lie in [0, 1], got values from '
                            f'{prob.min()} to {prob.max()} (PyTorch refuses it too)')
    u = _gen(generator).random(tuple(self.shape))
    return _tensor((u < prob).astype(_float_of(self)), self)


def multinomial(self, num_samples, replacement=False, *, generator=None):
    from chainrule.factories import _gen
    probs = _concrete(self, 'multinomial').astype(np.float64)
    rng = _gen(generator)
    rows = probs.reshape(-1, probs.shape[-1])
    out = np.stack([rng.choice(len(r), num_samples, replace=replacement, p=r / r.sum())
                    for r in rows]).astype(np.int64)
    return _tensor(out.reshape(probs.shape[:-1] + (num_samples,)), self)
