"""`chainrule.numpy`: NumPy's API, differentiable.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2))(cnp.array([0.5, -1.0])).round(4)
    array([ 0.7233, -0.8399])

Every function takes NumPy arrays, Python numbers, `Tensor`s or tracers, with NumPy's names,
signatures (`axis`, `keepdims`, `ddof`) and semantics (broadcasting, NumPy 2 dtype promotion).
With plain arrays and no transform active the result is exactly NumPy's. Everything here is a
composite of the primitives in `chainrule.ops` and has no derivative code of its own.

Differences from NumPy, all deliberate: functions that are not differentiable (`argmax`,
`floor`, comparisons) return constants; indexed assignment is functional (`cnp.at(x)[idx].set(v)`
returns a new array, as in JAX); `sort` differentiates through the permutation it finds.

Where things are, by topic: `_elementwise` (ufuncs and elementwise composites), `_creation`,
`_reductions` (and statistics), `_predicates` (non-differentiable results: indices, truth values,
shapes), `_shape`, `_indexing`, `_products`, `_differences` (differences, integrals, signals);
`linalg` and `fft` are NumPy's submodules. Every public name is re-exported here.
"""

import builtins  # noqa: F401

import numpy as _np  # noqa: F401

from chainrule import ops  # noqa: F401
from chainrule.core import ShapeError, Tracer, concrete, dtype_of, shape_of  # noqa: F401

# NumPy constants and dtypes, so `cnp` can stand in for `np`
# (`float32` and the other scalar types, defined in `_creation`, also cast traced values)
from numpy import (  # noqa: F401
    bool_, dtype, e, euler_gamma, finfo, iinfo, inf, nan, newaxis, pi)
# NumPy's floating-point error state: chainrule computes with NumPy, so it applies as is
from numpy import errstate, geterr, geterrcall, seterr, seterrcall  # noqa: F401

from chainrule.numpy._elementwise import *  # noqa: F401,F403
from chainrule.numpy._creation import *  # noqa: F401,F403
from chainrule.numpy._reductions import *  # noqa: F401,F403
from chainrule.numpy._predicates import *  # noqa: F401,F403
from chainrule.numpy._shape import *  # noqa: F401,F403
from chainrule.numpy._indexing import *  # noqa: F401,F403
from chainrule.numpy._products import *  # noqa: F401,F403
from chainrule.numpy._differences import *  # noqa: F401,F403
from chainrule.numpy import fft, linalg  # noqa: E402,F401
from chainrule.numpy._base import wrap_namespace as _wrap_namespace

# NumPy converts list arguments with `asarray`; so does every function here (see `_base`).
_wrap_namespace(globals())
_wrap_namespace(vars(fft), fft.__all__)
_wrap_namespace(vars(linalg), linalg.__all__)
