"""Helpers shared by the topic modules of `chainrule.numpy`: is a value traced, its concrete
values when NumPy can take them, and the error for a function that needs values."""

import builtins

from chainrule.core import concrete, ConcretizationError as _ConcretizationError, Tracer


def _is_traced(*xs):
    return builtins.any(isinstance(x, Tracer) for x in xs)


def _values(*xs):
    """The concrete arrays behind `xs` when NumPy can take them directly -- plain values, and
    `Tensor`s holding concrete data (the eager path stays NumPy's) -- or None: then the caller
    binds the primitives of `chainrule.ops.sorting`, which `vmap`, `jit` and `grad` see."""
    out = []
    for x in xs:
        if isinstance(x, Tracer):
            if not getattr(x, '_is_tensor', False):
                return None
            try:
                x = concrete(x)
            except _ConcretizationError:
                return None
        out.append(x)
    return out


def _concrete_for(op, why, x):
    """`concrete(x)`, with an error saying why `op` needs the values when there are none."""
    try:
        return concrete(x)
    except _ConcretizationError as e:
        raise _ConcretizationError(f'{op}: {why}, so it cannot be computed on batched (vmap) or '
                                   f'abstract (jit) values. {e}') from None
