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

Under the function transforms (`grad`, `vjp`, `vmap`, `jit`) the function must receive every
differentiated value as an argument; other closed-over values are constants. Closing over a
differentiated value raises an error saying so when an argument is traced, and warns
(`CallBypassedWarning`: nothing is checkpointed) when none is.

Eager `Tensor` code is checkpointed on the Tensor tape instead, as PyTorch does, so it may close
over parameters: `cr.checkpoint(block)(x)` with `block` a module (or a function using modules)
records one node whose parents are the arguments and the parameters the block reached, keeps
only the block's outputs, and re-runs the block in `backward()`. `backward(create_graph=True)`
through it needs the differentiated Tensors as arguments.
"""

from chainrule.core import GradientError, Primitive, Tracer
from chainrule.custom import (
    CallParams, CallWrapper, batch_call_rule, per_arg_vjp, pull_back, vectorised_fun)
from chainrule.interpreters.reverse import Node, _projection_node, backprop
from chainrule.random._staged import RngStates
from chainrule.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = ['checkpoint', 'remat']


class _CheckpointParams(CallParams):
    """A checkpointed call's parameter, with the states of the random generators its first
    run drew from (`rng`), so that every re-run draws the same numbers (dropout's mask): the
    derivative is then that of the values the first run returned."""

    __slots__ = ('rng',)

    def __init__(self, *args):
        super().__init__(*args)
        self.rng = RngStates()


def _checkpoint_impl(*leaves, call):
    with call.rng.watching():
        return tuple(call.call_flat(call.fns[0], leaves))


def _checkpoint_all_cts(g, out, leaves, call):
    # re-run the function on its saved inputs under a fresh reverse trace, and pull g back
    with call.rng.replaying():
        return pull_back(lambda xs: call.call_flat(call.fns[0], xs), list(leaves), list(g))


def _checkpoint_jvp(tangents, out, *leaves, call):
    from chainrule.interpreters.forward import jvp_flat
    with call.rng.replaying():
        _, ts = jvp_flat(lambda *xs: call.call_flat(call.fns[0], xs), list(leaves),
                         list(tangents))
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
    params = _CheckpointParams
    bypassed = 'nothing is checkpointed (the gradient is still right)'
    converts = True     # values `fun` closes over become inputs of the checkpointed call

    def _fns(self, full, static, rule):
        return (full(self.fun),)

    def _direct(self, leaves):
        # eager Tensor code (no transform traces any argument) is checkpointed on the Tensor
        # tape itself, where closed-over parameters are visible; see _checkpoint_tape
        for x in leaves:
            if isinstance(x, Tracer) and not (getattr(x, '_is_tensor', False)
                                              and not isinstance(x.data, Tracer)):
                return False
        return True

    def _call_direct(self, args, leaves):
        from chainrule.tensor import is_grad_enabled
        if not is_grad_enabled():
            return self.fun(*args)
        start = Node(None, None, (), None, None).seq
        rng = RngStates()
        with rng.watching():
            out = self.fun(*args)
        return _checkpoint_tape(self, args, out, start, rng)


# --- checkpointing Tensor code -----------------------------------------------------------------
#
# Tensor code records its operations on the Tensor tape as it runs, and it may use Tensors it
# closes over (a module's parameters) as well as its arguments. So a checkpointed call of Tensor
# code runs the function normally, then replaces the part of the tape it recorded by one node:
# its parents are the nodes where that part of the tape began (the arguments, and the leaves it
# reached, such as parameters); its saved values are only the outputs. The recorded part is then
# dropped. In the backward pass the node runs the function again, with grad enabled and fresh
# leaves for the arguments, and pulls the cotangent back through that short-lived tape to its
# parents. (PyTorch's torch.utils.checkpoint works the same way.)

def _plain_containers(x):
    """Pytree `is_leaf` that opens only tuples, lists and dicts: a module passed as an argument
    is kept whole, with its own parameters."""
    return not isinstance(x, (tuple, list, dict))


def _is_tensor(x):
    return getattr(x, '_is_tensor', False)


def _checkpoint_tape(ck, args, out, start, rng):
    """Replace the tape `ck.fun(*args)` recorded after node number `start` by one node."""
    from chainrule.tensor import Tensor
    out_leaves, out_tree = tree_flatten(out)
    roots = [o._node for o in out_leaves
             if _is_tensor(o) and o.requires_grad and o._node.seq > start]
    if not roots:
        if any(isinstance(o, Tracer) and not _is_tensor(o) for o in out_leaves):
            ck._warn_bypassed()
        return out
    inputs = {id(x._node): x for x in tree_leaves(args, is_leaf=_plain_containers)
              if _is_tensor(x) and x.requires_grad}
    boundary, seen, stack = [], set(), list(roots)
    while stack:                      # the recorded part of the tape, and where it began
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.seq < start or n.prim is None:
            if n.prim is not None and id(n) not in inputs:
                # a closed-over Tensor computed earlier: its tape goes on outside this call
                ck._warn_bypassed()
                return out
            boundary.append(n)
            continue
        stack.extend(p for p in n.parents if p is not None)
    tensors = [inputs[id(n)] if id(n) in inputs else n.leaf() for n in boundary]
    call = CallParams('checkpoint', ck.__name__, None, (ck.fun,))
    call.fns = (ck.fun, lambda g: _recompute(ck.fun, args, boundary, inputs, g, rng))
    node = Node(_TAPE_OP, {'call': call}, tuple(boundary), (),
                tuple(o.data if _is_tensor(o) else o for o in out_leaves),
                tuple((t._version, t._version[0]) for t in tensors))
    root_ids = {id(r) for r in roots}
    new = [Tensor._wrap(o.data, _projection_node(node, i, len(out_leaves)))
           if _is_tensor(o) and o.requires_grad and id(o._node) in root_ids else o
           for i, o in enumerate(out_leaves)]
    return tree_unflatten(out_tree, new)


def _recompute(fun, args, boundary, inputs, g, rng):
    """The cotangents of the boundary nodes: `fun` re-run on fresh leaves (drawing the random
    numbers its first run drew), and backprop."""
    from chainrule.tensor import Tensor, _tape_off, enable_grad
    if any(_is_tensor(x) for x in g):
        with rng.replaying():
            return _recompute_differentiably(fun, args, boundary, inputs, g)
    ids = {id(n) for n in boundary}
    fresh = {}

    def detach(x):
        if _is_tensor(x) and x.requires_grad and id(x._node) in ids:
            fresh[id(x._node)] = t = Tensor(x.data, requires_grad=True)
            return t
        return x

    with enable_grad(), rng.replaying():
        out = fun(*tree_map(detach, list(args), is_leaf=_plain_containers))
    roots, gs = [], []
    for o, gi in zip(tree_flatten(out)[0], g):
        if _is_tensor(o) and o.requires_grad:
            roots.append(o._node)
            gs.append(gi)
    hooks = [(n, n.hooks) for n in boundary]
    for n, _ in hooks:                # hooks run once, in the enclosing backward pass
        n.hooks = None
    try:
        with _tape_off():
            got = backprop(roots, gs) if roots else {}
    finally:
        for n, h in hooks:
            n.hooks = h
    return [got.get(id(fresh[id(n)]._node) if id(n) in fresh else id(n)) for n in boundary]


def _recompute_differentiably(fun, args, boundary, inputs, g):
    """`backward(create_graph=True)`: the re-run must stay connected to the arguments, so it is
    pulled back with the functional reverse mode (as the `checkpoint_call` primitive does),
    which needs every differentiated Tensor to be an argument."""
    if not all(id(n) in inputs for n in boundary):
        raise GradientError(
            'backward(create_graph=True) through cr.checkpoint of Tensor code that uses Tensors '
            'it closes over (a module\'s parameters) is not supported: pass those Tensors as '
            'arguments, e.g. cr.checkpoint(lambda x, w, b: ...)(x, layer.weight, layer.bias)')
    points = [inputs[id(n)] for n in boundary]
    where = {id(t): k for k, t in enumerate(points)}

    def rerun(xs):
        new_args = tree_map(lambda a: xs[where[id(a)]] if id(a) in where else a, list(args),
                            is_leaf=_plain_containers)
        return tree_flatten(fun(*new_args))[0]
    return pull_back(rerun, points, list(g))


class _TapeOp:
    """The kind of a Tensor-tape node left by a checkpointed call: not a primitive (it is never
    bound), only what the backward pass reads -- a name, VJP rules, several results."""

    name = 'checkpoint'
    multiple_results = True
    vjp = per_arg_vjp(lambda g, out, args, call: call.fns[1](g))


_TAPE_OP = _TapeOp()


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
