"""`Tensor`'s PyTorch face, shape and indexed updates: `broadcast_to`, `movedim`, `tril`/`triu`,
`diag`/`diag_embed`, `rot90`, `tensor_split`/`hsplit`/..., `take_along_dim`, `select`; and
`index_add`, `index_copy`, `index_fill`, `index_put`, `masked_scatter`, `scatter_reduce`
(composites of chainrule's view, gather and indexed-update primitives; installed on `Tensor` by
`chainrule/_torch_methods.py`)."""

import builtins

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, ShapeError, Tracer
from chainrule.tensor import Tensor
from chainrule._torch_face import _cnp, _norm_dim, _same_dtype
from chainrule._torch_common import _concrete, _min_dims, _without


# --- shape ---------------------------------------------------------------------------------------

def broadcast_to(self, *size):
    size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    shape = tuple(self.shape)
    lead = len(size) - len(shape)
    target = tuple(shape[i - lead] if s == -1 and i >= lead else int(s)
                   for i, s in enumerate(size))
    try:
        np.broadcast_shapes(shape, target)
    except ValueError:
        raise ShapeError(f'broadcast_to(): a Tensor of shape {shape} cannot be broadcast to '
                         f'{tuple(size)}') from None
    return ops.broadcast_to(self, target) if target != shape else self


def movedim(self, source, destination):
    return _cnp().moveaxis(self, source, destination)


def swapdims(self, dim0, dim1):
    return self.transpose(dim0, dim1)


def adjoint(self):
    return ops.conj(self.mT) if np.dtype(self.dtype).kind == 'c' else self.mT


def tril(self, diagonal=0):
    _min_dims('tril', self, 2)
    return _cnp().tril(self, k=diagonal)


def triu(self, diagonal=0):
    _min_dims('triu', self, 2)
    return _cnp().triu(self, k=diagonal)




def diag(self, diagonal=0):
    if len(self.shape) not in (1, 2):
        raise ShapeError(f'diag(): input must be 1-D or 2-D, got shape {tuple(self.shape)}')
    return _cnp().diag(self, k=diagonal)


def diag_embed(self, offset=0, dim1=-2, dim2=-1):
    """Each vector along the last dimension as the `offset` diagonal of a matrix whose two
    dimensions are `dim1` and `dim2` of the result (a linear map: one matmul with a 0/1
    placement array)."""
    shape = tuple(self.shape)
    if not shape:
        raise ShapeError('diag_embed(): input must have at least 1 dimension')
    n = shape[-1]
    m = n + builtins.abs(offset)
    place = np.zeros((n, m, m), self.dtype)
    i = np.arange(n)
    place[i, i + builtins.max(-offset, 0), i + builtins.max(offset, 0)] = 1
    out = ops.reshape(ops.matmul(self, ops.reshape(place, (n, m * m))), shape[:-1] + (m, m))
    nd = len(shape) + 1
    d1, d2 = _norm_dim('diag_embed', dim1, nd), _norm_dim('diag_embed', dim2, nd)
    if d1 == d2:
        raise ValueError(f'diag_embed(): dim1 and dim2 must differ, both are {dim1}')
    return _cnp().moveaxis(out, (nd - 2, nd - 1), (d1, d2))


def diagflat(self, offset=0):
    return _cnp().diagflat(self, k=offset)


def rot90(self, k=1, dims=(0, 1)):
    dims = tuple(dims)
    if len(dims) != 2:
        raise ValueError(f'rot90(): dims must name two dimensions, got {dims}')
    return _cnp().rot90(self, k, axes=dims)


def fliplr(self):
    _min_dims('fliplr', self, 2)
    return _cnp().fliplr(self)


def flipud(self):
    _min_dims('flipud', self, 1)
    return _cnp().flipud(self)


def _index_list(v, op):
    if isinstance(v, Tensor):
        v = _concrete(v, op)
    if isinstance(v, np.ndarray):
        return int(v) if v.ndim == 0 else [int(i) for i in v]
    return v


def tensor_split(self, indices_or_sections, dim=0):
    d = _norm_dim('tensor_split', dim, tuple(self.shape))
    return tuple(_cnp().array_split(self, _index_list(indices_or_sections, 'tensor_split'),
                                    axis=d))


def _np_split(name, axis, min_nd):
    def method(self, indices_or_sections):
        _min_dims(name, self, min_nd)
        ax = 0 if (axis == 1 and len(self.shape) == 1) else axis
        n = self.shape[ax]
        sec = _index_list(indices_or_sections, name)
        if isinstance(sec, int) and (sec <= 0 or n % sec):
            raise ShapeError(f'{name}(): {sec} sections do not split the size {n} of dim {ax} '
                             f'(Tensor of shape {tuple(self.shape)}) evenly')
        return tuple(_cnp().array_split(self, sec, axis=ax))
    method.__name__ = method.__qualname__ = name
    return method


def split_with_sizes(self, split_sizes, dim=0):
    return self.split(list(split_sizes), dim)


def take_along_dim(self, indices, dim=None):
    if dim is None:
        return _cnp().take_along_axis(ops.reshape(self, (-1,)), ops.reshape(indices, (-1,)), 0)
    d = _norm_dim('take_along_dim', dim, tuple(self.shape))
    ishape = tuple(indices.shape)
    if len(ishape) != len(self.shape):
        raise ShapeError(f'take_along_dim(): indices of shape {ishape} and input of shape '
                         f'{tuple(self.shape)} must have the same number of dimensions')
    # PyTorch broadcasts input and indices against each other in every other dimension
    sh = list(np.broadcast_shapes(_without(tuple(self.shape), d), _without(ishape, d)))
    x = broadcast_to(self, tuple(sh[:d]) + (self.shape[d],) + tuple(sh[d:]))
    idx = indices if isinstance(indices, Tensor) else np.asarray(indices)
    idx = ops.broadcast_to(idx, tuple(sh[:d]) + (ishape[d],) + tuple(sh[d:])) \
        if tuple(idx.shape) != tuple(sh[:d]) + (ishape[d],) + tuple(sh[d:]) else idx
    return _cnp().take_along_axis(x, idx, axis=d)




def select(self, dim, index):
    d = _norm_dim('select', dim, tuple(self.shape))
    n = self.shape[d]
    if not -n <= index < n:
        raise IndexError(f'select(): index {index} is out of range for dim {dim} of size {n}')
    return self[(slice(None),) * d + (int(index),)]


def msort(self):
    return self.sort(0).values


# --- indexed updates -----------------------------------------------------------------------------

def _along(self, dim, index, op):
    """The index tuple that addresses `index` along `dim`, and the normalised dim."""
    from chainrule._torch_face import _idx_data
    d = _norm_dim(op, dim, tuple(self.shape))
    idx = _idx_data(index, op)
    if idx.ndim > 1:
        raise ShapeError(f'{op}(): index must be 0-D or 1-D, got shape {idx.shape}')
    n = self.shape[d] if self.shape else 1
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f'{op}(): index out of range for dim {dim} of size {n}')
    return (slice(None),) * d + (idx.reshape(-1),), d


def _source(op, self, source, d, nidx):
    want = tuple(self.shape[:d]) + (nidx,) + tuple(self.shape[d + 1:])
    if tuple(source.shape) != want and len(self.shape):
        raise ShapeError(f'{op}(): source of shape {tuple(source.shape)} must have shape {want}'
                         f' (the input of shape {tuple(self.shape)} with dim {d} the index\'s '
                         'length)')
    return _same_dtype(source, self) if len(self.shape) else ops.reshape(source, (-1,))


def index_add(self, dim, index, source, *, alpha=1):
    full, d = _along(self, dim, index, 'index_add')
    src = _source('index_add', self, source, d, len(full[-1]))
    return ops.at_add(self, src if alpha == 1 else src * alpha, full if self.shape else ())


def index_copy(self, dim, index, source):
    full, d = _along(self, dim, index, 'index_copy')
    return ops.at_set(self, _source('index_copy', self, source, d, len(full[-1])),
                      full if self.shape else ())


def index_fill(self, dim, index, value):
    full, d = _along(self, dim, index, 'index_fill')
    if not self.shape:
        return _same_dtype(ops.broadcast_to(value if isinstance(value, Tensor)
                                            else np.asarray(value, self.dtype), ()), self)
    want = tuple(self.shape[:d]) + (len(full[-1]),) + tuple(self.shape[d + 1:])
    v = value if isinstance(value, (Tensor, Tracer)) else np.asarray(value, self.dtype)
    return ops.at_set(self, _same_dtype(ops.broadcast_to(v, want), self), full)


def index_put(self, indices, values, accumulate=False):
    from chainrule._torch_face import _idx_data
    idx = tuple(np.asarray(_concrete(i, 'index_put')) if np.asarray(
        _concrete(i, 'index_put')).dtype == np.bool_ else _idx_data(i, 'index_put')
        for i in indices)
    target = np.broadcast_shapes(*(np.empty(tuple(self.shape))[idx].shape,))
    v = values if isinstance(values, (Tensor, Tracer)) else np.asarray(values, self.dtype)
    v = _same_dtype(ops.broadcast_to(v, target) if tuple(v.shape) != target else v, self)
    return (ops.at_add if accumulate else ops.at_set)(self, v, idx)


def masked_scatter(self, mask, source):
    """The elements of `source`, in order, written where `mask` (broadcast to the input's
    shape) is True."""
    m = np.broadcast_to(_concrete(mask, 'masked_scatter'), tuple(self.shape))
    if m.dtype != np.bool_:
        raise TypeError(f'masked_scatter(): mask must be a bool Tensor, got dtype {m.dtype}')
    k = int(m.sum())
    if k > int(np.prod(source.shape)):
        raise ShapeError(f'masked_scatter(): the mask selects {k} elements, source of shape '
                         f'{tuple(source.shape)} has fewer')
    vals = ops.reshape(source, (-1,))[:k]
    return ops.at_set(self, _same_dtype(vals, self), np.nonzero(m))


def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
    """PyTorch's `scatter_reduce` for reduce='sum' and 'mean' (the others are not here)."""
    if reduce not in ('sum', 'mean'):
        raise ChainruleError(f"scatter_reduce(): reduce={reduce!r} is not supported; 'sum' and "
                             "'mean' are (use 'sum' and divide, or scatter_add)")
    from chainrule._torch_face import _scatter_index, _src_values
    full, idx = _scatter_index(self, dim, index, 'scatter_reduce')
    base = self if include_self else ops.at_set(self, np.zeros((), self.dtype), full)
    out = ops.at_add(base, _src_values(self, src, idx, 'scatter_reduce'), full)
    if reduce == 'mean':
        count = np.zeros(tuple(self.shape), np.int64)
        np.add.at(count, full, 1)
        count = count + (1 if include_self else 0)
        out = out / np.maximum(count, 1).astype(self.dtype)
    return out


# --- scatter into a slice / a diagonal / flat positions ------------------------------------------

def _scatter_into(op, self, src, idx, want):
    if tuple(src.shape) != tuple(want):
        raise ShapeError(f'{op}(): src of shape {tuple(src.shape)} must have shape '
                         f'{tuple(want)} for the input of shape {tuple(self.shape)}')
    return ops.at_set(self, _same_dtype(src, self), idx)


def select_scatter(self, src, dim, index):
    """A copy of the input with `src` written at `index` along `dim`."""
    d = _norm_dim('select_scatter', dim, tuple(self.shape))
    idx = (slice(None),) * d + (int(index),)
    return _scatter_into('select_scatter', self, src, idx, np.empty(self.shape)[idx].shape)


def slice_scatter(self, src, dim=0, start=None, end=None, step=1):
    d = _norm_dim('slice_scatter', dim, tuple(self.shape))
    idx = (slice(None),) * d + (slice(start, end, step),)
    return _scatter_into('slice_scatter', self, src, idx, np.empty(self.shape)[idx].shape)


def diagonal_scatter(self, src, offset=0, dim1=0, dim2=1):
    """A copy of the input with `src` written on its `offset` diagonal (of dims dim1, dim2)."""
    shape = tuple(self.shape)
    a, b = _norm_dim('diagonal_scatter', dim1, shape), _norm_dim('diagonal_scatter', dim2, shape)
    rows, cols = shape[a], shape[b]
    i = np.arange(builtins.max(0, builtins.min(rows + builtins.min(offset, 0),
                                               cols - builtins.max(offset, 0))))
    r, c = i - builtins.min(offset, 0), i + builtins.max(offset, 0)
    # index the two dims with (r, c), the rest with open slices; `diagonal()` puts the diagonal
    # last, NumPy's indexing where the two dims were (adjacent) or first (apart)
    grids = [slice(None)] * len(shape)
    grids[a], grids[b] = r, c
    probe = np.empty(shape)
    want = np.diagonal(probe, offset, a, b).shape
    if tuple(src.shape) != want:
        raise ShapeError(f'diagonal_scatter(): src of shape {tuple(src.shape)} must have '
                         f'shape {want} (the diagonal of the input of shape {shape})')
    moved = _cnp().moveaxis(src, -1, builtins.min(a, b) if builtins.abs(a - b) == 1 else 0)
    if tuple(probe[tuple(grids)].shape) != tuple(moved.shape):    # pragma: no cover
        raise ShapeError(f'diagonal_scatter(): src of shape {tuple(src.shape)} must have '
                         f'shape {want} (the diagonal of the input of shape {shape})')
    return ops.at_set(self, _same_dtype(moved, self), tuple(grids))


def put(self, index, source, accumulate=False):
    """The input with `source` written (added, with `accumulate`) at the flat positions
    `index`."""
    from chainrule._torch_face import _idx_data
    idx = _idx_data(index, 'put').reshape(-1)
    n = int(np.prod(self.shape))
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f'put(): index out of range for a Tensor of {n} elements')
    flat = ops.reshape(self, (-1,))
    src = _same_dtype(ops.reshape(source, (-1,)), self)
    out = (ops.at_add if accumulate else ops.at_set)(flat, src, (idx % builtins.max(n, 1),))
    return ops.reshape(out, tuple(self.shape))


def narrow_copy(self, dim, start, length):
    return self.narrow(dim, start, length).clone()


def nonzero_static(self, *, size, fill_value=-1):
    nz = _concrete(self.nonzero(), 'nonzero_static')
    out = np.full((size, nz.shape[1]), fill_value, np.int64)
    out[:builtins.min(size, len(nz))] = nz[:size]
    return Tensor(out)
