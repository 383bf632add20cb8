"""`Tensor`'s PyTorch face, dtype methods (`float() double() long() int() bool() half()
to(dtype) type(dtype) type_as(other)`) and the `new_*` constructors (a new Tensor of this
one's dtype)."""

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError
from chainrule.tensor import Tensor
from chainrule._torch_common import _sizes


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
