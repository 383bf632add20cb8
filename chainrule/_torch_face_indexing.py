"""`Tensor`'s PyTorch face, indexing methods: `gather`, `scatter`, `scatter_add`,
`index_select`, `masked_fill`, `masked_select`, `where`, `nonzero`, and the index checks they
share (`_torch_shape`'s indexed updates use them too)."""

import builtins
import numbers

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, ShapeError, Tracer
from chainrule.tensor import Tensor
from chainrule._torch_common import _cnp, _norm_dim, _same_dtype


def _idx_data(index, op):
    i = index.data if isinstance(index, Tensor) else index
    if isinstance(i, Tracer):
        from chainrule.core import ConcretizationError
        raise ConcretizationError(f'{op}(): the index is traced; pass a concrete index array')
    i = np.asarray(i)
    if i.dtype.kind not in 'iu':
        raise TypeError(f'{op}(): index must be an integer Tensor, got dtype {i.dtype}')
    return i


def _scatter_index(self, dim, index, op):
    """The advanced index that puts `index`'s entries along `dim`: index[i][j][k] picks
    self[i][index[i][j][k]][k] (for dim 1)."""
    nd = len(self.shape)
    d = _norm_dim(op, dim, nd)
    idx = _idx_data(index, op)
    if idx.ndim != builtins.max(nd, 1):
        raise ShapeError(f'{op}(): index has {idx.ndim} dimensions, the Tensor of shape '
                         f'{tuple(self.shape)} has {nd}; they must match')
    for k in range(nd):
        if k != d and idx.shape[k] > self.shape[k]:
            raise ShapeError(f'{op}(): index of shape {idx.shape} is larger than the Tensor of '
                             f'shape {tuple(self.shape)} in dimension {k}')
    if idx.size and (idx.min() < -self.shape[d] or idx.max() >= self.shape[d]):
        raise IndexError(f'{op}(): index out of range for dim {dim} of size {self.shape[d]}')
    grids = list(np.indices(idx.shape, sparse=True))
    grids[d] = idx % self.shape[d] if self.shape[d] else idx
    return tuple(grids) if nd else (), idx


def gather(self, dim, index):
    full, idx = _scatter_index(self, dim, index, 'gather')
    return self[full] if full else self


def _src_values(self, src, idx, op):
    if isinstance(src, (numbers.Number, np.generic)):
        return ops.broadcast_to(ops.astype(np.asarray(src), self.dtype), idx.shape)
    sl = tuple(slice(0, n) for n in idx.shape)
    v = src[sl]
    return v if v.dtype == self.dtype else ops.astype(v, self.dtype)


def scatter(self, dim, index, src=None, *, value=None, reduce=None):
    if reduce is not None:
        raise ChainruleError("scatter(reduce=...): not supported; use scatter_add or "
                             "scatter_reduce's out-of-place equivalents")
    src = value if src is None else src
    full, idx = _scatter_index(self, dim, index, 'scatter')
    return ops.at_set(self, _src_values(self, src, idx, 'scatter'), full)


def scatter_add(self, dim, index, src):
    full, idx = _scatter_index(self, dim, index, 'scatter_add')
    return ops.at_add(self, _src_values(self, src, idx, 'scatter_add'), full)


def index_select(self, dim, index):
    d = _norm_dim('index_select', dim, tuple(self.shape))
    idx = _idx_data(index, 'index_select')
    if idx.ndim > 1:
        raise ShapeError(f'index_select(): index must be 1-D, got shape {idx.shape}')
    return self[(slice(None),) * d + (idx.reshape(-1),)]


def _mask(mask, op):
    m = mask.data if isinstance(mask, Tensor) else mask
    if not isinstance(m, Tracer):
        m = np.asarray(m)
    if m.dtype != np.bool_:
        raise TypeError(f'{op}(): mask must be a bool Tensor, got dtype {m.dtype}')
    return m


def masked_fill(self, mask, value):
    v = value if isinstance(value, Tensor) else np.asarray(value, self.dtype)
    out = _cnp().where(_mask(mask, 'masked_fill'), v, self)
    return _same_dtype(out, self)


def masked_select(self, mask):
    m = np.asarray(_mask(mask, 'masked_select'))
    shape = np.broadcast_shapes(tuple(self.shape), m.shape)
    x = self if tuple(self.shape) == shape else ops.broadcast_to(self, shape)
    return x[np.broadcast_to(m, shape)]


def where(self, condition, other):
    """PyTorch's `x.where(condition, y)`: x where condition holds, else y."""
    out = _cnp().where(_mask(condition, 'where'), self, other)
    return out


def nonzero(self, *, as_tuple=False):
    d = self.data
    if isinstance(d, Tracer):
        from chainrule.core import ConcretizationError
        raise ConcretizationError('nonzero(): the number of nonzero elements of a traced '
                                  'Tensor is not known')
    nz = np.nonzero(np.atleast_1d(np.asarray(d)))
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in nz)
    return Tensor(np.stack(nz, axis=-1).astype(np.int64) if len(self.shape) else
                  np.zeros((len(nz[0]), 0), np.int64))
