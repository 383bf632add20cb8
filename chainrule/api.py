"""Function transforms (layer 4): `grad`, `value_and_grad` and `vjp`.

What you can do with it: differentiate a Python function of NumPy arrays and numbers.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> f = lambda x: cnp.sum(cnp.sin(x) ** 2)
    >>> cr.grad(f)(0.5)                        # 2 sin(x) cos(x) = sin(2x)
    0.8414709848078965

Arguments and results may be pytrees (nested tuples, lists, dicts, `None`, registered classes;
see `chainrule.tree`): they are flattened here, once, and the interpreters see flat lists of
arrays. Each transform is written only in terms of an interpreter (`chainrule.interpreters`);
inputs are checked here, so interpreters never see a Python float or an integer array.

    >>> params = {'w': 2.0, 'b': 1.0}
    >>> cr.grad(lambda p, x: (p['w'] * x + p['b']) ** 2)(params, 3.0)
    {'b': 14.0, 'w': 42.0}
"""

import numbers

import numpy as np

from chainrule import _args, ops
from chainrule._results import owned
from chainrule._tensor_face_args import faced_for
from chainrule.core import ChainruleError, DTypeError, OutputTypeError, Tracer
from chainrule.interpreters.reverse import vjp_flat
from chainrule.tree import (keystr, tree_flatten, tree_flatten_with_path, tree_map,
                            tree_structure, tree_unflatten)

__all__ = ['grad', 'value_and_grad', 'vjp', 'stop_gradient']


def _as_array(x, name, *, holomorphic=False, differentiable=True):
    """A differentiable input as an array; floats and complex numbers become 0-d arrays."""
    if isinstance(x, Tracer):
        dt = x.dtype
    else:
        if not isinstance(x, (np.ndarray, np.generic, numbers.Number)):
            raise TypeError(f'{name} has type {type(x).__name__}; chainrule differentiates '
                            'NumPy arrays, Python floats and complex numbers')
        x = np.asarray(x)
        dt = x.dtype
    if differentiable and dt.kind not in 'fc':
        raise DTypeError(f'{name} has dtype {dt}, and only floating or complex inputs have '
                         'gradients. Pass a float (e.g. 2.0 instead of 2, or '
                         'x.astype(np.float64)), or leave it out of argnums.')
    if holomorphic and dt.kind != 'c':
        raise DTypeError(f'{name} has dtype {dt}, but holomorphic=True needs complex inputs; '
                         'convert with x.astype(complex)')
    return x


def _argnums_tuple(argnums, nargs):
    return _args.argnums(argnums, nargs)


def _distinct_argnums(nums):
    """The distinct argnums, in order, and for each requested one its index among them:
    `argnums=(0, 0)` asks for argument 0's derivative twice (JAX gives it twice)."""
    uniq = tuple(dict.fromkeys(nums))
    return uniq, [uniq.index(a) for a in nums]


def _per_request(per_arg, where):
    """One result per requested argnum; a repeated one is a copy, since each result is the
    caller's to modify."""
    out, seen = [], set()
    for k in where:
        r = per_arg[k]
        out.append(tree_map(_copy_array, r) if k in seen else r)
        seen.add(k)
    return out


def _copy_array(x):
    return x.copy() if isinstance(x, np.ndarray) else x


def _is_numeric_leaf(x):
    return isinstance(x, (Tracer, np.ndarray, np.generic, numbers.Number)) or \
        getattr(x, '_is_tensor', False)


def check_output_leaves(out, leaves, transform, fname):
    """Raise OutputTypeError naming the first leaf of output `out` (flattened: `leaves`) that
    is not a number, an array or a traced value (a string, an object array, ...): there is
    nothing to differentiate, and NumPy's own message would not say so."""
    for k, x in enumerate(leaves):
        if _is_numeric_leaf(x) and ops.dtype_of(x).kind in 'biufc':
            continue
        path = tree_flatten_with_path(out)[0][k][0]
        where = f' at {keystr(path)}' if path else ''
        what = f'dtype {x.dtype}' if isinstance(x, np.ndarray) else f'type {type(x).__name__}'
        raise OutputTypeError(f'{transform} needs {fname} to return arrays or numbers (a pytree '
                              f'of them), but its output{where} has {what}: {x!r:.60}')


def _restore(g, x_in, x_arr):
    """A gradient in the form of its input: a Python float for a float, the input's dtype."""
    dt = x_arr.dtype
    if g is None:
        g = np.zeros(np.shape(x_arr), dt)
    elif isinstance(g, Tracer):
        return g
    else:
        g = np.asarray(g)
        if g.dtype != dt:
            g = (g.real if dt.kind != 'c' and g.dtype.kind == 'c' else g).astype(dt)
    if isinstance(x_in, numbers.Number) and not isinstance(x_in, np.generic):
        return complex(g) if dt.kind == 'c' else float(g)
    return g


def _flatten_diff_args(args, nums, fname, holomorphic):
    """Flatten the differentiated arguments (pytrees) into one list of checked array leaves.

    Returns:
        (raw leaves, array leaves, treedef per argument)
    """
    raw, arrs, defs = [], [], []
    for i in nums:
        leaves, td = tree_flatten(args[i])
        defs.append(td)
        raw.extend(leaves)
        for k, leaf in enumerate(leaves):
            if type(leaf) is np.ndarray and leaf.dtype.kind == 'f' and not holomorphic:
                arrs.append(leaf)       # the common case, checked without naming it
                continue
            try:
                arrs.append(_as_array(leaf, '', holomorphic=holomorphic))
            except (DTypeError, TypeError):
                # raise again, naming the argument and the leaf's key path
                where = f'argument {i} of {fname}'
                path = tree_flatten_with_path(args[i])[0][k][0]
                _as_array(leaf, f'{where}, at {keystr(path)},' if path else where,
                          holomorphic=holomorphic)
                raise
    return raw, arrs, defs


def _unflatten_per_arg(defs, flat):
    """Split a flat list of leaves back into one pytree per argument."""
    out, start = [], 0
    for td in defs:
        out.append(tree_unflatten(td, flat[start:start + td.num_leaves]))
        start += td.num_leaves
    return out


def _call_with(fun, args, kwargs, nums, defs, xs):
    """`fun(*args)` with the differentiated arguments rebuilt from the flat leaves `xs`."""
    call = list(args)
    for i, x in zip(nums, _unflatten_per_arg(defs, list(xs))):
        call[i] = x
    return fun(*call, **kwargs)


def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """A function returning `(fun(*args), gradient of fun at args)`.

    Args:
        fun: a function returning a scalar (a 0-d array or number; with `has_aux`, a pair
            `(scalar, aux)`, where `aux` may be any pytree).
        argnums: which positional argument(s) to differentiate: an int, or a tuple of ints
            (then the gradient is a tuple, one entry per entry of `argnums`: a repeated
            argument gets its gradient again, as in JAX). A differentiated argument may be a
            pytree (nested tuples, lists, dicts, registered classes) of float or complex arrays
            and numbers; its gradient has the same structure.
        has_aux: `fun` returns `(value, aux)`; the result is `((value, aux), gradient)`.
        holomorphic: `fun` is complex-differentiable; inputs must be complex and the gradient is
            the complex derivative. Without it, a complex input of a real-valued `fun` gets the
            conjugate of the derivative in z-bar convention (JAX's): for `abs(z)**2` at `1+2j`
            the gradient is `2-4j`.

    Returns:
        A function of the same arguments as `fun`. Gradients have the inputs' structures,
        shapes and dtypes; a Python float input gets a float gradient. A `fun` that does not
        depend on an input gives zeros for it.

    Raises:
        OutputTypeError: (a `TypeError` and a `GradientError`) `fun` returned something other
            than a real scalar: `None`, a string, a list, a dict, an array of more than one
            element, a complex number without `holomorphic=True`, or an integer or boolean.
    """
    fname = getattr(fun, '__name__', 'fun')
    _args.check_argnums(argnums)

    def vg(*args, **kwargs):
        single, nums = _argnums_tuple(argnums, len(args))
        nums, where = _distinct_argnums(nums)
        raw, arrs, defs = _flatten_diff_args(args, nums, fname, holomorphic)
        aux_def = []
        faced = faced_for(fun, args)

        def flat(*xs):
            out = _call_with(faced, args, kwargs, nums, defs, xs)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise ChainruleError('has_aux=True needs fun to return a pair (value, aux)')
                aux_leaves, td = tree_flatten(out[1])
                aux_def.append(td)
                return [_scalar_output(out[0], fname, has_aux)] + aux_leaves
            return [_scalar_output(out, fname, has_aux)]

        outs, pullback = vjp_flat(flat, arrs)
        value = outs[0]
        _check_scalar(value, holomorphic)
        one = np.ones((), dtype=_dtype(value))
        # the one pullback of this graph: saved values are freed as it goes (lower peak
        # memory, and the allocator reuses the freed buffers for the cotangents)
        gs = pullback([one] + [None] * (len(outs) - 1), retain_graph=False)
        grads = _unflatten_per_arg(defs, owned(
            [_restore(g, r, a) for g, r, a in zip(gs, raw, arrs)], arrs))
        grads = _per_request(grads, where)
        grads = grads[0] if single else tuple(grads)
        value = _unwrap(value)
        if has_aux:     # (the function's own values, constants included: copied)
            aux = owned(outs[1:], arrs, copy=range(len(outs) - 1))
            return (value, tree_unflatten(aux_def[0], aux)), grads
        return value, grads

    vg.__name__ = f'value_and_grad({fname})'
    vg.__doc__ = fun.__doc__
    return vg


def _dtype(x):
    return x.dtype if isinstance(x, (np.ndarray, np.generic, Tracer)) else np.result_type(x)


def _unwrap(v):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v[()]
    return v


def _scalar_output(out, fname, has_aux):
    """`out` if it is something `grad` can differentiate (a number, an array, a traced value);
    otherwise an OutputTypeError saying what grad needs (None, a string, a list, a dict, ...)."""
    if _is_numeric_leaf(out):
        return out
    if out is None:
        got = 'None (is a return statement missing?)'
    elif isinstance(out, (tuple, list, dict)):
        got = f'a {type(out).__name__} of {len(out)} item(s)'
        if isinstance(out, tuple) and len(out) == 2 and not has_aux:
            got += ('; for a pair (value, auxiliary data) pass has_aux=True')
        elif not isinstance(out, dict):
            got += '; for the derivative of every entry use cr.jacrev, or return their sum'
        else:
            got += '; for the derivative of every entry use cr.jacrev'
    else:
        got = f'a {type(out).__name__} ({out!r:.40})'
    raise OutputTypeError(
        f'grad needs {fname} to return a real scalar (a float, a 0-d array or a traced value '
        f'of shape ()), but it returned {got}')


def _check_scalar(value, holomorphic):
    shape = value.shape if isinstance(value, (np.ndarray, np.generic, Tracer)) else np.shape(value)
    if shape != ():
        raise OutputTypeError(
            f'grad needs a function with a scalar output, but it returned shape {shape}. '
            'For the derivative of every output use cr.jacrev (or cr.jacfwd); for a '
            'vector-Jacobian product use cr.vjp; to differentiate the sum, return its .sum().')
    dt = _dtype(value)
    if dt.kind == 'c' and not holomorphic:
        raise OutputTypeError(
            'grad of a complex-valued function needs holomorphic=True (its complex derivative); '
            'for a real-valued function of complex inputs return a real number (e.g. abs(z)**2 '
            'or z.real)')
    if dt.kind not in 'fc':
        raise OutputTypeError(f'grad needs a floating output, but the function returned dtype '
                              f'{dt}: an integer or boolean result has no derivative (it is '
                              'piecewise constant); return a float')


def grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """The gradient of scalar function `fun` (see `value_and_grad` for the arguments).

        >>> import chainrule as cr
        >>> cr.grad(lambda x, y: x * y, argnums=(0, 1))(3.0, 4.0)
        (4.0, 3.0)
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic)

    def g(*args, **kwargs):
        (value, grads) = vg(*args, **kwargs)
        if has_aux:
            return grads, value[1]
        return grads

    g.__name__ = f'grad({getattr(fun, "__name__", "fun")})'
    g.__doc__ = fun.__doc__
    return g


def vjp(fun, *primals, has_aux=False):
    """Run `fun(*primals)` and return `(out, vjp_fn)` -- reverse mode as a function.

    Args:
        fun: a function of pytrees of float/complex arrays, returning a pytree of arrays (with
            `has_aux`, a pair `(out, aux)`).
        *primals: the point to linearise at; each may be a pytree.
        has_aux: `fun` returns `(out, aux)`; the result is then `(out, vjp_fn, aux)`.

    Returns:
        `(out, vjp_fn)`: `vjp_fn(ct)` takes a cotangent with the structure and shapes of `out`
        and returns a tuple with one cotangent per primal, each with that primal's structure.
        `vjp_fn` can be called any number of times.

        >>> import chainrule as cr, numpy as np
        >>> out, f_vjp = cr.vjp(lambda p: {'y': p['a'] * p['b']}, {'a': 2.0, 'b': 3.0})
        >>> f_vjp({'y': 1.0})
        ({'a': 3.0, 'b': 2.0},)
    """
    nums = tuple(range(len(primals)))
    fname = getattr(fun, '__name__', 'fun')
    raw, arrs, defs = _flatten_diff_args(primals, nums, fname, False)
    out_def = []
    faced = faced_for(fun, primals)

    def flat(*xs):
        out = _call_with(faced, primals, {}, nums, defs, xs)
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise ChainruleError('has_aux=True needs fun to return a pair (out, aux)')
            out, aux = out
        leaves, td = tree_flatten(out)
        check_output_leaves(out, leaves, 'vjp', fname)
        aux_leaves, aux_td = tree_flatten(aux)
        out_def.append((td, aux_td))
        return leaves + aux_leaves

    outs, pullback = vjp_flat(flat, arrs)
    # the caller gets copies: the backward pass keeps the outputs it was recorded with
    outs = owned(outs, arrs, copy=range(len(outs)))
    out_td, aux_td = out_def[0]
    n_out = out_td.num_leaves
    aux = tree_unflatten(aux_td, outs[n_out:]) if has_aux else None
    outs = outs[:n_out]

    def vjp_fn(ct):
        try:
            cts = out_td.flatten_up_to(ct)
        except ValueError:
            raise ChainruleError(f'vjp_fn: the cotangent has structure {tree_structure(ct)}, '
                                 f'but the output has structure {out_td}') from None
        for c, o in zip(cts, outs):
            if np.shape(c) != np.shape(o):
                raise ChainruleError(f'vjp_fn: cotangent shape {np.shape(c)} does not match the '
                                     f'output shape {np.shape(o)}')
        gs = pullback(list(cts) + [None] * (len(outs) - n_out))
        return tuple(_unflatten_per_arg(defs, owned(
            [_restore(g, r, a) for g, r, a in zip(gs, raw, arrs)], arrs + list(cts))))

    out = tree_unflatten(out_td, outs)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def stop_gradient(x):
    """`x` unchanged, but seen by every transform as a constant (its derivative is zero).

    Args:
        x: an array, tracer or pytree of them.

    Returns:
        The same values, detached from differentiation.
    """
    return tree_map(ops.stop_gradient, x)
