"""Gradient checkpointing (rematerialisation): trade compute for memory in reverse mode.

What this module lets you do: wrap a function with `cr.checkpoint` (alias `cr.remat`) so that
reverse mode keeps only its inputs and outputs, not the intermediate arrays it computes; the
backward pass re-runs the function to get them back. For a deep network checkpointed block by
block, the memory held between the forward and the backward pass falls from every activation to
the block boundaries, for the price of one more forward pass.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> def block(x):
    ...     for _ in range(10):
    ...         x = cnp.tanh(x) * 1.1      # ten intermediates reverse mode would keep
    ...     return x
    >>> x = np.linspace(-1, 1, 5)
    >>> g1 = cr.grad(lambda x: cnp.sum(cr.checkpoint(block)(x)))(x)
    >>> g2 = cr.grad(lambda x: cnp.sum(block(x)))(x)
    >>> bool(np.allclose(g1, g2))
    True

How it works. A checkpointed call with traced arguments binds the `checkpoint_call` primitive,
whose `impl` just calls the function (on the unboxed values, so the enclosing reverse trace
records one node, not the function's operations). Its VJP runs the function again under a fresh
reverse trace (`vjp_flat`) and pulls the cotangent back through that short-lived tape, which is
dropped as soon as the node's cotangents are out. Forward mode pushes tangents through the
function (`jvp_flat`), storing nothing. Because the re-run uses chainrule ops on the saved
inputs, derivatives of derivatives work: an enclosing `grad` records the re-run. Under `vmap`
the call is bound again with the function vectorised, so a batch is checkpointed as one call.

The function must receive every differentiated value as an argument; other closed-over values
are constants. Closing over a differentiated value raises an error saying so when an argument is
traced, and warns (`CallBypassedWarning`: nothing is checkpointed) when none is. With `Tensor`s
and `chainrule.nn`, pass the parameters themselves, e.g.
`cr.checkpoint(lambda x, w, b: cnp.tanh(x @ w.T + b))(x, layer.weight, layer.bias)`: a module
passed whole flattens to its parameters' data, which `backward()` does not track.
"""

from chainrule.core import Primitive
from chainrule.custom import (
    CallWrapper, batch_call_rule, per_arg_vjp, pull_back, vectorised_fun)

__all__ = ['checkpoint', 'remat']


def _checkpoint_impl(*leaves, call):
    return tuple(call.call_flat(call.fns[0], leaves))


def _checkpoint_all_cts(g, out, leaves, call):
    # re-run the function on its saved inputs under a fresh reverse trace, and pull g back
    return pull_back(lambda xs: call.call_flat(call.fns[0], xs), list(leaves), list(g))


def _checkpoint_jvp(tangents, out, *leaves, call):
    from chainrule.interpreters.forward import jvp_flat
    _, ts = jvp_flat(lambda *xs: call.call_flat(call.fns[0], xs), list(leaves), list(tangents))
    return tuple(ts)


checkpoint_call_p = Primitive(
    'checkpoint_call', _checkpoint_impl, multiple_results=True, jvp=_checkpoint_jvp,
    vjp=per_arg_vjp(_checkpoint_all_cts),
    doc='A function whose intermediates reverse mode recomputes instead of storing '
        '(see chainrule.checkpoint).')

checkpoint_call_p.batch = batch_call_rule(
    checkpoint_call_p, lambda call, vals, dims, size: (vectorised_fun(call, dims, size),))


class _Checkpointed(CallWrapper):
    kind = 'checkpoint'
    prim = checkpoint_call_p
    bypassed = 'nothing is checkpointed (the gradient is still right)'

    def _fns(self, full, static):
        return (full(self.fun),)


def checkpoint(fun=None, *, static_argnums=()):
    """Make reverse mode recompute `fun`'s intermediates in the backward pass.

    Args:
        fun: a function of pytrees of arrays (written with `chainrule.numpy` or `Tensor`
            methods) returning a pytree of arrays. Can be used as `@checkpoint` or
            `@checkpoint(static_argnums=...)`.
        static_argnums: positions of arguments that are not arrays (flags, sizes); they are
            passed through unchanged and never traced.

    Returns:
        A function with `fun`'s signature and results. Under `grad`/`vjp`/`Tensor.backward`
        the values saved for the backward pass are `fun`'s inputs and outputs only; the
        backward pass runs `fun` once more. Outside any transform it is `fun`.
    """
    if fun is None:
        return lambda f: checkpoint(f, static_argnums=static_argnums)
    return _Checkpointed(fun, static_argnums)


remat = checkpoint
