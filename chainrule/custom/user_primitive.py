"""`primitive`: a new primitive operation, with its own rules, declared from user code."""

from chainrule.core import ChainruleError, MissingRuleError, PerArg, Primitive, bind, registry


_NO_VJP = object()   # `vjp` not given (unlike vjp=None, which declares the op not differentiable)


def _missing_vjp(name):
    def rule(i, g, out, *args, **params):
        raise MissingRuleError(
            f'primitive {name!r} has no VJP rule for argument {i}, so reverse mode (grad, vjp, '
            f'backward(), and forward mode when no jvp rule is given) cannot differentiate '
            f'it. Pass vjp=[...] to cr.custom.primitive, or vjp=None if {name!r} is not '
            'differentiable (its outputs are then constants).')
    return PerArg(rule)


def primitive(name, impl, *, vjp=_NO_VJP, jvp=None, elementwise=False, linear=False, batch=None,
              multiple_results=False, shape=None, doc=''):
    """Register a new primitive operation with its own rules, from user code.

    A primitive is the unit every transform understands: chainrule never looks inside
    `impl`, it only applies the rules given here. Use it for an operation chainrule lacks
    (a special function, a call into compiled code); for a different derivative of a
    function written with chainrule ops, `custom_jvp`/`custom_vjp` are simpler.

    Args:
        name: a unique name (used in errors, printed graphs and the registry).
        impl: the NumPy computation `impl(*arrays, **static_params)`.
        vjp: a list with one rule per positional argument, `rule(g, out, *args, **params)`
            returning that argument's cotangent (`None` where not differentiable). Write rules
            with `chainrule.numpy`, so that derivatives of derivatives work. `vjp=None`
            declares the op not differentiable (in every mode: its outputs are constants);
            leaving `vjp` out makes reverse mode a `MissingRuleError` naming the primitive
            (not a silent zero gradient), while `jvp`/`linear` still serve forward mode.
        jvp: a list with one rule per argument, `rule(t, out, *args, **params)` -- optional:
            `elementwise=True` (the VJP rules read forwards), `linear=True` (the op is its own
            derivative), or, failing those, forward mode transposes the VJP rules.
        batch: optional `vmap` rule `batch(args, dims, **params) -> (out, out_dim)`; without
            one, `vmap` loops over the batch.
        multiple_results, shape, doc: as for `chainrule.core.Primitive`.

    Returns:
        A function `f(*args, **params)` that binds the primitive (the `Primitive` object is
        `f.primitive`).

    Example -- the Gauss error function with SciPy's implementation:

        >>> import math, numpy as np, chainrule as cr, chainrule.numpy as cnp
        >>> erf = cr.custom.primitive(
        ...     'my_erf', np.vectorize(math.erf, otypes=[float]),
        ...     vjp=[lambda g, out, x: g * 2 / np.sqrt(np.pi) * cnp.exp(-x * x)],
        ...     elementwise=True)
        >>> round(float(cr.grad(lambda x: erf(x))(0.0)), 6)       # 2 / sqrt(pi)
        1.128379
        >>> round(float(cr.grad(cr.grad(lambda x: erf(x)))(1.0)), 6)   # -2x * 2/sqrt(pi) e^-x^2
        -0.830215
    """
    if name in registry:
        raise ChainruleError(f'a primitive named {name!r} is already registered; choose another '
                             'name (names are global, like the primitives of chainrule.ops)')
    if vjp is _NO_VJP:
        vjp = _missing_vjp(name)
    prim = Primitive(name, impl, vjp=vjp, jvp=jvp, elementwise=elementwise, linear=linear,
                     batch=batch, multiple_results=multiple_results, shape=shape, doc=doc)

    def f(*args, **params):
        return bind(prim, *args, **params)

    f.__name__ = name
    f.__doc__ = doc or f'the primitive {name}'
    f.primitive = prim
    return f
