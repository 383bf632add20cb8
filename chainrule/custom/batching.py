"""`vmap` of a call primitive.

`vmap` processes a call primitive by binding it again with the user's functions vectorised
(each one run under `vmap_flat`), so the rules still apply to the batched call: `grad` of a
vmapped custom_vjp function still uses `bwd`, `vmap` of a checkpoint still recomputes. The
primitives' own `make_fns` (which functions to vectorise, how) live beside each primitive.
"""

from chainrule.core import bind, shape_of
from chainrule.tree import tree_structure


def _vectorised(fn, in_dims, size, out_dims=None):
    """`fn(*xs) -> list` on a batch: `in_dims` per argument (0 or None); each output batched at
    axis 0 (broadcast if it does not depend on the batch), or, where `out_dims` says None,
    summed over the batch (the cotangent of an argument shared by every example)."""
    from chainrule.interpreters.batching import vmap_flat

    def f(*xs):
        outs, dims, _ = vmap_flat(lambda *ys: list(fn(*ys)), list(xs), list(in_dims))
        want = out_dims if out_dims is not None else [0] * len(outs)
        return [_to_dim(o, d, t, size) for o, d, t in zip(outs, dims, want)]
    return f


def _to_dim(x, d, want, size):
    from chainrule import ops
    if d == want:
        return x
    if want is None:
        return ops.sum(x, axis=0)
    shape = tuple(shape_of(x))
    return ops.broadcast_to(ops.reshape(x, (1,) + shape), (size,) + shape)


def batch_call_rule(prim, make_fns):
    """The `vmap` rule of call primitive `prim`: `make_fns(call, vals, dims, size)` gives the
    vectorised functions of the new call."""
    def rule(vals, dims, *, call):
        size = next(shape_of(v)[0] for v, d in zip(vals, dims) if d is not None)
        new = type(call)(call.kind, call.name, tree_structure(tuple(vals)),
                         make_fns(call, vals, list(dims), size), call.tensor_mode)
        if hasattr(call, 'rng'):
            new.rng = call.rng     # a checkpoint's re-runs replay the batched run's draws
        return bind(prim, *vals, call=new), 0
    return rule


def vectorised_fun(call, dims, size):
    """The call's function (`call.fns[0]`) on a batch."""
    return _vectorised(lambda *ys: call.call_flat(call.fns[0], ys), dims, size)


def _split_at(n, fn):
    return lambda *xs: (lambda r: (r[:n()], r[n():]))(fn(*xs))
