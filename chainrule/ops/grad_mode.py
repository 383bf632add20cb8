"""The `no_grad` primitive: how a staged program (`jit`) remembers grad mode.

A value computed inside a `no_grad()` block while `jit` stages a function is marked with it
(`chainrule.interpreters.staging`), so that every derivative of the compiled program treats
the block as the same function run eagerly would: reverse mode (`backward()`, `grad`, `vjp`)
gets no cotangent through it, as PyTorch's grad mode; forward mode (`jvp`, `jacfwd`) carries
its tangent through, since grad mode does not govern PyTorch's forward AD. When the program
runs, it is the identity (the generated code passes its argument on).
"""

import numpy as np

from chainrule.core import dtype_of, shape_of
from chainrule.ops.elementwise import _elementwise

__all__ = ['no_grad_p']

no_grad_p = _elementwise('no_grad', lambda x: x,
                         vjp=[lambda g, ans, x: np.zeros(shape_of(x), dtype_of(g))],
                         jvp=lambda ts, out, x: ts[0])
