"""Primitives (layer 1): every differentiable operation chainrule knows, declared once each.

`chainrule.ops.elementwise` reads as a table of derivatives; `chainrule.ops.structural` holds
broadcasting, reshaping, indexing, reductions and `matmul`; `chainrule.ops.linalg` and
`chainrule.ops.fft` the matrix and Fourier primitives. The functions exported here are thin
wrappers that check shapes (raising `ShapeError` naming the op and every shape), normalise
arguments and `bind` the primitive; `chainrule.numpy` builds NumPy's API on them.

Adding a primitive: declare it with `Primitive(name, impl, vjp=[...], ...)` next to its
relatives, write its wrapper, and add a row to the op table in `tests/op_table.py`.
"""

import numpy as np

from chainrule.core import Tracer, concrete, dtype_of, registry, shape_of  # noqa: F401


def zeros_like(x):
    return np.zeros(shape_of(x), dtype_of(x))


from chainrule.ops.elementwise import *  # noqa: E402,F401,F403
from chainrule.ops.elementwise import (  # noqa: E402,F401
    abs, add, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cbrt, ceil, conj, cos,
    cosh, div, equal, exp, exp2, expm1, floor, floor_divide, greater, greater_equal, imag, isfinite,
    isinf, isnan, less, less_equal, log, log1p, log2, log10, logical_and, logical_not, logical_or,
    logical_xor, maximum, minimum, mod, mul, neg, not_equal, power, real, rint, round, sign, sin,
    sinh, sqrt, stop_gradient, sub, tan, tanh, trunc, where)
from chainrule.ops.structural import (  # noqa: E402,F401
    astype, at_add, at_set, broadcast_to, concatenate, cumprod, cumsum, getitem, matmul, max,
    normalize_axis, normalize_index, reshape, scatter_add, split, sum, sum_to_shape,
    transpose)

from chainrule.ops import fft, linalg, sorting  # noqa: E402,F401  (matrix, Fourier, sorting)
from chainrule.ops import grad_mode  # noqa: E402,F401  (jit's marker of no_grad() blocks)
from chainrule.ops import methods as _methods  # noqa: E402

_methods.install(Tracer)
