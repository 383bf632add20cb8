"""Helpers shared by the topic modules of `chainrule.numpy`: is a value traced, its concrete
values when NumPy can take them, and the error for a function that needs values."""

import builtins
import types

from chainrule.core import ConcretizationError as _ConcretizationError
from chainrule.core import Tracer, bind, concrete, registry


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


# --- lists of traced values -----------------------------------------------------------------
# NumPy converts every array argument with `asarray`, so `np.mean([x, x + 2])` stacks the list.
# A list holding traced values cannot go to NumPy (that would lose the derivative), so every
# public function of `chainrule.numpy` is wrapped once, when the package is imported, by
# `lists_as_arrays`: such a list (or tuple, nested) is stacked with `cnp.asarray` first. Only
# lists and tuples are looked at, so the eager path pays one type check per argument.

# Parameters that take a sequence of arrays (of possibly different shapes), not one array-like:
# these stay lists, and the function itself handles the traced values in them.
SEQUENCE_PARAMETERS = {
    'concatenate': {0, 'arrays'}, 'concat': {0, 'arrays'}, 'stack': {0, 'arrays'},
    'hstack': {0, 'tup'}, 'vstack': {0, 'tup'}, 'row_stack': {0, 'tup'}, 'dstack': {0, 'tup'},
    'column_stack': {0, 'tup'}, 'select': {0, 1, 'condlist', 'choicelist'},
    'multi_dot': {0, 'arrays'}, 'array': {0, 'obj'}, 'asarray': {0, 'obj'},
}


def _contains_tracer(obj):
    todo = [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, Tracer):
            return True
        if isinstance(o, (list, tuple)):
            todo.extend(o)
    return False


def lists_as_arrays(fn, name=None, arrays_only=False):
    """`fn` with every list or tuple argument that holds a traced value converted as NumPy's
    `asarray` would (the traced values stacked); other arguments pass through untouched. With
    `arrays_only` (a primitive's function: every argument is an array), plain lists are
    converted too, as NumPy converts them."""
    keep = SEQUENCE_PARAMETERS.get(name or fn.__name__, ())
    seq = (list, tuple)

    def convert(key, a):
        if a.__class__ in seq and key not in keep and (arrays_only or _contains_tracer(a)):
            return _asarray(a)
        return a

    def f(*args, **kwargs):
        for a in args:
            if a.__class__ in seq:
                break
        else:
            for a in kwargs.values():
                if a.__class__ in seq:
                    break
            else:
                return fn(*args, **kwargs)
        args = [convert(i, a) for i, a in enumerate(args)]
        return fn(*args, **{k: convert(k, a) for k, a in kwargs.items()})

    f.__name__, f.__qualname__, f.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    f.__module__, f.__wrapped__, f._lists_as_arrays = fn.__module__, fn, True
    return f


def _primitive_fn(fn):
    """For a primitive's own function from `chainrule.ops` (`exp`, `add`): the same function,
    binding the same primitive, with the list check inline -- the eager path pays no extra
    Python call. None for any other function."""
    from chainrule.ops import elementwise
    prim, seq = registry.get(fn.__name__), (list, tuple)
    if fn.__qualname__ == '_unary_fn.<locals>.f' and prim is not None:
        def f(x):
            if x.__class__ in seq:
                x = _asarray(x)
            return bind(prim, x)
    elif fn.__qualname__ == '_binary_fn.<locals>.f' and prim is not None:
        binary = elementwise._binary

        def f(x, y):
            if x.__class__ in seq:
                x = _asarray(x)
            if y.__class__ in seq:
                y = _asarray(y)
            return binary(prim, x, y)
    else:
        return None
    f.__name__, f.__qualname__, f.__doc__ = fn.__name__, fn.__name__, fn.__doc__
    f.__module__, f.__wrapped__, f._lists_as_arrays = fn.__module__, fn, True
    return f


def _asarray(x):
    from chainrule.numpy._creation import asarray
    return asarray(x)


def wrap_namespace(namespace, names=None):
    """Apply `lists_as_arrays` to the public functions (or to `names`) in `namespace` (a
    module's dict) that `chainrule.numpy` or `chainrule.ops` define; NumPy's own functions
    (`arange`, `zeros`), helpers imported from the core, and classes are left alone."""
    for name in names or [n for n in namespace if not n.startswith('_')]:
        fn = namespace[name]
        if (isinstance(fn, types.FunctionType) and not hasattr(fn, '_lists_as_arrays')
                and fn.__module__.startswith(('chainrule.numpy', 'chainrule.ops'))):
            arrays_only = fn.__module__.startswith('chainrule.ops') and name != 'stop_gradient'
            namespace[name] = (arrays_only and _primitive_fn(fn)) or lists_as_arrays(
                fn, name, arrays_only)
