"""`Tensor`'s PyTorch face: the methods PyTorch defines on `torch.Tensor`, with PyTorch's meaning.

Every tracer gets NumPy's array methods from `chainrule/ops/methods.py` (the traced values inside
`grad`, `vmap` and `jit` keep them). `Tensor` is the PyTorch front end, so where PyTorch defines
a method name its meaning wins on `Tensor` (`install` below overrides the NumPy-faced ones on
the `Tensor` class only):

- shape: `size() view reshape permute transpose(d0, d1) t() T mT flatten(start_dim, end_dim)
  unflatten squeeze(dim) unsqueeze expand expand_as repeat tile chunk split(size, dim) narrow
  unbind contiguous dim() ndim numel()`. The ones that return views (`permute`, `transpose`,
  `t`, `expand`, `narrow`, `unbind`, `chunk`, `split`, `flatten`, `squeeze`, `unsqueeze`,
  `unflatten`) are made of chainrule's view primitives (transpose, reshape, broadcast_to,
  basic indexing), so they share the base's memory and version counter (`chainrule._views`).
- reductions take `dim=`/`keepdim=` (and, as PyTorch does, `axis=`/`keepdims=`); `std`/`var`
  default to `correction=1` as PyTorch's (NumPy's `ddof=` is accepted as its spelling);
  `max`/`min` with a `dim` return `(values, indices)`; `cumsum` needs its `dim`.
- `sort` returns `(values, indices)`; `nonzero()` an `(n, ndim)` index Tensor.
- math methods and their in-place `_` forms, dtype methods (`float() double() long() int()
  bool() half() to(dtype) type(dtype) type_as(other)`), indexing helpers (`gather scatter
  scatter_add index_select masked_fill masked_select where nonzero`), `new_*`.

The rest of PyTorch's everyday methods (`add(other, alpha=)`, `eq`, `maximum`, `lerp`, `addmm`,
`tril`, `topk`, `median`, `index_add`, `inverse`, ... and their in-place forms) are in
`chainrule/_torch_methods.py` (with `_torch_shape.py` and `_torch_stats.py`), and the top-level
spellings `cr.NAME(input, ...)` in `chainrule/_torch_functions.py`.

NumPy-only names that PyTorch does not define (`astype`, `ravel`, `swapaxes`, `clip`, `dot`, ...)
keep working. Dtype promotion stays NumPy 2's (a float32 Tensor times a Python float stays
float32, as in PyTorch; times a 0-d float64 Tensor it is float64, where PyTorch keeps float32).
"""

import builtins
import collections
import numbers

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, ShapeError, Tracer
from chainrule.tensor import Tensor, _views

# torch.return_types.max / min / sort / topk ...: named tuples with `values` and `indices`
values_indices = collections.namedtuple('values_indices', ['values', 'indices'])


# --- argument spelling -------------------------------------------------------------------------

def _dim_arg(op, dim, axis, default=None):
    """PyTorch's `dim=` or its alias `axis=`, not both."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f'{op}(): got both dim={dim!r} and axis={axis!r}; pass one')
        return axis
    return default if dim is None else dim


def _keep_arg(keepdim, keepdims):
    return bool(keepdim or keepdims)


class DimError(ShapeError, IndexError):
    """A `dim` out of range: a `ShapeError`, and an `IndexError` as PyTorch raises."""


def _norm_dim(op, dim, ndim):
    """One dimension index in [0, ndim) (0-d tensors accept 0 and -1, as PyTorch's); `ndim`
    may be the shape itself (then the error names it)."""
    shape = None
    if isinstance(ndim, tuple):
        shape, ndim = ndim, len(ndim)
    n = builtins.max(ndim, 1)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f'{op}(): dim must be an int, got {dim!r}')
    if not -n <= dim < n:
        of = f'of shape {tuple(shape)}' if shape is not None else f'with {ndim} dimension(s)'
        raise DimError(f'{op}: dim {dim} is out of range for a Tensor {of} (expected a dim in '
                       f'[{-n}, {n - 1}])')
    return int(dim) % n


def _dims(op, dim, ndim):
    """`dim` (None, an int, or a sequence of ints) as a sorted tuple of axes, None for all."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None          # PyTorch: an empty dim list reduces over every dimension
        out = tuple(sorted({_norm_dim(op, d, ndim) for d in dim}))
        if len(out) != len(dim):
            raise ValueError(f'{op}(): dim {tuple(dim)} names a dimension twice')
        return out
    return (_norm_dim(op, dim, ndim),)


def _axis(dims, ndim):
    """`_dims`' result as the axis of a NumPy-style reduction (0-d tensors reduce nothing)."""
    if dims is None or ndim == 0:
        return None
    return dims


def _sizes(args, op):
    """`f(2, 3)` or `f((2, 3))` or `f([2, 3])`, as PyTorch's size arguments."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for s in args:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f'{op}(): sizes must be ints, got {args!r}')
    return tuple(int(s) for s in args)


def _tensor(out, like):
    """A result as a Tensor of `like`'s trace: the non-differentiable functions of
    chainrule.numpy (argmax, all, ...) hand back plain arrays."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Tracer) and out._trace.level > like._trace.level:
        return out      # staged by a jit that captures `like` (see `chainrule.jit`)
    return Tensor._wrap(np.asarray(out) if isinstance(out, np.generic) else out, None,
                        like._trace)


_CNP = None


def _cnp():
    global _CNP
    if _CNP is None:
        import chainrule.numpy as cnp
        _CNP = cnp
    return _CNP


# --- shape ---------------------------------------------------------------------------------------

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


# --- reductions ----------------------------------------------------------------------------------

def _reduce(self, name, dim, axis, keepdim, keepdims, **kw):
    """`chainrule.numpy`'s reduction `name` over PyTorch's `dim` (or `axis`)."""
    if kw.get('out', 1) is None:        # np.sum(t) calls t.sum(..., out=None)
        del kw['out']
    if axis is not None or dim is not None:
        shape = self.shape
        dim = _dim_arg(name, dim, axis)
        if type(dim) is int and shape:      # the common case, kept cheap
            axis = _norm_dim(name, dim, tuple(shape))
        else:
            axis = _axis(_dims(name, dim, tuple(shape)), len(shape))
    out = getattr(_CNP or _cnp(), name)(self, axis=axis, keepdims=keepdim or keepdims, **kw)
    return out if type(out) is Tensor else _tensor(out, self)


def _reduction(name):
    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False, **kw):
        return _reduce(self, name, dim, axis, keepdim, keepdims, **kw)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}(dim=None, keepdim=False)` (`axis=`/`keepdims=` are '
                      'accepted as aliases).')
    return method


def logsumexp(self, dim, keepdim=False, *, axis=None, keepdims=False):
    return _reduce(self, 'logsumexp', dim, axis, keepdim, keepdims)


def prod(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    return _reduce(self, 'prod', dim, axis, keepdim, keepdims, dtype=dtype)


def _moments(name):
    def method(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
               keepdims=False, ddof=None, **kw):
        if isinstance(dim, bool):       # the overload std(unbiased: bool)
            dim, unbiased = None, dim
        given = [c for c in (unbiased, correction, ddof) if c is not None]
        if len(given) > 1:
            raise TypeError(f'{name}(): pass one of unbiased=, correction= (or ddof=)')
        corr = 1 if not given else (int(given[0]) if unbiased is None else int(bool(unbiased)))
        return _reduce(self, name, dim, axis, keepdim, keepdims, ddof=corr, **kw)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}(dim=None, *, correction=1, keepdim=False)`: the '
                      'default is the unbiased estimate (NumPy\'s `ddof=1`).')
    return method


def _arg_reduction(name):
    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        dim = _dim_arg(name, dim, axis)
        keep = _keep_arg(keepdim, keepdims)
        nd = len(self.shape)
        if dim is None:
            out = _tensor(getattr(_cnp(), name)(ops.reshape(self, (-1,))), self)
            return ops.reshape(out, (1,) * nd) if keep else out
        d = _norm_dim(name, dim, nd)
        if nd == 0:
            return _tensor(np.zeros((), np.int64), self)
        return _tensor(getattr(_cnp(), name)(self, axis=d, keepdims=keep), self)
    method.__name__ = method.__qualname__ = name
    return method


argmax = _arg_reduction('argmax')
argmin = _arg_reduction('argmin')


def _extremum(name, fn_elementwise):
    arg = _arg_reduction('arg' + name)

    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        if isinstance(dim, (Tensor, np.ndarray, Tracer)):      # max(other): elementwise
            return fn_elementwise(self, dim)
        dim = _dim_arg(name, dim, axis)
        if dim is None:
            return getattr(_cnp(), name)(self)
        keep = _keep_arg(keepdim, keepdims)
        nd = len(self.shape)
        d = _norm_dim(name, dim, nd)
        if nd == 0:
            return values_indices(self, arg(self, 0))
        idx = arg(self, d, True)
        vals = _cnp().take_along_axis(self, idx, axis=d)
        if not keep:
            vals, idx = ops.reshape(vals, _drop(self.shape, d)), ops.reshape(idx, _drop(
                self.shape, d))
        return values_indices(vals, idx)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}()`: the {name}imum of all elements; `{name}(dim, '
                      'keepdim=False)`: a named tuple `(values, indices)`; `{name}(other)`: '
                      'elementwise.')
    return method


def _drop(shape, d):
    return tuple(shape[:d]) + tuple(shape[d + 1:])




def cumsum(self, dim=None, *, dtype=None, axis=None):
    dim = _dim_arg('cumsum', dim, axis)
    if dim is None:
        raise TypeError('cumsum(): missing the dim argument (PyTorch requires it; '
                        'flatten() first for a cumulative sum over every element)')
    nd = len(self.shape)
    d = _norm_dim('cumsum', dim, nd)
    out = _cnp().cumsum(self, axis=d if nd else None, dtype=dtype)
    return ops.reshape(out, ()) if nd == 0 else out


def cumprod(self, dim=None, *, dtype=None, axis=None):
    dim = _dim_arg('cumprod', dim, axis)
    if dim is None:
        raise TypeError('cumprod(): missing the dim argument (PyTorch requires it)')
    nd = len(self.shape)
    d = _norm_dim('cumprod', dim, nd)
    out = _cnp().cumprod(self, axis=d if nd else None, dtype=dtype)
    return ops.reshape(out, ()) if nd == 0 else out


def norm(self, p='fro', dim=None, keepdim=False, dtype=None):
    """PyTorch's `norm(p='fro', dim=None, keepdim=False)`: a vector norm over `dim` (all
    elements when None); 'fro' is the 2-norm of the elements, `p` may be any number, inf or
    -inf. (Matrix norms: `chainrule.numpy.linalg.norm`.)"""
    cnp = _cnp()
    x = self if dtype is None else ops.astype(self, dtype)
    dims = _axis(_dims('norm', dim, len(self.shape)), len(self.shape))
    keep = bool(keepdim)
    a = ops.abs(x)
    if p == 'fro' or p == 2:
        return ops.sqrt(cnp.sum(a * a, axis=dims, keepdims=keep))
    if p == 'nuc':
        return cnp.linalg.norm(x, 'nuc', axis=dims, keepdims=keep)
    if p == np.inf or p == float('inf'):
        return cnp.amax(a, axis=dims, keepdims=keep)
    if p == -np.inf:
        return cnp.amin(a, axis=dims, keepdims=keep)
    if p == 0:
        return cnp.sum(ops.astype(ops.not_equal(x, 0), a.dtype), axis=dims, keepdims=keep)
    if p == 1:
        return cnp.sum(a, axis=dims, keepdims=keep)
    return cnp.sum(a ** p, axis=dims, keepdims=keep) ** (1.0 / p)


def sort(self, dim=-1, descending=False, stable=False):
    """PyTorch's `sort`: a named tuple `(values, indices)` (NumPy's sorts in place)."""
    cnp = _cnp()
    nd = len(self.shape)
    if nd == 0:
        return values_indices(self, argmax(self))
    d = _norm_dim('sort', dim, nd)
    idx = _tensor(cnp.argsort(-self if descending else self, axis=d, kind='stable'), self)
    return values_indices(cnp.take_along_axis(self, idx, axis=d), idx)


def argsort(self, dim=-1, descending=False, stable=False):
    return sort(self, dim, descending, stable).indices


# --- math ----------------------------------------------------------------------------------------

def _F():
    from chainrule.nn import functional
    return functional


def clamp(self, min=None, max=None):
    """PyTorch's `clamp`: nan stays nan; the gradient passes where min <= x <= max. (Made of
    `where`, whose rule reads only the condition, so `clamp_` needs no copy of the old values.)"""
    if min is None and max is None:
        raise ValueError('clamp(): at least one of min and max must be given')
    cnp = _cnp()
    out = self
    if min is not None:
        out = _same_dtype(cnp.where(ops.less(out, min), min, out), self)
    if max is not None:
        out = _same_dtype(cnp.where(ops.greater(out, max), max, out), self)
    return out


def pow_(self, exponent):
    return self ** exponent


def softmax(self, dim, dtype=None):
    x = self if dtype is None else ops.astype(self, dtype)
    return _F().softmax(x, _norm_dim('softmax', dim, tuple(self.shape)))


def log_softmax(self, dim, dtype=None):
    x = self if dtype is None else ops.astype(self, dtype)
    return _F().log_softmax(x, _norm_dim('log_softmax', dim, tuple(self.shape)))


def _checked_matmul(name, nd):
    def method(self, other):
        if len(self.shape) != nd or len(other.shape) != nd:
            raise ShapeError(f'{name}(): expects {nd}-D Tensors, got shapes {tuple(self.shape)}'
                             f' and {tuple(other.shape)}')
        return ops.matmul(self, other)
    method.__name__ = method.__qualname__ = name
    return method


UNARY = {
    # (rsqrt and reciprocal as powers: their in-place forms then overwrite the argument that
    # the rule saved first, which the in-place machinery keeps a copy of)
    'exp': ops.exp, 'log': ops.log, 'sqrt': ops.sqrt, 'rsqrt': lambda x: x ** -0.5,
    'sigmoid': lambda x: _F().sigmoid(x), 'tanh': ops.tanh, 'relu': lambda x: _F().relu(x),
    'abs': ops.abs, 'neg': ops.neg, 'negative': ops.neg, 'reciprocal': lambda x: x ** -1.0,
    'sin': ops.sin, 'cos': ops.cos, 'square': lambda x: x * x, 'exp2': lambda x: 2.0 ** x,
    'log2': lambda x: _cnp().log2(x), 'log10': lambda x: _cnp().log10(x),
    'log1p': lambda x: _cnp().log1p(x), 'expm1': lambda x: _cnp().expm1(x),
    'tan': lambda x: _cnp().tan(x), 'floor': lambda x: _cnp().floor(x),
    'ceil': lambda x: _cnp().ceil(x), 'sign': lambda x: _cnp().sign(x),
    'trunc': lambda x: _cnp().trunc(x), 'erf': lambda x: _F().erf(x),
}


def _unary(name, fn):
    def method(self):
        return fn(self)
    method.__name__ = method.__qualname__ = name
    return method


def _inplace(name, fn):
    """`x.exp_()` and friends: `fn(x, *args)` written into x (recorded like `x *= y`)."""
    def method(self, *args, **kwargs):
        return _views.inplace(self, lambda a, _: _same_dtype(fn(a, *args, **kwargs), a), None,
                              name)
    method.__name__ = method.__qualname__ = name
    return method


def _same_dtype(res, a):
    return res if res.dtype == a.dtype else ops.astype(res, a.dtype)


# --- dtype ---------------------------------------------------------------------------------------

def _cast(dtype):
    def method(self):
        return self if self.dtype == dtype else ops.astype(self, dtype)
    method.__name__ = np.dtype(dtype).name
    return method


def to(self, *args, dtype=None, copy=False, **kwargs):
    """PyTorch's `to(dtype)` / `to(other)` / `to(device)`: devices other than the CPU do not
    exist here ('cpu' is accepted and ignored)."""
    target = dtype
    for a in args:
        if isinstance(a, Tensor):
            target = a.dtype
        elif isinstance(a, str) and a.split(':')[0] in ('cpu', 'cuda', 'mps', 'xpu', 'meta'):
            from chainrule._torch_methods import check_device
            check_device(a, 'to()')
            continue
        elif type(a).__name__ == 'device':        # chainrule's or PyTorch's device object
            from chainrule._torch_methods import check_device
            check_device(str(a), 'to()')
            continue
        elif a is not None:
            try:
                target = np.dtype(a)
            except TypeError:
                raise ChainruleError(f'to({a!r}): only dtypes and the device "cpu" are '
                                     'supported') from None
    kwargs.pop('non_blocking', None)
    dev = kwargs.pop('device', None)
    if kwargs or (dev is not None and str(dev).split(':')[0] != 'cpu'):
        raise ChainruleError(f'to(): unsupported arguments {kwargs or {"device": dev}}; '
                             'chainrule runs on the CPU only')
    out = self if target is None or np.dtype(target) == self.dtype else ops.astype(self, target)
    return out.clone() if copy and out is self else out


def type_(self, dtype=None):
    if dtype is None:
        return f'chainrule.{self.dtype.name}'
    return to(self, dtype)


def type_as(self, other):
    return to(self, other.dtype)


# --- indexing helpers ----------------------------------------------------------------------------

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


def _new(fill):
    def method(self, *size, dtype=None, requires_grad=False, fill_value=None):
        if fill == 'full':
            size, fill_value = (size[0], size[1]) if len(size) == 2 else (size[0], fill_value)
            size = _sizes((size,), 'new_full')
            value = fill_value
        else:
            size = _sizes(size, 'new_' + fill)
            value = {'zeros': 0, 'ones': 1, 'empty': 0}[fill]
        return Tensor(np.full(size, value, dtype=self.dtype if dtype is None else dtype),
                      requires_grad=requires_grad)
    method.__name__ = 'new_' + fill
    return method


def new_tensor(self, data, dtype=None, requires_grad=False):
    return Tensor(np.array(data.data if isinstance(data, Tensor) else data,
                           dtype=self.dtype if dtype is None else dtype),
                  requires_grad=requires_grad)


# --- installation --------------------------------------------------------------------------------

METHODS = {
    'size': size, 'numel': numel, 'nelement': numel, 'permute': permute,
    'transpose': transpose, 't': t, 'flatten': flatten, 'unflatten': unflatten,
    'squeeze': squeeze, 'unsqueeze': unsqueeze, 'expand': expand, 'expand_as': expand_as,
    'repeat': repeat, 'tile': tile, 'repeat_interleave': repeat_interleave, 'narrow': narrow,
    'split': split, 'chunk': chunk, 'unbind': unbind, 'contiguous': contiguous,
    'is_contiguous': is_contiguous, 'flip': flip, 'roll': roll,
    'sum': _reduction('sum'), 'mean': _reduction('mean'), 'std': _moments('std'),
    'var': _moments('var'), 'max': _extremum('max', ops.maximum),
    'min': _extremum('min', ops.minimum), 'amax': _reduction('amax'),
    'amin': _reduction('amin'), 'all': _reduction('all'), 'any': _reduction('any'),
    'argmax': argmax, 'argmin': argmin, 'prod': prod, 'cumsum': cumsum,
    'cumprod': cumprod, 'logsumexp': logsumexp, 'norm': norm,
    'sort': sort, 'argsort': argsort,
    'clamp': clamp, 'clip': clamp, 'pow': pow_, 'softmax': softmax, 'log_softmax': log_softmax,
    'matmul': lambda self, other: ops.matmul(self, other),
    'mm': _checked_matmul('mm', 2), 'bmm': _checked_matmul('bmm', 3),
    'float': _cast(np.float32), 'double': _cast(np.float64), 'half': _cast(np.float16),
    'long': _cast(np.int64), 'int': _cast(np.int32), 'short': _cast(np.int16),
    'bool': _cast(np.bool_), 'to': to, 'type': type_, 'type_as': type_as,
    'gather': gather, 'scatter': scatter, 'scatter_add': scatter_add,
    'index_select': index_select, 'masked_fill': masked_fill, 'masked_select': masked_select,
    'where': where, 'nonzero': nonzero,
    'new_zeros': _new('zeros'), 'new_ones': _new('ones'), 'new_empty': _new('empty'),
    'new_full': _new('full'), 'new_tensor': new_tensor,
}

INPLACE = {name + '_': fn for name, fn in UNARY.items() if name not in ('negative', 'erf')}
INPLACE.update({'clamp_': clamp, 'clip_': clamp, 'pow_': pow_,
                'masked_fill_': masked_fill, 'scatter_': scatter, 'scatter_add_': scatter_add})


def install(cls=Tensor):
    for name, fn in UNARY.items():
        setattr(cls, name, _unary(name, fn))
    for name, fn in METHODS.items():
        setattr(cls, name, fn)
    for name, fn in INPLACE.items():
        setattr(cls, name, _inplace(name, fn))
    cls.mT = property(lambda self: ops.transpose(
        self, tuple(range(len(self.shape) - 2)) + (len(self.shape) - 1, len(self.shape) - 2)))


install()


# --- the documentation table ---------------------------------------------------------------------

# names whose NumPy meaning (ndarray's method, and the traced values' inside transforms) is not
# PyTorch's: on Tensor they mean PyTorch's thing
DIFFERS = {
    'transpose': "NumPy: `transpose(*axes)` permutes", 'repeat': "NumPy: repeats elements",
    'size': 'NumPy: an int property', 'flatten': 'NumPy: no start/end dims',
    'squeeze': 'NumPy: raises for a size > 1 axis', 'std': 'NumPy: ddof=0 by default',
    'var': 'NumPy: ddof=0 by default', 'max': 'NumPy: values only over an axis',
    'min': 'NumPy: values only over an axis', 'sort': 'NumPy: sorts in place, returns None',
    'nonzero': 'NumPy: a tuple of index arrays', 'cumsum': 'NumPy: flattens without axis',
    'cumprod': 'NumPy: flattens without axis', 'view': "NumPy: reinterprets the dtype",
}


def method_table(torch_names=None):
    """Markdown: every public `Tensor` method/attribute and whose meaning it has. `torch_names`
    (the names `torch.Tensor` defines; PyTorch's own set when it is installed) tells a
    NumPy-faced name PyTorch shares (same meaning: 'both') from a NumPy-only one."""
    if torch_names is None:
        import torch
        torch_names = set(dir(torch.Tensor))
    ours = set(METHODS) | set(UNARY) | set(INPLACE) | {'mT'}
    rows = []
    for name in sorted(n for n in dir(Tensor) if not n.startswith('_')):
        if name in ours or name in Tensor.__dict__ or name in ('ndim', 'T'):
            face = 'PyTorch'
        else:
            face = 'both' if name in torch_names else 'NumPy only'
        note = DIFFERS.get(name, '`dim=`/`keepdim=` (`axis=`/`keepdims=` accepted)' if name in (
            'sum', 'mean', 'all', 'any', 'prod', 'amax', 'amin', 'argmax', 'argmin') else '')
        rows.append(f'| `{name}` | {face} | {note} |')
    return '| name | meaning | note |\n|---|---|---|\n' + '\n'.join(rows) + '\n'
