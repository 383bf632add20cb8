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

Where each part lives: `_torch_face_shape` (shape methods), `_torch_face_reductions`
(reductions, `max`/`min` with indices, `sort`, `norm`), `_torch_face_math` (math methods, the
`UNARY` table), `_torch_face_dtype` (dtype methods, `new_*`), `_torch_face_indexing` (`gather`,
`scatter`, `masked_fill`, ...), and `_torch_common` (argument spelling: `dim=`/`axis=`, sizes,
results as Tensors). This module installs them all on `Tensor` and writes the method table of
the documentation.
"""

import numpy as np

from chainrule import ops
from chainrule.tensor import Tensor, _views
from chainrule._torch_common import (  # noqa: F401  (the helpers' old home: other modules use it)
    DimError, _axis, _cnp, _dim_arg, _dims, _keep_arg, _norm_dim, _same_dtype, _sizes,
    _tensor, values_indices)
from chainrule._torch_face_dtype import _cast, _new, new_tensor, to, type_, type_as
from chainrule._torch_face_indexing import (  # noqa: F401
    _idx_data, _mask, _scatter_index, _src_values, gather, index_select, masked_fill,
    masked_select, nonzero, scatter, scatter_add, where)
from chainrule._torch_face_math import (  # noqa: F401
    _BOOL, _FLOAT_OF_BOOL, UNARY, _F, _checked_matmul, clamp, log_softmax, pow_, softmax)
from chainrule._torch_errors import guard
from chainrule._torch_face_reductions import (  # noqa: F401
    _arg_reduction, _drop, _extremum, _moments, _reduce, _reduction, argmax, argmin, argsort,
    cumprod, cumsum, logsumexp, norm, prod, sort)
from chainrule._torch_face_shape import (  # noqa: F401
    _slices, chunk, contiguous, expand, expand_as, flatten, flip, is_contiguous, narrow, numel,
    permute, repeat, repeat_interleave, roll, size, split, squeeze, t, tile, transpose, unbind,
    unflatten, unsqueeze)


# --- installation --------------------------------------------------------------------------------

def _inplace(name, fn):
    """`x.exp_()` and friends: `fn(x, *args)` written into x (recorded like `x *= y`)."""
    def method(self, *args, **kwargs):
        return _views.inplace(self, lambda a, _: _same_dtype(fn(a, *args, **kwargs), a), None,
                              name)
    method.__name__ = method.__qualname__ = name
    return method


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
    # every method behind one boundary: bad input gets a chainrule error (`_torch_errors`)
    for name, fn in UNARY.items():
        setattr(cls, name, guard(name, fn, unary=True, float_of_bool=name in _FLOAT_OF_BOOL))
    for name, fn in METHODS.items():
        setattr(cls, name, guard(name, fn))
    for name, fn in INPLACE.items():
        setattr(cls, name, guard(name, _inplace(name, fn)))
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
        shared = getattr(Tensor.__dict__.get(name), 'numpy_faced', False)
        if (name in ours or name in Tensor.__dict__ or name in ('ndim', 'T')) and not shared:
            face = 'PyTorch'
        else:
            face = 'both' if name in torch_names else 'NumPy only'
        note = DIFFERS.get(name, '`dim=`/`keepdim=` (`axis=`/`keepdims=` accepted)' if name in (
            'sum', 'mean', 'all', 'any', 'prod', 'amax', 'amin', 'argmax', 'argmin') else '')
        rows.append(f'| `{name}` | {face} | {note} |')
    return '| name | meaning | note |\n|---|---|---|\n' + '\n'.join(rows) + '\n'
