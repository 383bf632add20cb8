"""`Tensor`'s PyTorch face, shape methods: `size`, `permute`, `transpose(d0, d1)`, `t`,
`flatten`, `unflatten`, `squeeze`, `unsqueeze`, `expand`, `repeat`, `tile`, `narrow`, `split`,
`chunk`, `unbind`, `flip`, `roll`, `contiguous`; the view-returning ones are made of chainrule's
view primitives, so they share the base's memory and version counter."""

import builtins

import numpy as np

from chainrule import ops
from chainrule.core import ShapeError
from chainrule.tensor import Tensor
from chainrule._torch_common import _cnp, _dim_arg, _dims, _norm_dim, _sizes


def size(self, dim=None):
    """PyTorch's `size()`: the shape as a tuple, or `size(dim)`, one dimension's length."""
    shape = tuple(self.shape)
    if dim is None:
        return shape
    return shape[_norm_dim('size', dim, shape)] if shape else 1


def numel(self):
    return int(np.prod(self.shape, dtype=np.int64))


def permute(self, *dims):
    nd = len(self.shape)
    dims = _sizes(dims, 'permute')
    if len(dims) != nd:
        raise ShapeError(f'permute{dims}: a Tensor of shape {tuple(self.shape)} needs {nd} '
                         f'dims, got {len(dims)}')
    perm = tuple(_norm_dim('permute', d, nd) for d in dims)
    if sorted(perm) != list(range(nd)):
        raise ValueError(f'permute{dims}: repeated dim')
    return ops.transpose(self, perm)


def transpose(self, dim0, dim1):
    """PyTorch's `transpose(dim0, dim1)`: swap two dimensions (a view)."""
    nd = len(self.shape)
    if nd == 0:
        _norm_dim('transpose', dim0, 0), _norm_dim('transpose', dim1, 0)
        return ops.transpose(self, ())
    a, b = _norm_dim('transpose', dim0, nd), _norm_dim('transpose', dim1, nd)
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return ops.transpose(self, tuple(perm))


def t(self):
    nd = len(self.shape)
    if nd > 2:
        raise ShapeError(f't(): expects a Tensor with at most 2 dimensions, this one has shape '
                         f'{tuple(self.shape)}; use transpose(d0, d1) or mT')
    return ops.transpose(self, tuple(range(nd))[::-1])


def flatten(self, start_dim=0, end_dim=-1):
    shape = tuple(self.shape)
    if not shape:
        return ops.reshape(self, (1,))
    s, e = _norm_dim('flatten', start_dim, shape), _norm_dim('flatten', end_dim, shape)
    if s > e:
        raise ValueError(f'flatten(): start_dim {start_dim} comes after end_dim {end_dim}')
    return ops.reshape(self, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def unflatten(self, dim, sizes):
    shape = tuple(self.shape)
    d = _norm_dim('unflatten', dim, shape)
    sizes = tuple(int(s) for s in sizes)
    if sizes.count(-1) > 1:
        raise ValueError('unflatten(): only one size may be -1')
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        sizes = tuple(shape[d] // builtins.max(known, 1) if s == -1 else s for s in sizes)
    if int(np.prod(sizes)) != shape[d]:
        raise ShapeError(f'unflatten(): sizes {sizes} do not multiply to the size {shape[d]} of '
                         f'dim {dim} (Tensor of shape {shape})')
    return ops.reshape(self, shape[:d] + sizes + shape[d + 1:])


def squeeze(self, dim=None, *, axis=None):
    """PyTorch's `squeeze`: drop dimensions of size 1 (only those named by `dim`, an int or a
    tuple; a named dimension whose size is not 1 is kept, not an error)."""
    dim = _dim_arg('squeeze', dim, axis)
    shape = tuple(self.shape)
    drop = range(len(shape)) if dim is None else (_dims('squeeze', dim, shape) or ())
    if not shape:
        return ops.reshape(self, ())
    drop = {d for d in drop if shape[d] == 1}
    return ops.reshape(self, tuple(s for i, s in enumerate(shape) if i not in drop))


def unsqueeze(self, dim):
    shape = tuple(self.shape)
    d = _norm_dim('unsqueeze', dim, len(shape) + 1)
    return ops.reshape(self, shape[:d] + (1,) + shape[d:])


def expand(self, *sizes):
    """PyTorch's `expand`: a broadcast view; -1 keeps a dimension's size, new dimensions go in
    front."""
    sizes = _sizes(sizes, 'expand')
    shape = tuple(self.shape)
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise ShapeError(f'expand{sizes}: fewer sizes than the {len(shape)} dimensions of a '
                         f'Tensor of shape {shape}')
    target = []
    for i, s in enumerate(sizes):
        if s == -1:
            if i < lead:
                raise ShapeError(f'expand{sizes}: -1 is not allowed for a new leading dimension')
            s = shape[i - lead]
        elif i >= lead and shape[i - lead] not in (1, s):
            raise ShapeError(f'expand{sizes}: the size {shape[i - lead]} of dimension {i - lead}'
                             f' (Tensor of shape {shape}) must be 1 or match {s}')
        target.append(s)
    return ops.broadcast_to(self, tuple(target))


def expand_as(self, other):
    return expand(self, tuple(other.shape))


def repeat(self, *sizes):
    """PyTorch's `repeat`: tile the whole tensor (NumPy's `tile`, not NumPy's `repeat`, which
    repeats elements: that is `repeat_interleave`)."""
    sizes = _sizes(sizes, 'repeat')
    if len(sizes) < len(self.shape):
        raise ShapeError(f'repeat{sizes}: needs at least as many sizes as the Tensor of shape '
                         f'{tuple(self.shape)} has dimensions')
    return _cnp().tile(self, sizes)


def tile(self, *dims):
    return _cnp().tile(self, _sizes(dims, 'tile'))


def repeat_interleave(self, repeats, dim=None):
    return _cnp().repeat(self, repeats.data if isinstance(repeats, Tensor) else repeats, axis=dim)


def narrow(self, dim, start, length):
    shape = tuple(self.shape)
    d = _norm_dim('narrow', dim, shape)
    start = int(start) + (shape[d] if int(start) < 0 else 0)
    if not (0 <= start and length >= 0 and start + length <= shape[d]):
        raise IndexError(f'narrow(): start {start} + length {length} exceeds the size {shape[d]} '
                         f'of dim {dim} (Tensor of shape {shape})')
    return self[(slice(None),) * d + (slice(start, start + length),)]


def _slices(self, d, cuts):
    return tuple(self[(slice(None),) * d + (slice(a, b),)] for a, b in zip(cuts, cuts[1:]))


def split(self, split_size_or_sections, dim=0):
    shape = tuple(self.shape)
    d = _norm_dim('split', dim, shape)
    n = shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        k = int(split_size_or_sections)
        if k <= 0 and n:
            raise ValueError(f'split(): split_size must be positive, got {k}')
        cuts = list(range(0, n, k)) + [n] if n else [0, 0]
    else:
        sec = [int(s) for s in split_size_or_sections]
        if sum(sec) != n:
            raise ShapeError(f'split(): sections {sec} do not add up to the size {n} of dim '
                             f'{dim} (Tensor of shape {shape})')
        cuts = [0] + list(np.cumsum(sec).tolist())
    return _slices(self, d, cuts)


def chunk(self, chunks, dim=0):
    shape = tuple(self.shape)
    if chunks <= 0:
        raise ValueError(f'chunk(): chunks must be positive, got {chunks}')
    d = _norm_dim('chunk', dim, shape)
    if not shape[d]:
        return split(self, [0], d)
    return split(self, -(-shape[d] // chunks), d)


def unbind(self, dim=0):
    shape = tuple(self.shape)
    d = _norm_dim('unbind', dim, shape)
    return tuple(self[(slice(None),) * d + (i,)] for i in range(shape[d]))


def flip(self, *dims):
    nd = len(self.shape)
    return _cnp().flip(self, axis=tuple(_norm_dim('flip', d, nd) for d in _sizes(dims, 'flip')))


def roll(self, shifts, dims=None):
    return _cnp().roll(self, shifts, axis=dims)


def contiguous(self):
    d = self.data
    if isinstance(d, np.ndarray) and not d.flags.c_contiguous:
        return _cnp().copy(self)
    return self


def is_contiguous(self):
    d = self.data
    return not isinstance(d, np.ndarray) or bool(d.flags.c_contiguous)
