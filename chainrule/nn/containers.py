"""`ModuleList`, `ModuleDict` and `ParameterList`, as PyTorch's.

Each entry is stored as an attribute named by its index (`'0'`, `'1'`, ...) or key, so the
module walk, `state_dict` names (`'0.weight'`, as PyTorch's), `parameters()`, pytree
flattening and `load_state_dict` treat the entries like any other member.
"""

from chainrule.nn.modules import Module, Parameter
from chainrule.tensor import Tensor

__all__ = ['ModuleList', 'ModuleDict', 'ParameterList']


class _IndexedList(Module):
    _kind = Module
    _what = 'a Module'

    def __init__(self, items=None):
        super().__init__()
        for v in items or ():
            self.append(v)

    def _check(self, v):
        if not isinstance(v, self._kind):
            raise TypeError(f'{type(self).__name__} holds only {self._what}s, got '
                            f'{type(v).__name__}')
        return v

    def __len__(self):
        return sum(1 for k in vars(self) if k.isdigit())

    def _index(self, i):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f'{type(self).__name__} index {i} is out of range (length {n})')
        return str(i % n)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return type(self)([self[j] for j in range(len(self))[i]])
        return getattr(self, self._index(i))

    def __setitem__(self, i, v):
        setattr(self, self._index(i), self._check(v))

    def __iter__(self):
        return iter([getattr(self, str(j)) for j in range(len(self))])

    def append(self, v):
        setattr(self, str(len(self)), self._check(v))
        return self

    def extend(self, items):
        for v in items:
            self.append(v)
        return self


class ModuleList(_IndexedList):
    """A list of modules whose parameters belong to the enclosing module (`0.weight`, ...)."""

    def insert(self, index, module):
        items = list(self)
        items.insert(index, self._check(module))
        for j, m in enumerate(items):
            setattr(self, str(j), m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError('ModuleList has no forward(); iterate over it')


class ParameterList(_IndexedList):
    """A list of parameters (a Tensor given is made a `Parameter`)."""

    _kind = Tensor
    _what = 'Tensor'

    def _check(self, v):
        v = super()._check(v)
        return v if isinstance(v, Parameter) else Parameter(v)


class ModuleDict(Module):
    """A dict of modules keyed by strings; keys are the names in `state_dict`."""

    def __init__(self, modules=None):
        super().__init__()
        for k, v in dict(modules or {}).items():
            self[k] = v

    def __setitem__(self, key, module):
        if not isinstance(key, str) or not key or key.startswith('_') or '.' in key:
            raise KeyError(f'ModuleDict keys must be non-empty strings without dots that do not '
                           f'start with "_", got {key!r}')
        if not isinstance(module, Module):
            raise TypeError(f'ModuleDict holds only Modules, got {type(module).__name__}')
        setattr(self, key, module)

    def __getitem__(self, key):
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key):
        return isinstance(key, str) and isinstance(vars(self).get(key), Module)

    def __len__(self):
        return len(self.keys())

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return [k for k, v in self._members() if isinstance(v, Module)]

    def values(self):
        return [getattr(self, k) for k in self.keys()]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def forward(self, *args, **kwargs):
        raise NotImplementedError('ModuleDict has no forward(); index it')
