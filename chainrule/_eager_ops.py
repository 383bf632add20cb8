"""`Tensor`'s arithmetic operators (`+ - * /`, reflected too), with a fast path for the case
that dominates eager code: two Tensors of one shape and dtype, or a floating Tensor and a
Python number.

In general `t * u` goes through `chainrule.ops.mul`: broadcasting and dtype promotion
(`chainrule.ops.elementwise._binary`), `bind` choosing the trace, and `EagerTrace.process`
checking for a `jit` that captures the Tensors. When both operands are Tensors of one eager
trace holding NumPy arrays of one shape and one dtype, or one is a floating Tensor holding an
array and the other a Python int or float (weak: the result keeps the Tensor's dtype), none of
that machinery changes anything: no broadcast, no cast, and the trace `bind` would choose is the
Tensors' own. The operator then checks only what still matters -- a `jit` being traced that
captures the Tensor (`core.capturing_trace`) and a diagnostic mode that checks every result
(`core._eager_hook`) both send it down the general path -- calls the ufunc and records the
result with `EagerTrace._record2`, the very code the general path ends in, so both record the
same node (parents, saved values, version checks, grad mode). Everything else (broadcasting,
mixed dtypes, traced data, NumPy scalars, another operand type) takes the general path.
`tests/test_eager_fastpath.py` drives both paths on the same inputs.
"""

import numpy as np

from chainrule import core as _core
from chainrule.core import capturing_trace
from chainrule.ops import elementwise as _elementwise
from chainrule.ops.methods import OPERATORS
from chainrule.tensor import Tensor

_ndarray = np.ndarray
_NUMBERS = (int, float)     # weak Python numbers (exact types: bool and complex are not here)
_NO_PARAMS = {}             # (the primitives below take no parameters; never written to)
_capturing = capturing_trace.get     # (a bound method made once, not per call)


def _operator(name, prim, reflected=False):
    general = OPERATORS[name]
    ufunc = prim.impl

    def op(self, other):
        d = self.data
        if type(d) is _ndarray and _core._eager_hook is None:
            trace = self._trace
            if isinstance(other, Tensor):
                e = other.data
                if (other._trace is trace and type(e) is _ndarray and d.dtype is e.dtype
                        and d.shape == e.shape and not reflected):
                    cap = _capturing()
                    if cap is None or cap.level <= trace.level:
                        return trace._record2(prim, _NO_PARAMS, self, other, d, e, ufunc(d, e))
            elif type(other) in _NUMBERS and d.dtype.kind in 'fc':
                cap = _capturing()
                if cap is None or cap.level <= trace.level:
                    if reflected:
                        return trace._record2(prim, _NO_PARAMS, None, self, other, d,
                                              ufunc(other, d))
                    return trace._record2(prim, _NO_PARAMS, self, None, d, other,
                                          ufunc(d, other))
        return general(self, other)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = general.__doc__
    return op


for _name, _prim in (('add', _elementwise.add_p), ('sub', _elementwise.sub_p),
                     ('mul', _elementwise.mul_p), ('truediv', _elementwise.div_p)):
    setattr(Tensor, f'__{_name}__', _operator(f'__{_name}__', _prim))
    setattr(Tensor, f'__r{_name}__', _operator(f'__r{_name}__', _prim, reflected=True))
