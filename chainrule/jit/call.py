"""The `jit_call` primitive: run a compiled graph as one operation that every transform sees.

What you can do with it: differentiate, batch and nest jitted functions. Called on tracers of
another transform (`grad(jit(f))`, `vmap(jit(f))`, `jvp(jit(f))`, a `Tensor` that requires
grad), a jitted function binds `jit_call_p`, whose parameter is its optimised graph. Its rules
are derived from the graph, never written by hand:

- VJP: a second staged graph, the backward pass of the first (`backward_graph`), itself run by
  `jit_call`, so higher derivatives work and each is compiled once; staged for the arguments
  that need a cotangent, and run once per backward pass for all of them (`AllArgs`), so
  nothing of a call (its inputs, its cotangents) is kept after it;
- JVP: the staged forward-mode graph (`jvp_graph`);
- batching: the graph batched by `vmap` and staged once per batch layout.

Under the staging interpreter (`jit` inside `jit`) the call is inlined, so the outer graph is
one graph. `chainrule.lax`'s control-flow primitives reuse `backward_graph`, `jvp_graph` and
`instantiate_tangents`.
"""

import numpy as np

from chainrule.core import AllArgs, Primitive, Tracer, bind
from chainrule.interpreters.staging import (
    ShapedArray, eval_graph, raise_to_aval, trace_to_graph)
from chainrule.jit.numpy_codegen import compiled
from chainrule.jit.passes import optimize

__all__ = ['GraphPrimitive', 'jit_call_p', 'backward_graph', 'jvp_graph', 'instantiate_tangents']


class GraphPrimitive(Primitive):
    """A primitive whose parameter is a graph; `inline(*args, **params)` evaluates it by binding
    its equations (the staging interpreter calls it, so jit inside jit is one graph)."""

    __slots__ = ('inline',)


def _jit_call_impl(*args, graph):
    return tuple(compiled(graph)(*args))


def _jit_call_inline(*args, graph):
    return tuple(eval_graph(graph, args))


def _aval_of_leaf(x):
    if isinstance(x, (np.ndarray, np.generic, Tracer)) or getattr(x, '_is_tensor', False):
        return ShapedArray(x.shape, x.dtype)
    return raise_to_aval(np.asarray(x))


def _zero_ct(aval):
    return np.zeros(aval.shape, aval.dtype)


def backward_graph(graph, needed=None):
    """The staged, optimised backward pass of `graph`: `(*args, *out_cts) -> in_cts`, one
    cotangent per argument, or with `needed` (one flag per argument) only those flagged: the
    others are not computed.

    Cotangents of integer or boolean outputs are ignored; inputs that get no cotangent get
    zeros. Cached on the graph, so a `grad(jit(f))` loop stages it once."""
    key = 'bwd' if needed is None or all(needed) else ('bwd', tuple(needed))
    bwd = graph._cache.get(key)
    if bwd is not None:
        return bwd
    from chainrule.interpreters.reverse import vjp_flat
    n = len(graph.invars)
    out_avals = graph.out_avals
    keep = [True] * n if needed is None else list(needed)

    def pullback(*xs):
        args, cts = xs[:n], xs[n:]
        _, pb = vjp_flat(lambda *a: eval_graph(graph, a), list(args))
        cts = [c if a.dtype.kind in 'fc' else None for c, a in zip(cts, out_avals)]
        gs = pb(cts)
        return [(_zero_ct(v.aval) if g is None else g)
                for g, v, k in zip(gs, graph.invars, keep) if k]

    bwd = optimize(trace_to_graph(pullback, graph.in_avals + out_avals))
    graph._cache[key] = bwd
    return bwd


def _jit_call_vjp(needed, g, ans, *args, graph):
    """The cotangents of the arguments that need one, from one run of the backward graph
    (staged for exactly those arguments)."""
    cts = iter(bind(jit_call_p, *args, *g, graph=backward_graph(graph, needed)))
    return [next(cts) if k else None for k in needed]


def jvp_graph(graph, with_primals=False):
    """The staged forward-mode derivative of `graph`: `(*args, *tangents) -> out tangents`
    (or `-> (*outs, *out tangents)` with `with_primals`). Cached on the graph."""
    key = ('jvp', with_primals)
    jg = graph._cache.get(key)
    if jg is None:
        from chainrule.interpreters.forward import jvp_flat
        n = len(graph.invars)

        def tangent_fn(*xs):
            outs, ts = jvp_flat(lambda *a: eval_graph(graph, a), list(xs[:n]), list(xs[n:]))
            return (outs + ts) if with_primals else ts

        jg = optimize(trace_to_graph(tangent_fn, graph.in_avals + graph.in_avals))
        graph._cache[key] = jg
    return jg


def instantiate_tangents(tangents, avals):
    return [(_zero_ct(a) if t is None else t) for t, a in zip(tangents, avals)]


def _jit_call_jvp(tangents, out, *args, graph):
    """Forward mode through a graph: the tangents of its outputs, from a staged JVP graph."""
    ts = instantiate_tangents(tangents, graph.in_avals)
    return bind(jit_call_p, *args, *ts, graph=jvp_graph(graph))


def _jit_call_batch(args, dims, *, graph):
    """`vmap` through a graph: stage the batched graph once per batch layout, run it jitted."""
    in_avals = [_aval_of_leaf(a) for a in args]
    key = ('batch', tuple(dims), tuple(in_avals))
    hit = graph._cache.get(key)
    if hit is None:
        from chainrule.interpreters.batching import vmap_flat
        box = []

        def batched(*a):
            outs, out_dims, _ = vmap_flat(lambda *b: eval_graph(graph, b), list(a), list(dims))
            box.append(tuple(out_dims))
            return outs

        hit = graph._cache[key] = (optimize(trace_to_graph(batched, in_avals)), box)
    bg, box = hit
    return bind(jit_call_p, *args, graph=bg), box[0]


jit_call_p = GraphPrimitive('jit_call', _jit_call_impl, vjp=AllArgs(_jit_call_vjp),
                            jvp=_jit_call_jvp, batch=_jit_call_batch, multiple_results=True,
                            doc='Run a staged, optimised graph (what a jitted function binds).')
jit_call_p.inline = _jit_call_inline
