"""`jit` and `make_graph`: capture a program once, optimise it, run it as straight-line NumPy.

What you can do with it:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> f = cr.jit(cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2)))
    >>> f(np.array([0.5, -1.0])).round(4)          # traced once, then compiled code runs
    array([ 0.7269, -0.6397])
    >>> print(f.source(np.array([0.5, -1.0])))     # the derivative program  # doctest: +SKIP

`jit(f)` traces `f` once per input signature into a `Graph`
(`chainrule.interpreters.staging`), optimises it, and generates a Python function that calls
NumPy directly: no dispatch, no tape, no tracer per operation. One module per stage:

| stage | module |
|---|---|
| the front end: signatures, the cache, calling the compiled code | `chainrule.jit.frontend` |
| the passes: folding, simplification, CSE, dead code | `chainrule.jit.passes` |
| NumPy code generation | `chainrule.jit.numpy_codegen` |
| the numba backend (fused elementwise kernels) | `chainrule.jit.numba_backend` |
| the `jit_call` primitive and its derived VJP/JVP/batching rules | `chainrule.jit.call` |

Composition. Under `jit`, transforms run at trace time: `jit(grad(f))` stages the whole
backward pass (the reverse interpreter runs on staging tracers, so its rules emit equations).
Called on tracers of another transform (`grad(jit(f))`, `vmap(jit(f))`, a `Tensor` that requires
grad), a jitted function binds one primitive, `jit_call`, whose parameter is the optimised
graph; its rules are derived from the graph.

Backends: `backend='numpy'` (default) or `backend='numba'`, which fuses runs of elementwise
operations into single compiled loops when numba is installed (`pip install chainrule[jit]`);
without numba it falls back silently to NumPy.

Limits: values that code needs concretely (`if x > 0`, a data-dependent index, `argsort` used by
`sort`) cannot be staged: make them static or use `chainrule.lax`. Python-number arguments are
staged as 0-d float64/int64/complex128 arrays. Arrays a jitted function closes over are
constants of its graph, as in JAX: to differentiate with respect to them, pass them as
arguments. `Tensor`s it closes over (a module's parameters) are captured by reference, as
`tf.function` captures variables: extra inputs of the cached program on every call, so
in-place updates are seen and `backward()` reaches them.

Results are the caller's: a jitted function returns arrays of its own, never its argument, a
constant of the program or an array it returns twice (`chainrule.jit.numpy_codegen`).
"""

# the names other modules and tests import from `chainrule.jit`
from chainrule.jit.call import (
    GraphPrimitive, _aval_of_leaf, backward_graph, instantiate_tangents, jit_call_p, jvp_graph)
from chainrule.jit.frontend import (
    CacheInfo, Jitted, _fast_key, _tree_builder, jit, logger, make_graph)
from chainrule.jit.numba_backend import _bcast_index
from chainrule.jit.numpy_codegen import codegen, compiled
from chainrule.jit.passes import dce, optimize

__all__ = ['jit', 'make_graph', 'optimize', 'codegen', 'jit_call_p', 'CacheInfo']
