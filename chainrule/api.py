"""Function transforms (layer 4): `grad`, `value_and_grad` and `vjp`.

What you can do with it: differentiate a Python function of NumPy arrays and numbers.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> f = lambda x: cnp.sum(cnp.sin(x) ** 2)
    >>> cr.grad(f)(0.5)                        # 2 sin(x) cos(x) = sin(2x)
    0.8414709848078965

Each transform is written only in terms of an interpreter (`chainrule.interpreters`); inputs
are checked here, once, so interpreters never see a Python float or an integer array.
"""

import numbers

import numpy as np

from chainrule.core import ChainruleError, DTypeError, GradientError, Tracer
from chainrule.interpreters.reverse import vjp_flat

__all__ = ['grad', 'value_and_grad', 'vjp']


def _as_array(x, name, *, holomorphic=False, differentiable=True):
    """A differentiable input as an array; floats and complex numbers become 0-d arrays."""
    if isinstance(x, Tracer):
        dt = x.dtype
    else:
        if not isinstance(x, (np.ndarray, np.generic, numbers.Number)):
            if isinstance(x, (list, tuple)):
                raise TypeError(f'{name} is a {type(x).__name__}; pass a NumPy array '
                                '(np.asarray(...)) or use a pytree-aware transform')
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
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not -nargs <= a < nargs:
            raise ChainruleError(f'argnums={argnums!r} but the function was called with '
                                 f'{nargs} positional argument(s)')
    return single, tuple(a % nargs for a in nums)


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


def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """A function returning `(fun(*args), gradient of fun at args)`.

    Args:
        fun: a function returning a scalar (a 0-d array or number; with `has_aux`, a pair
            `(scalar, aux)`).
        argnums: which positional argument(s) to differentiate: an int, or a tuple of ints
            (then the gradient is a tuple).
        has_aux: `fun` returns `(value, aux)`; the result is `((value, aux), gradient)`.
        holomorphic: `fun` is complex-differentiable; inputs must be complex and the gradient is
            the complex derivative. Without it, a complex input of a real-valued `fun` gets the
            conjugate of the derivative in z-bar convention (JAX's): for `abs(z)**2` at `1+2j`
            the gradient is `2-4j`.

    Returns:
        A function of the same arguments as `fun`. Gradients have the inputs' shapes and dtypes;
        a Python float input gets a float gradient. A `fun` that does not depend on an input
        gives zeros for it.
    """
    def vg(*args, **kwargs):
        single, nums = _argnums_tuple(argnums, len(args))
        args = list(args)
        raw = [args[i] for i in nums]
        arrs = [_as_array(args[i], f'argument {i} of {getattr(fun, "__name__", "fun")}',
                          holomorphic=holomorphic) for i in nums]

        def flat(*xs):
            call = list(args)
            for i, x in zip(nums, xs):
                call[i] = x
            out = fun(*call, **kwargs)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise ChainruleError('has_aux=True needs fun to return a pair (value, aux)')
                return [out[0], _Aux(out[1])]
            return [out]

        outs, pullback = vjp_flat(flat, arrs)
        value = outs[0]
        _check_scalar(value, holomorphic)
        one = np.ones((), dtype=_dtype(value))
        gs = pullback([one, None] if has_aux else [one])
        grads = tuple(_restore(g, r, a) for g, r, a in zip(gs, raw, arrs))
        grads = grads[0] if single else grads
        value = _unwrap(value)
        if has_aux:
            return (value, outs[1].value), grads
        return value, grads

    vg.__name__ = f'value_and_grad({getattr(fun, "__name__", "fun")})'
    vg.__doc__ = fun.__doc__
    return vg


class _Aux:
    """Carries `has_aux` data through `vjp_flat` untouched."""

    __slots__ = ('value',)

    def __init__(self, value):
        self.value = value


def _dtype(x):
    return x.dtype if isinstance(x, (np.ndarray, np.generic, Tracer)) else np.result_type(x)


def _unwrap(v):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v[()]
    return v


def _check_scalar(value, holomorphic):
    shape = value.shape if isinstance(value, (np.ndarray, np.generic, Tracer)) else np.shape(value)
    if shape != ():
        raise GradientError(
            f'grad needs a function with a scalar output, but it returned shape {shape}. '
            'For the derivative of every output use cr.jacrev (or cr.jacfwd); for a '
            'vector-Jacobian product use cr.vjp; to differentiate the sum, return its .sum().')
    dt = _dtype(value)
    if dt.kind == 'c' and not holomorphic:
        raise GradientError(
            'grad of a complex-valued function needs holomorphic=True (its complex derivative); '
            'for a real-valued function of complex inputs return a real number (e.g. abs(z)**2 '
            'or z.real)')
    if dt.kind not in 'fc':
        raise GradientError(f'grad needs a floating output, but the function returned dtype {dt}')


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
    """Run `fun(*primals)` and return `(out, vjp_fn)` where `vjp_fn(ct)` gives one cotangent
    per primal (a tuple), `ct` having the shape of `out`.

    `fun` here takes and returns arrays (or a tuple of arrays as output, with `ct` then a
    tuple too)."""
    arrs = [_as_array(p, f'primal {i}') for i, p in enumerate(primals)]
    multi = []

    def flat(*xs):
        out = fun(*xs)
        aux = None
        if has_aux:
            out, aux = out
        if isinstance(out, (tuple, list)):
            multi.append(True)
            res = list(out)
        else:
            multi.append(False)
            res = [out]
        return res + ([_Aux(aux)] if has_aux else [])

    outs, pullback = vjp_flat(flat, arrs)
    aux = outs.pop().value if has_aux else None
    is_multi = multi[0]

    def vjp_fn(ct):
        cts = list(ct) if is_multi else [ct]
        if len(cts) != len(outs):
            raise ChainruleError(f'vjp_fn expects {len(outs)} cotangent(s), got {len(cts)}')
        for c, o in zip(cts, outs):
            if np.shape(c) != np.shape(o):
                raise ChainruleError(f'vjp_fn: cotangent shape {np.shape(c)} does not match the '
                                     f'output shape {np.shape(o)}')
        gs = pullback(cts + ([None] if has_aux else []))
        return tuple(_restore(g, p, a) for g, p, a in zip(gs, primals, arrs))

    out = tuple(outs) if is_multi else outs[0]
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)
