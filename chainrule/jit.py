"""`jit` and `make_graph`: capture a program once, optimise it, run it as straight-line NumPy.

What you can do with it:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> f = cr.jit(cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2)))
    >>> f(np.array([0.5, -1.0])).round(4)          # traced once, then compiled code runs
    array([ 0.7269, -0.6397])
    >>> print(f.source(np.array([0.5, -1.0])))     # the derivative program  # doctest: +SKIP

`jit(f)` traces `f` once per input signature (the pytree structure, shapes and dtypes of the
array arguments, and the values of the `static_argnums`) into a `Graph`
(`chainrule.interpreters.staging`), optimises it, and generates a Python function that calls
NumPy directly: no dispatch, no tape, no tracer per operation. Later calls with the same
signature run that function. `f.cache_info()` counts hits and traces, and each retrace is logged
on the `chainrule.jit` logger (at INFO, with the signature that changed), because silent
recompilation is a common surprise.

Composition. Under `jit`, transforms run at trace time: `jit(grad(f))` stages the whole
backward pass (the reverse interpreter runs on staging tracers, so its rules emit equations).
Called on tracers of another transform (`grad(jit(f))`, `vmap(jit(f))`, a `Tensor` that requires
grad), a jitted function binds one primitive, `jit_call`, whose parameter is the optimised
graph. Its rules are derived from the graph: its VJP is a second staged graph (the backward pass
of the first, itself run by `jit_call`, so higher derivatives work), its JVP and batching rules
evaluate the graph's equations under the active interpreter.

Passes (`optimize`): constant folding (small results), algebraic simplification of what backward
passes produce (`x * 1`, `x + 0`, `x ** 1`, `x ** 2` as `x * x`, `neg(neg x)`, transposing or
reshaping twice, broadcasting then summing back, multiplying by a broadcast constant),
common-subexpression elimination and dead-code elimination.

Code generation (`codegen`): one NumPy call per equation, each preceded by the equation as a
comment. An elementwise result is written into the buffer of an input that is provably dead
(`np.add(a, b, out=a)`): the input is a whole fresh array (not a view, not an argument or
constant of the program), its last use is this equation, no live variable aliases it, and shapes
and dtypes agree. `broadcast_to` before a ufunc is left to the ufunc's own broadcasting, a
bool-to-float cast to the ufunc's `dtype=`, `sum`/`max` call the ufunc reductions directly (a
reduction over every axis with `axis=None`), and Python-number arguments become NumPy scalars of
the array's dtype once, at compile time. What NumPy does slowly is avoided, each measured on the
benchmark's MLP step (float32, 64x256): `maximum`/`minimum` by a scalar reads a hoisted constant
array instead (NumPy's SIMD loop needs two contiguous operands: 13 -> 4 us); `maximum`'s backward
pass (`g * ((x > y) + (x == y) / 2)`, seven equations) is one multiply by the boolean mask unless
something ties, checked per call (24 -> 12 us, bitwise the same); products of two float matrices
are `np.dot` and transposes/reshapes ndarray methods (no Python dispatch). Calls whose arguments
are lists and tuples of arrays with a signature seen before skip the pytree machinery (~35 -> 3
us per call).

Backends: `backend='numpy'` (default) or `backend='numba'`, which fuses runs of elementwise
operations on one shape (float32/float64 arithmetic and math functions, comparisons, `where`,
casts) into single compiled loops when numba is installed (`pip install chainrule[jit]`);
without numba it falls back silently to NumPy. The kernels' source is part of `.source()`.

Limits: values that code needs concretely (`if x > 0`, a data-dependent index, `argsort` used by
`sort`) cannot be staged: make them static or use `chainrule.lax`. Python-number arguments are
staged as 0-d float64/int64/complex128 arrays. Arrays (and `Tensor`s) a jitted function closes
over are constants of its graph, as in JAX: to differentiate with respect to them, pass them as
arguments.
"""

import keyword
import logging
import time

import numpy as np

from chainrule import _args
from chainrule.core import ChainruleError, PerArg, Primitive, Tracer, bind
from chainrule.interpreters.staging import (
    Eqn, Graph, Literal, ShapedArray, Var, _literal_str, _params_str, dtype_short, eval_graph,
    freeze,
    lift_closure, raise_to_aval, trace_to_graph)
from chainrule.tensor import _grad_enabled
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['jit', 'make_graph', 'optimize', 'codegen', 'jit_call_p', 'CacheInfo']

logger = logging.getLogger('chainrule.jit')


# --- the jit_call primitive -----------------------------------------------------------------------

class GraphPrimitive(Primitive):
    """A primitive whose parameter is a graph; `inline(*args, **params)` evaluates it by binding
    its equations (the staging interpreter calls it, so jit inside jit is one graph)."""

    __slots__ = ('inline',)


def _jit_call_impl(*args, graph):
    return tuple(compiled(graph)(*args))


def _jit_call_inline(*args, graph):
    return tuple(eval_graph(graph, args))


def _zero_ct(aval):
    return np.zeros(aval.shape, aval.dtype)


def backward_graph(graph):
    """The staged, optimised backward pass of `graph`: `(*args, *out_cts) -> in_cts`.

    Cotangents of integer or boolean outputs are ignored; inputs that get no cotangent get
    zeros. Cached on the graph, so a `grad(jit(f))` loop stages it once."""
    bwd = graph._cache.get('bwd')
    if bwd is not None:
        return bwd
    from chainrule.interpreters.reverse import vjp_flat
    n = len(graph.invars)
    out_avals = graph.out_avals

    def pullback(*xs):
        args, cts = xs[:n], xs[n:]
        _, pb = vjp_flat(lambda *a: eval_graph(graph, a), list(args))
        cts = [c if a.dtype.kind in 'fc' else None for c, a in zip(cts, out_avals)]
        gs = pb(cts)
        return [(_zero_ct(v.aval) if g is None else g) for g, v in zip(gs, graph.invars)]

    bwd = optimize(trace_to_graph(pullback, graph.in_avals + out_avals))
    graph._cache['bwd'] = bwd
    return bwd


def memo_cotangents(owner, g, args, compute):
    """All input cotangents of one node of a graph-carrying primitive, computed once.

    `backprop` asks for one argument's cotangent at a time, with the same `g` tuple and
    arguments for every argument of a node; `compute()` runs the whole backward graph, so its
    result is kept (one entry, on `owner`'s cache) for the other arguments' rules."""
    memo = owner._cache.get('memo')
    if memo is not None and memo[0] is g and len(memo[1]) == len(args) and all(
            a is b for a, b in zip(memo[1], args)):
        return memo[2]
    cts = compute()
    owner._cache['memo'] = (g, args, cts)
    return cts


def _jit_call_vjp(i, g, ans, *args, graph):
    return memo_cotangents(graph, g, args, lambda: bind(
        jit_call_p, *args, *g, graph=backward_graph(graph)))[i]


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


jit_call_p = GraphPrimitive('jit_call', _jit_call_impl, vjp=PerArg(_jit_call_vjp),
                            jvp=_jit_call_jvp, batch=_jit_call_batch, multiple_results=True,
                            doc='Run a staged, optimised graph (what a jitted function binds).')
jit_call_p.inline = _jit_call_inline


# --- passes ------------------------------------------------------------------------------------

_FOLD_LIMIT = 4096      # constant results up to this many elements are folded at compile time


def _uniform_value(c):
    """The single value of a constant whose elements are all equal, else None."""
    a = np.asarray(c)
    if a.size == 0 or a.dtype.kind not in 'biufc':
        return None
    first = a.flat[0]
    if a.size == 1 or (a.size <= 1 << 16 and np.all(a == first)) or (
            a.strides and not any(a.strides)):   # a broadcast scalar
        return first.item()
    return None


def _is_ones(v, uniform):
    return isinstance(v, Literal) and v.value == 1 and not isinstance(v.value, bool) or \
        (not isinstance(v, Literal) and uniform.get(v.id) == 1)


def _is_zeros(v, uniform):
    if isinstance(v, Literal):
        return v.value == 0 and not isinstance(v.value, bool)
    u = uniform.get(v.id)
    return u is not None and u == 0


def optimize(graph):
    """Simplify, fold constants, eliminate common subexpressions, then dead code.

    Returns:
        A new `Graph` computing the same outputs (in/out trees are kept).
    """
    g = _simplify(graph)
    g = dce(g)
    g.in_tree, g.out_tree = graph.in_tree, graph.out_tree
    return g


def dce(graph):
    """Dead-code elimination: drop equations (and constants) no output depends on."""
    live = {v.id for v in graph.outvars if isinstance(v, Var)}
    kept = []
    for e in reversed(graph.eqns):
        if any(o.id in live for o in e.outvars):
            kept.append(e)
            live.update(v.id for v in e.invars if isinstance(v, Var))
    kept.reverse()
    cv, cs = [], []
    for v, c in zip(graph.constvars, graph.consts):
        if v.id in live:
            cv.append(v)
            cs.append(c)
    return Graph(cv, cs, graph.invars, kept, graph.outvars, graph.in_tree, graph.out_tree)


class _Builder:
    """The state of one forward simplification sweep."""

    def __init__(self, graph):
        self.sub = {}         # var id -> replacement atom
        self.known = {}       # var id -> constant value
        self.uniform = {}     # var id -> the one value of a constant-filled array
        self.eqns = []
        self.constvars = list(graph.constvars)
        self.consts = list(graph.consts)
        self.cse = {}
        self.by_out = {}      # var id -> the emitted equation defining it
        for v, c in zip(graph.constvars, graph.consts):
            if isinstance(c, Tracer):
                continue
            self.known[v.id] = c
            u = _uniform_value(c)
            if u is not None:
                self.uniform[v.id] = u

    def atom(self, v):
        if isinstance(v, Literal):
            return v
        return self.sub.get(v.id, v)

    def new_const(self, value):
        value = np.asarray(value) if not isinstance(value, np.ndarray) else value
        v = Var(raise_to_aval(value))
        self.constvars.append(v)
        self.consts.append(value)
        self.known[v.id] = value
        u = _uniform_value(value)
        if u is not None:
            self.uniform[v.id] = u
        return v

    def emit(self, prim, invars, params, out_avals=None):
        """Add an equation (after CSE); returns its output vars."""
        key = (prim.name, tuple(('l', type(v.value), v.value) if isinstance(v, Literal)
                                else v.id for v in invars), freeze(params))
        try:
            hit = self.cse.get(key)
        except TypeError:
            key, hit = None, None
        if hit is not None:
            return hit
        if out_avals is None:
            from chainrule.interpreters.staging import abstract_eval
            out_avals = abstract_eval(prim, [v if isinstance(v, Literal) else v.aval
                                             for v in invars], params)
        outs = [Var(a) for a in out_avals]
        eqn = Eqn(prim, invars, params, outs)
        self.eqns.append(eqn)
        for o in outs:
            self.by_out[o.id] = eqn
        if key is not None:
            self.cse[key] = outs
        return outs


def _simplify(graph):
    b = _Builder(graph)
    for e in graph.eqns:
        invars = [b.atom(v) for v in e.invars]
        repl = _rewrite(b, e.prim, invars, e.params, e.outvars)
        if repl is None:
            repl = b.emit(e.prim, invars, e.params, [o.aval for o in e.outvars])
            # track constant-filled values through shape ops, for the rules above
            if e.prim.name in ('broadcast_to', 'reshape', 'transpose') and \
                    isinstance(invars[0], Var) and invars[0].id in b.uniform:
                b.uniform[repl[0].id] = b.uniform[invars[0].id]
        for o, r in zip(e.outvars, repl):
            if r is not o:
                b.sub[o.id] = r
    outvars = [b.atom(v) for v in graph.outvars]
    return Graph(b.constvars, b.consts, graph.invars, b.eqns, outvars)


def _rewrite(b, prim, invars, params, outvars):
    """A list of replacement atoms for the outputs of one equation, or None to keep it."""
    name = prim.name
    out_aval = outvars[0].aval if len(outvars) == 1 else None

    # constant folding: every input known, result small
    if all(isinstance(v, Literal) or v.id in b.known for v in invars) and \
            getattr(prim, 'inline', None) is None and all(
                int(np.prod(o.aval.shape)) <= _FOLD_LIMIT for o in outvars):
        vals = [v.value if isinstance(v, Literal) else b.known[v.id] for v in invars]
        with np.errstate(all='ignore'):
            res = prim.impl(*vals, **params)
        res = res if prim.multiple_results else (res,)
        return [b.new_const(np.asarray(r, o.aval.dtype)) for r, o in zip(res, outvars)]

    def same(v):
        return isinstance(v, Var) and v.aval == out_aval

    if name == 'mul':
        x, y = invars
        if _is_ones(y, b.uniform) and same(x):
            return [x]
        if _is_ones(x, b.uniform) and same(y):
            return [y]
        # multiplying by a broadcast constant: multiply by the scalar instead
        for u, w in ((y, x), (x, y)):
            lit = _uniform_literal(u, b) if same(w) else None
            if lit is not None:
                return b.emit(prim, [w, lit], params, [out_aval])
    elif name in ('add', 'sub'):
        x, y = invars
        if _is_zeros(y, b.uniform) and same(x):
            return [x]
        if name == 'add' and _is_zeros(x, b.uniform) and same(y):
            return [y]
        # adding a constant-filled array: add the scalar instead
        lits = [_uniform_literal(u, b) if same(w) else None for u, w in ((x, y), (y, x))]
        if lits[0] is not None:
            return b.emit(prim, [lits[0], y], params, [out_aval])
        if lits[1] is not None:
            return b.emit(prim, [x, lits[1]], params, [out_aval])
    elif name == 'pow':
        x, y = invars
        if isinstance(y, Literal) and same(x) and not isinstance(y.value, bool):
            if y.value == 1:
                return [x]
            if y.value == 2:      # x * x: one multiply instead of a general power
                from chainrule.ops.elementwise import mul_p
                return b.emit(mul_p, [x, x], {}, [out_aval])
    elif name == 'div':
        x, y = invars
        if _is_ones(y, b.uniform) and same(x):
            return [x]
    elif name in ('neg', 'conj'):
        x = invars[0]
        src = _producer(b, x)
        if src is not None and src.prim.name == name and same(src.invars[0]):
            return [src.invars[0]]
    elif name == 'transpose':
        x = invars[0]
        src = _producer(b, x)
        if src is not None and src.prim.name == 'transpose':
            inner = src.invars[0]
            axes = tuple(src.params['axes'][a] for a in params['axes'])
            if axes == tuple(range(len(axes))):
                return [inner]
            return b.emit(prim, [inner], {'axes': axes}, [out_aval])
    elif name == 'reshape':
        x = invars[0]
        if same(x):
            return [x]
        src = _producer(b, x)
        if src is not None and src.prim.name == 'reshape':
            inner = src.invars[0]
            if isinstance(inner, Var) and inner.aval == out_aval:
                return [inner]
            return b.emit(prim, [inner], params, [out_aval])
    elif name in ('broadcast_to', 'astype'):
        if same(invars[0]):
            return [invars[0]]
    elif name == 'sum':
        return _sum_of_broadcast(b, invars[0], params, out_aval)
    return None


def _uniform_literal(u, b):
    """A constant-filled float/complex array `u` as a Python-number `Literal` (which NumPy
    converts to the other operand's dtype, as the array would have been), else None."""
    if not isinstance(u, Var) or u.id not in b.uniform or u.aval.dtype.kind not in 'fc':
        return None
    c = b.uniform[u.id]
    return Literal(complex(c) if u.aval.dtype.kind == 'c' else float(c))


def _producer(b, v):
    """The equation (already emitted) that defines `v`, or None."""
    if not isinstance(v, Var):
        return None
    return b.by_out.get(v.id)


def _sum_of_broadcast(b, x, params, out_aval):
    """`sum(broadcast_to(y, S), axes)` where `axes` are exactly the broadcast axes is
    `y * n` (n = how many copies were summed), reshaped: the pattern a backward pass makes
    when a broadcast parameter's cotangent is summed back."""
    src = _producer(b, x)
    if src is None or src.prim.name != 'broadcast_to':
        return None
    y = src.invars[0]
    if not isinstance(y, Var) or y.aval.dtype.kind not in 'fc':
        return None
    S = src.params['shape']
    ys = (1,) * (len(S) - len(y.aval.shape)) + y.aval.shape
    bcast = {i for i in range(len(S)) if ys[i] == 1 and S[i] != 1}
    axes = set(params['axis'])
    if bcast - axes or any(S[i] != 1 for i in axes - bcast):
        return None
    n = int(np.prod([S[i] for i in bcast]))
    out = y
    if y.aval.shape != out_aval.shape:
        from chainrule.ops.structural import reshape_p
        out = b.emit(reshape_p, [out], {'shape': out_aval.shape})[0]
    if n != 1:
        from chainrule.ops.elementwise import mul_p
        lit = Literal(complex(n) if y.aval.dtype.kind == 'c' else float(n))
        out = b.emit(mul_p, [out, lit], {})[0]
    return [out]


# --- code generation -----------------------------------------------------------------------------

_FRESH_PRIMS = {'matmul', 'sum', 'max', 'where', 'concatenate', 'cumsum', 'cumprod',
                'scatter_add', 'at_set', 'at_add'}


def _dtype_expr(dt):
    return f'np.{np.dtype(dt).name}' if np.dtype(dt).name in (
        'float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool',
        'complex128', 'complex64') else f'np.dtype({np.dtype(dt).str!r})'


def _code_params(prim, params, glob):
    """Parameters written as Python source (or, for arrays, a global holding them)."""
    def lit(v):
        if isinstance(v, np.dtype):
            return _dtype_expr(v)
        if isinstance(v, (bool, int, float, str, type(None))) or (
                isinstance(v, tuple) and all(isinstance(x, (int, np.integer)) for x in v)):
            return repr(tuple(int(x) for x in v)) if isinstance(v, tuple) else repr(v)
        name = f'_p{len(glob)}'
        glob[name] = v
        return name
    return {k: lit(v) for k, v in params.items()}


def _templates():
    return {
        'broadcast_to': lambda a, p: f'np.broadcast_to({a[0]}, {p["shape"]})',
        'reshape': lambda a, p: f'np.reshape({a[0]}, {p["shape"]})',
        'transpose': lambda a, p: f'np.transpose({a[0]}, {p["axes"]})',
        # the ufunc reductions np.sum and np.max call, without their Python wrappers; one
        # axis as an int (a tuple costs the ufunc ~0.7 us more to parse)
        'sum': lambda a, p: f'np.add.reduce({a[0]}, axis={_axis(p["axis"])}, '
                            f'keepdims={p["keepdims"]})',
        'max': lambda a, p: f'np.maximum.reduce({a[0]}, axis={_axis(p["axis"])}, '
                            f'keepdims={p["keepdims"]})',
        'astype': lambda a, p: f'np.asarray({a[0]}, {p["dtype"]})',
        'getitem': lambda a, p: f'np.asarray({a[0]})[{p["idx"]}]',
        'where': lambda a, p: f'np.where({a[0]}, {a[1]}, {a[2]})',
        'stop_gradient': lambda a, p: a[0],
    }


def _axis(axis):
    """An axis parameter (source text of a tuple) as a ufunc reduction reads it fastest."""
    t = eval(axis) if isinstance(axis, str) else axis     # noqa: S307 (repr of int tuples)
    return str(t[0]) if isinstance(t, tuple) and len(t) == 1 else str(axis)


# views of arrays as ndarray methods (a 2-D transpose as `.T`): the np.transpose/np.reshape
# functions cost ~1.5 us of Python dispatch each; the methods ~0.2 us
_VIEW_METHODS = {
    'transpose': lambda a, p: f'{a[0]}.T' if p['axes'] == '(1, 0)' else
    f'{a[0]}.transpose({p["axes"]})',
    'reshape': lambda a, p: f'{a[0]}.reshape({p["shape"]})',
}


_TEMPLATES = _templates()
_RESERVED = {'np', 'numba', 'math'}     # module names the generated code uses


def codegen(graph, name='jitted', fuse=False):
    """Python source for `graph` and the globals it needs.

    Args:
        graph: the graph to lower.
        name: the generated function's name.
        fuse: group runs of float elementwise equations into numba kernels (the caller has
            checked that numba imports).

    Returns:
        (source, globals): `exec(source, globals)` defines `name(*inputs) -> tuple of outputs`.
    """
    names = {}
    for vid, n in graph.names().items():
        names[vid] = n + '_' if keyword.iskeyword(n) or n in _RESERVED else n
    glob = {'np': np}
    ir_names = graph.names()

    def arg(v):
        if isinstance(v, Literal):
            return _literal_str(v.value)
        return names[v.id]

    for v, c in zip(graph.constvars, graph.consts):
        glob[names[v.id]] = c

    items = _fusion_schedule(graph) if fuse else _select_muls(graph, list(graph.eqns))
    by_out = {o.id: e for e in graph.eqns for o in e.outvars}
    elided = _implicit_broadcasts(graph, items, by_out)
    casts = _implicit_casts(graph, items)
    elided |= casts
    kernels = []
    # buffer reuse: when a var is last used, and no live var aliases its buffer, an
    # elementwise op may write its result there
    last = {}
    for k, it in enumerate(items):
        for v in it.invars:
            if isinstance(v, Var):
                last[v.id] = k
    for v in graph.outvars:
        if isinstance(v, Var):
            last[v.id] = float('inf')
    roots = {}           # var id -> set of buffer roots it may alias (empty: not ours)
    live_until = {}      # root -> last item index at which some var aliasing it is used
    owns = set()         # vars that are a whole fresh buffer (not a view of one)
    for v in list(graph.invars) + list(graph.constvars):
        roots[v.id] = frozenset()

    def ir_line(e):
        return (f'{" ".join(ir_names[o.id] + ":" + str(o.aval) for o in e.outvars)} = '
                f'{e.prim.name}{_params_str(e.params)} ' + ' '.join(
                    _literal_str(v.value) if isinstance(v, Literal) else ir_names[v.id]
                    for v in e.invars))

    def find_reuse(candidates, o, k):
        """(input var, its buffer root) that item `k` may write its output `o` into: a whole
        fresh buffer of the same type, dead after item k, aliased by no other input."""
        if o.aval.ndim < 1:
            return None
        ins = items[k].invars
        for v in candidates:
            if not isinstance(v, Var) or v.aval != o.aval or v.id not in owns:
                continue
            (root,) = roots[v.id]
            if live_until.get(root) != k:
                continue
            if any(isinstance(u, Var) and u is not v and root in roots.get(u.id, ())
                   for u in ins):
                continue
            return (v, root)
        return None

    def mark_outputs(e, reuse, fresh):
        """Alias bookkeeping for the outputs of item `e`."""
        for o in e.outvars:
            if reuse is not None:
                rs = frozenset([reuse[1]])
                owns.add(o.id)
            elif o.aval.ndim >= 1 and fresh:
                rs = frozenset([o.id])
                owns.add(o.id)
            else:   # a view, or an op we know nothing about: it may alias any input
                rs = frozenset().union(*[roots.get(v.id, frozenset()) for v in e.invars
                                         if isinstance(v, Var)])
            roots[o.id] = rs
            for r in rs:
                live_until[r] = max(live_until.get(r, -1), last.get(o.id, -1))

    lines = [f'def {name}({", ".join(names[v.id] for v in graph.invars)}):']
    for k, e in enumerate(items):
        if isinstance(e, _Cluster):
            lines.extend(_emit_cluster(e, len(kernels), names, ir_line, glob, by_out))
            kernels.append(e)
            for o in e.outvars:
                roots[o.id] = frozenset([o.id])
                owns.add(o.id)
                live_until[o.id] = last.get(o.id, -1)
            continue
        if isinstance(e, _SelectMul):
            o = e.outvars[0]
            reuse = find_reuse([e.invars[0]], o, k)
            lines.extend(e.emit(names, ir_line, glob, reuse and names[reuse[0].id]))
            mark_outputs(e, reuse, fresh=True)
            continue
        prim = e.prim
        if e.outvars[0].id in elided:
            # NumPy's ufuncs broadcast by themselves: the users read the source directly
            src_var = e.invars[0]
            names[e.outvars[0].id] = names[src_var.id]
            roots[e.outvars[0].id] = roots.get(src_var.id, frozenset())
            for r in roots[e.outvars[0].id]:
                live_until[r] = max(live_until.get(r, -1), last.get(e.outvars[0].id, -1))
            why = 'cast' if e.outvars[0].id in casts else 'broadcast'
            lines.append(f'    # {ir_line(e)}   (implicit: the ufuncs below {why})')
            continue
        impl = prim.impl
        if isinstance(impl, np.ufunc):
            args = [_full_literal(v, e, glob) or _typed_literal(v, e, glob)
                    if isinstance(v, Literal) else arg(v) for v in e.invars]
        else:
            args = [arg(v) for v in e.invars]
        outs = [names[o.id] for o in e.outvars]
        reuse = None
        if isinstance(impl, np.ufunc) and prim.elementwise and not e.params:
            o = e.outvars[0]
            reuse = find_reuse(e.invars, o, k)
            cast = any(isinstance(v, Var) and v.id in casts for v in e.invars)
            call = f'np.{impl.__name__}({", ".join(args)}' + (
                f', out={names[reuse[0].id]}' if reuse else '') + (
                f', dtype={_dtype_expr(o.aval.dtype)})' if cast else ')')
        elif prim.name in _VIEW_METHODS and isinstance(e.invars[0], Var) and \
                e.invars[0].aval.ndim >= 1:
            call = _VIEW_METHODS[prim.name](args, _code_params(prim, e.params, glob))
        elif prim.name in _TEMPLATES:
            ps = _code_params(prim, e.params, glob)
            if prim.name in ('sum', 'max') and isinstance(e.invars[0], Var) and \
                    sorted(e.params['axis']) == list(range(e.invars[0].aval.ndim)):
                ps['axis'] = 'None'     # every axis: NumPy's 1-D fast path (~1 us less)
            call = _TEMPLATES[prim.name](args, ps)
        elif prim.name == 'matmul':
            # two float matrices: np.dot, the same BLAS call (bitwise the same result) without
            # the generalised ufunc's dispatch (~0.8 us a call)
            two_d = all(isinstance(v, Var) and v.aval.ndim == 2 and
                        v.aval.dtype in (np.float32, np.float64) for v in e.invars)
            call = f'np.{"dot" if two_d else "matmul"}({args[0]}, {args[1]})'
        else:
            fn = f'_{prim.name}_impl'
            glob[fn] = impl
            ps = _code_params(prim, e.params, glob)
            kw = ''.join(f', {k}={v}' for k, v in sorted(ps.items()))
            call = f'{fn}({", ".join(args)}{kw})'
        target = ', '.join(outs) + (',' if prim.multiple_results and len(outs) == 1 else '')
        lines.append(f'    # {ir_line(e)}' + ('   (in place: its input is dead)' if reuse else ''))
        lines.append(f'    {target} = {call}')
        mark_outputs(e, reuse, isinstance(impl, np.ufunc) or prim.name in _FRESH_PRIMS)
    outs = [arg(v) for v in graph.outvars]
    lines.append(f'    return ({", ".join(outs)}{"," if len(outs) == 1 else ""})')
    src = '\n'.join(lines) + '\n'
    if kernels:
        src = '\n'.join(glob.pop('_kernel_sources')) + '\n\n' + src
    return src, glob


class _SelectPrim:
    """What the helpers that inspect `item.prim` see of a `_SelectMul`: no ufunc."""

    name = 'select_mul'
    impl = None
    elementwise = False


class _SelectMul:
    """`g * (astype(x > y) + astype(x == y) * 0.5)`: the backward pass of `maximum` /
    `minimum` (ReLU's, when y = 0), seven equations, generated as one comparison pass per
    mask and one multiply by the boolean mask (NumPy casts it in the loop) when `x == y`
    nowhere, which is checked on every call; at ties, the original equations' arithmetic,
    so the result is bitwise that of the graph either way. Measured on float32 64x256:
    24 us -> 12 us."""

    prim = _SelectPrim
    params = {}

    def __init__(self, gt, eq, half, g, mul, eqns):
        self.gt, self.eq, self.half, self.mul, self.eqns = gt, eq, half, mul, eqns
        self.invars = [g] + list(gt.invars)
        self.outvars = mul.outvars

    def emit(self, names, ir_line, glob, out):
        def a(v, e):
            return _typed_literal(v, e, glob) if isinstance(v, Literal) else names[v.id]
        gt, eq, o = (names[self.gt.outvars[0].id], names[self.eq.outvars[0].id],
                     names[self.outvars[0].id])
        g = names[self.invars[0].id]
        out_dtype = self.outvars[0].aval.dtype
        dt = _dtype_expr(out_dtype)
        half = _typed_literal(Literal(0.5), _Fake(out_dtype), glob)
        x, y = (a(v, self.gt) for v in self.gt.invars)
        ex, ey = (a(v, self.eq) for v in self.eq.invars)
        to = f', out={out}' if out else ''
        lines = [f'    # {ir_line(e)}' for e in self.eqns]
        lines += ['    #   (as one multiply by the boolean mask when nothing ties; '
                  'bitwise the same)',
                  f'    {gt} = np.greater({x}, {y})',
                  f'    {eq} = np.equal({ex}, {ey})',
                  f'    {o} = np.multiply({g}, {gt}{to}) if not {eq}.any() else np.multiply('
                  f'{g}, np.add({gt}, np.multiply({eq}, {half}, dtype={dt}), dtype={dt}){to})']
        return lines


class _Fake:
    """A stand-in equation for `_typed_literal`: one input of dtype `dt`."""

    def __init__(self, dt):
        self.invars = [Var(ShapedArray((), dt))]


def _select_muls(graph, items):
    """`items` with each maximum/minimum backward pattern replaced by a `_SelectMul` (at the
    position of its final multiply; the other equations of the pattern are dropped)."""
    users, outs = _users_and_outputs(graph, items)
    by_out = {o.id: e for e in items for o in e.outvars}

    def only_user(v, name):
        """The single equation (named `name`) that reads var `v`, if `v` is not an output."""
        if not isinstance(v, Var) or v.id in outs:
            return None
        us = users.get(v.id, [])
        return us[0] if len(us) == 1 and us[0].prim.name == name else None

    def producer(v, name):
        e = by_out.get(v.id) if isinstance(v, Var) else None
        return e if e is not None and e.prim.name == name else None

    drop, replace = set(), {}
    for m in items:
        if m.prim.name != 'mul':
            continue
        for g, w in (m.invars, m.invars[::-1]):
            add = producer(w, 'add')
            if add is None or not isinstance(g, Var) or g.aval != m.outvars[0].aval or \
                    g.aval.dtype.kind != 'f' or only_user(w, 'mul') is not m:
                continue
            for c1, c2 in (add.invars, add.invars[::-1]):
                cast1, half = producer(c1, 'astype'), producer(c2, 'mul')
                if cast1 is None or half is None or only_user(c1, 'add') is not add or \
                        only_user(c2, 'add') is not add:
                    continue
                lit = [v for v in half.invars if isinstance(v, Literal)]
                var = [v for v in half.invars if isinstance(v, Var)]
                if len(lit) != 1 or lit[0].value != 0.5 or isinstance(lit[0].value, bool):
                    continue
                cast2 = producer(var[0], 'astype')
                gt = cast1 and producer(cast1.invars[0], 'greater')
                eq = cast2 and producer(cast2.invars[0], 'equal')
                dt = m.outvars[0].aval.dtype
                if gt is None or eq is None or only_user(var[0], 'mul') is not half or \
                        only_user(cast1.invars[0], 'astype') is not cast1 or \
                        only_user(cast2.invars[0], 'astype') is not cast2 or \
                        cast1.outvars[0].aval.dtype != dt or \
                        cast2.outvars[0].aval.dtype != dt or half.outvars[0].aval.dtype != dt or \
                        add.outvars[0].aval.dtype != dt or \
                        not _same_atoms(gt.invars, eq.invars):
                    continue
                chain = [gt, cast1, eq, cast2, half, add]
                drop.update(id(e) for e in chain)
                replace[id(m)] = _SelectMul(gt, eq, half, g, m, chain + [m])
                break
            if id(m) in replace:
                break
    return [replace.get(id(e), e) for e in items if id(e) not in drop]


def _same_atoms(a, b):
    """The two comparisons read the same operands (in either order: equality is symmetric)."""
    def key(v):
        return ('l', type(v.value), v.value) if isinstance(v, Literal) else v.id
    return [key(v) for v in a] in ([key(v) for v in b], [key(v) for v in b[::-1]])


def _users_and_outputs(graph, items):
    """{var id: the items (equations, clusters) that read it} and the ids of the outputs."""
    users = {}
    for it in items:
        for v in it.invars:
            if isinstance(v, Var):
                users.setdefault(v.id, []).append(it)
    return users, {v.id for v in graph.outvars if isinstance(v, Var)}


def _implicit_broadcasts(graph, items, by_out):
    """The `broadcast_to` results that need not exist: every user is a NumPy ufunc call with
    another input of the full shape (so the ufunc broadcasts to the same shape itself), or a
    fused kernel that reads the source directly (`_kernel_input`)."""
    users, outs = _users_and_outputs(graph, items)
    elided = set()
    for it in items:
        if isinstance(it, _Cluster) or it.prim.name != 'broadcast_to':
            continue
        b = it.outvars[0]
        if b.id in outs or not isinstance(it.invars[0], Var):
            continue
        ok = True
        for u in users.get(b.id, []):
            if isinstance(u, _Cluster):
                if _kernel_input(b, by_out, int(b.aval.shape[-1]))[0] is b:
                    ok = False
                    break
                continue
            if not (isinstance(u.prim.impl, np.ufunc) and
                                               u.prim.elementwise and not u.params):
                ok = False
                break
            full = u.outvars[0].aval.shape
            if not any(isinstance(w, Var) and w is not b and w.aval.shape == full and
                       w.id not in elided for w in u.invars):
                ok = False
                break
        if ok:
            elided.add(b.id)
    return elided


def _typed_literal(lit, e, glob):
    """A Python number argument of a ufunc, as a global NumPy scalar of its partner's dtype.

    NumPy 2 converts a Python number to the dtype of the array it meets (NEP 50), so the
    scalar computes the same result, but passing it ready-made saves that conversion on every
    call (about 2 us per ufunc call on small arrays)."""
    partner = next((v.aval.dtype for v in e.invars if isinstance(v, Var)), None)
    val = lit.value
    if partner is None or isinstance(val, bool) or (
            partner.kind == 'f' and not isinstance(val, (int, float))) or (
            partner.kind in 'iu' and not isinstance(val, int)) or partner.kind not in 'fciu':
        return _literal_str(val)
    try:
        typed = partner.type(val)
    except (OverflowError, ValueError, TypeError):
        return _literal_str(val)
    if partner.kind in 'iu' and typed != val:
        return _literal_str(val)
    consts = glob.setdefault('_typed_literals', {})
    key = (partner.str, type(val), repr(val))
    name = consts.get(key)
    if name is None:
        # a name that shows the value: 0.5 -> _f32_0p5, -1e-05 -> _f64_m1em05
        text = repr(val).replace('-', 'm').replace('.', 'p').replace('+', '')
        name = f'_{dtype_short(partner)}_{text}'
        if not name.isidentifier() or name in glob:
            name = f'_{dtype_short(partner)}_c{len(consts)}'
        consts[key] = name
        glob[name] = typed
    return name


_FULL_LIMIT = 4 << 20    # bytes: above this, streaming a constant array costs more than it saves


def _full_literal(lit, e, glob):
    """The scalar of `maximum(x, c)` / `minimum(x, c)` as a hoisted constant array of `x`'s
    shape, or None.

    NumPy's SIMD loops for maximum/minimum need both operands contiguous; with a scalar
    operand they run the scalar loop, 3-4x slower (float32 64x256: 13 us against 3.8 us
    measured). The result is the same elementwise (NaN still propagates). The array is made
    once at compile time, read-only; up to `_FULL_LIMIT` bytes (beyond that, memory traffic
    for it outweighs the gain: 1e6 float64 measured slower)."""
    if e.prim.impl not in (np.maximum, np.minimum) or isinstance(lit.value, (bool, complex)):
        return None
    (x,) = [v for v in e.invars if isinstance(v, Var)] or [None]
    if x is None or x.aval != e.outvars[0].aval or x.aval.ndim == 0 or \
            x.aval.dtype.kind != 'f' or \
            int(np.prod(x.aval.shape)) * x.aval.dtype.itemsize > _FULL_LIMIT:
        return None
    scalar = _typed_literal(lit, e, glob)
    if scalar not in glob:
        return None
    name = f'{scalar}_full_{"x".join(map(str, x.aval.shape))}'
    if name not in glob:
        glob[name] = np.full(x.aval.shape, glob[scalar], x.aval.dtype)
        glob[name].flags.writeable = False
    return name


def _implicit_casts(graph, items):
    """The `astype` results (bool or integer to float) that need not exist: every user is a
    NumPy ufunc producing that float dtype, which can read the source and cast as it goes
    (`np.add(mask, y, dtype=np.float32)`)."""
    users, outs = _users_and_outputs(graph, items)
    casts = set()
    for it in items:
        if isinstance(it, _Cluster) or it.prim.name != 'astype':
            continue
        c, src = it.outvars[0], it.invars[0]
        if c.id in outs or not isinstance(src, Var) or src.aval.dtype.kind not in 'biu' or \
                c.aval.dtype.kind != 'f':
            continue
        us = users.get(c.id, [])
        if us and all(not isinstance(u, _Cluster) and isinstance(u.prim.impl, np.ufunc) and
                      u.prim.elementwise and not u.params and
                      u.outvars[0].aval.dtype == c.aval.dtype for u in us):
            casts.add(c.id)
    return casts


# --- the numba backend: fused elementwise kernels -------------------------------------------------

# scalar expressions of the elementwise primitives a kernel can fuse
_SCALAR = {
    'add': '{0} + {1}', 'sub': '{0} - {1}', 'mul': '{0} * {1}', 'div': '{0} / {1}',
    'pow': '{0} ** {1}', 'neg': '-{0}', 'abs': 'abs({0})', 'exp': 'math.exp({0})',
    'expm1': 'math.expm1({0})', 'log': 'math.log({0})', 'log1p': 'math.log1p({0})',
    'sqrt': 'math.sqrt({0})', 'sin': 'math.sin({0})', 'cos': 'math.cos({0})',
    'tan': 'math.tan({0})', 'tanh': 'math.tanh({0})', 'sinh': 'math.sinh({0})',
    'cosh': 'math.cosh({0})', 'arcsin': 'math.asin({0})', 'arccos': 'math.acos({0})',
    'arctan': 'math.atan({0})', 'arcsinh': 'math.asinh({0})', 'arctanh': 'math.atanh({0})',
    # NumPy's NaN-propagating maximum/minimum as selects (which vectorise)
    'maximum': '({0} if ({0} > {1} or {0} != {0}) else {1})',
    'minimum': '({0} if ({0} < {1} or {0} != {0}) else {1})',
    'greater': '({0} > {1})', 'greater_equal': '({0} >= {1})', 'less': '({0} < {1})',
    'less_equal': '({0} <= {1})', 'equal': '({0} == {1})', 'not_equal': '({0} != {1})',
    'where': '({1} if {0} else {2})',
}
_numba = None        # the numba module once imported; False when it is not installed


def _get_numba():
    global _numba
    if _numba is None:
        try:
            import numba
            _numba = numba
        except ImportError:
            _numba = False
    return _numba


class _Cluster:
    """A run of elementwise equations on one shape and float dtype, fused into one loop."""

    def __init__(self, eqns, invars, outvars):
        self.eqns = eqns
        self.invars = invars      # Vars from outside (full arrays, or 0-d scalars)
        self.outvars = outvars    # Vars used after the cluster


_FUSE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.bool_))


def _scalar_expr(e, args):
    """The scalar expression of fusible equation `e` on the argument expressions `args`."""
    if e.prim.name == 'astype':
        dt = e.params['dtype']
        return f'({args[0]} != 0)' if dt == np.bool_ else f'np.{dt.name}({args[0]})'
    return _SCALAR[e.prim.name].format(*args)


def _fusible(e, by_out):
    """The fusion key (the shape) of an equation a kernel can compute, or None."""
    name = e.prim.name
    if len(e.outvars) != 1:
        return None
    if name == 'astype':
        if e.params['dtype'] not in _FUSE_DTYPES:
            return None
    elif name not in _SCALAR or e.params:
        return None
    a = e.outvars[0].aval
    if a.ndim == 0 or 0 in a.shape or a.dtype not in _FUSE_DTYPES:
        return None
    for v in e.invars:
        if isinstance(v, Var) and (v.aval.shape not in ((), a.shape) or
                                   v.aval.dtype.kind not in 'fib'):
            return None
    return a.shape


def _fusion_schedule(graph):
    """The equations in an order that keeps fusible runs together, with each run of two or
    more fusible equations replaced by a `_Cluster`."""
    eqns = graph.eqns
    by_out = {o.id: e for e in eqns for o in e.outvars}
    keys = [_fusible(e, by_out) for e in eqns]
    index = {id(e): i for i, e in enumerate(eqns)}
    # Kahn's algorithm: among the ready equations take one of the current run's kind first,
    # then any fusible one, then the earliest other
    deps = [set() for _ in eqns]
    users = [[] for _ in eqns]
    for i, e in enumerate(eqns):
        for v in e.invars:
            if isinstance(v, Var) and v.id in by_out:
                j = index[id(by_out[v.id])]
                if j not in deps[i]:
                    deps[i].add(j)
                    users[j].append(i)
    ready = sorted(i for i in range(len(eqns)) if not deps[i])
    order, cur = [], None
    while ready:
        pick = next((i for i in ready if keys[i] is not None and keys[i] == cur), None)
        if pick is None:
            pick = next((i for i in ready if keys[i] is None), None)
        if pick is None:
            pick = ready[0]
        ready.remove(pick)
        order.append(pick)
        cur = keys[pick] if keys[pick] is not None else cur
        for u in users[pick]:
            deps[u].discard(pick)
            if not deps[u]:
                ready.append(u)
        ready.sort()
    # runs of the same kind become clusters
    used_after = {}
    for pos, i in enumerate(order):
        for v in eqns[i].invars:
            if isinstance(v, Var):
                used_after[v.id] = pos
    outs = {v.id for v in graph.outvars if isinstance(v, Var)}
    items, run = [], []

    def flush():
        if len(run) >= 2:
            defined = {o.id for i in run for o in eqns[i].outvars}
            end = order.index(run[-1])
            ins, seen = [], set()
            for i in run:
                for v in eqns[i].invars:
                    if isinstance(v, Var) and v.id not in defined and v.id not in seen:
                        seen.add(v.id)
                        ins.append(v)
            cl_outs = [o for i in run for o in eqns[i].outvars
                       if o.id in outs or used_after.get(o.id, -1) > end]
            items.append(_Cluster([eqns[i] for i in run], ins, cl_outs))
        else:
            items.extend(eqns[i] for i in run)
        run.clear()

    for i in order:
        if keys[i] is not None and (not run or keys[run[-1]] == keys[i]):
            run.append(i)
            continue
        flush()
        if keys[i] is not None:
            run.append(i)
        else:
            items.append(eqns[i])
    flush()
    return items


def _bcast_index(src_shape, out_shape):
    """How a flat loop over `out_shape` reads a `src_shape` array broadcast to it, without
    materialising the broadcast: `('mod', m)` when only leading axes are broadcast (a bias
    row: element `i % m`), `('div', d)` when only trailing ones are (a column: `i // d`),
    else None."""
    nd = len(out_shape)
    ps = (1,) * (nd - len(src_shape)) + tuple(src_shape)
    lead = 0
    while lead < nd and ps[lead] == 1:
        lead += 1
    if ps[lead:] == tuple(out_shape[lead:]):
        return ('mod', int(np.prod(out_shape[lead:], dtype=np.int64)))
    t = nd
    while t > 0 and ps[t - 1] == 1:
        t -= 1
    if ps[:t] == tuple(out_shape[:t]):
        return ('div', int(np.prod(out_shape[t:], dtype=np.int64)))
    return None


def _kernel_input(v, by_out, inner):
    """(var to pass, index expression) for kernel input `v` in a loop whose flat index is
    `i = r * inner + c`: a full array is read at `i`, a 0-d one once, a row broadcast along
    leading axes at `c` and a column broadcast along the last axis at `r` (from the broadcast's
    source: nothing is materialised); other broadcasts at `i % m` / `i // d`."""
    if v.aval.ndim == 0:
        return v, '[()]'
    e = by_out.get(v.id)
    if e is not None and e.prim.name == 'broadcast_to' and isinstance(e.invars[0], Var) and \
            e.invars[0].aval.ndim > 0:
        how = _bcast_index(e.invars[0].aval.shape, v.aval.shape)
        if how is not None:
            kind, n = how
            if n == inner:
                return e.invars[0], '[c]' if kind == 'mod' else '[r]'
            return e.invars[0], f'[i % {n}]' if kind == 'mod' else f'[i // {n}]'
    return v, '[i]'


def _emit_cluster(cl, k, names, ir_line, glob, by_out):
    """The call of kernel `k` (whose source goes to `glob['_kernel_sources']`).

    The kernel loops over the output's elements as rows of its last axis (1-D views of
    contiguous arrays, the loops numba vectorises best); broadcast rows and columns are read
    from their sources (`_kernel_input`), 0-d inputs once per element. Python-number literals
    become constants of the cluster's float dtype, so float32 stays float32 in the loop."""
    shape = cl.outvars[0].aval.shape
    inner = int(shape[-1])
    kname = f'_kernel{k}'
    ins = [_kernel_input(v, by_out, inner) for v in cl.invars]
    params = [f'in_{names[src.id]}' for src, _ in ins] + \
             [f'out_{names[o.id]}' for o in cl.outvars]
    first = f'out_{names[cl.outvars[0].id]}'
    body = ['@numba.njit(error_model="numpy", cache=False)',
            f'def {kname}({", ".join(params)}):']
    consts = {}
    head = len(body)
    body += [f'    for r in range({first}.shape[0] // {inner}):',
             f'        for c in range({inner}):',
             f'            i = r * {inner} + c']
    local = {}
    for v, (src, idx) in zip(cl.invars, ins):
        local[v.id] = f'x_{names[v.id]}'
        body.append(f'            x_{names[v.id]} = in_{names[src.id]}{idx}')

    def ref(v, e):
        if not isinstance(v, Literal):
            return local[v.id]
        dt = next((w.aval.dtype for w in e.invars if isinstance(w, Var) and
                   w.aval.dtype.kind == 'f'), None)
        if dt is None or isinstance(v.value, (bool, complex)):
            return _literal_str(v.value)
        key = (dt.name, repr(v.value))
        if key not in consts:
            consts[key] = f'k{len(consts)}'
            body.insert(head + len(consts) - 1,
                        f'    {consts[key]} = np.{dt.name}({_literal_str(v.value)})')
        return consts[key]

    for e in cl.eqns:
        o = e.outvars[0]
        local[o.id] = f't_{names[o.id]}'
        body.append(f'            t_{names[o.id]} = ' +
                    _scalar_expr(e, [ref(v, e) for v in e.invars]) + f'   # {ir_line(e)}')
    for o in cl.outvars:
        body.append(f'            out_{names[o.id]}[i] = t_{names[o.id]}')
    glob.setdefault('_kernel_sources', []).append('\n'.join(body))
    import math
    import textwrap
    glob.update(numba=_get_numba(), math=math)
    lines = textwrap.wrap(f'fused into {kname}: {", ".join(e.prim.name for e in cl.eqns)}',
                          92, initial_indent='    # ', subsequent_indent='    #   ')
    for o in cl.outvars:
        lines.append(f'    {names[o.id]} = np.empty({shape}, {_dtype_expr(o.aval.dtype)})')
    args = [f'np.asarray({names[src.id]})' if idx == '[()]' else
            f'np.ascontiguousarray({names[src.id]}).reshape(-1)' for src, idx in ins]
    args += [f'{names[o.id]}.reshape(-1)' for o in cl.outvars]
    lines.append(f'    {kname}({", ".join(args)})')
    return lines


def compiled(graph, backend='numpy'):
    """The generated Python function of `graph` (cached on the graph); the numba backend
    falls back to NumPy code when numba is not installed."""
    key = ('fn', backend)
    fn = graph._cache.get(key)
    if fn is None:
        fuse = backend == 'numba' and bool(_get_numba())
        src, glob = codegen(graph, fuse=fuse)
        exec(compile(src, f'<chainrule.jit {id(graph):x}>', 'exec'), glob)
        fn = glob['jitted']
        fn.__source__ = src
        graph._cache[key] = fn
    return fn


# --- jit ---------------------------------------------------------------------------------------

class CacheInfo(tuple):
    """`(hits, misses, size)`: calls served from the cache, calls that traced (`.traces` is
    another name for `misses`), and signatures cached."""

    __slots__ = ()

    def __new__(cls, hits, misses, size):
        return tuple.__new__(cls, (hits, misses, size))

    hits = property(lambda s: s[0])
    misses = property(lambda s: s[1])
    size = property(lambda s: s[2])
    traces = misses

    def __repr__(self):
        return f'CacheInfo(hits={self[0]}, misses={self[1]}, size={self[2]})'


def _leaf_sig(x):
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return (x.shape, x.dtype)
    if isinstance(x, (bool, int, float, complex)):
        return (type(x),)
    if getattr(x, '_is_tensor', False):
        return (x.shape, x.dtype)
    raise TypeError(f'jit: an argument of type {type(x).__name__} is neither an array nor a '
                    'number; pass it through static_argnums (if hashable) or close over it')


def _aval_of_leaf(x):
    if isinstance(x, (np.ndarray, np.generic, Tracer)) or getattr(x, '_is_tensor', False):
        return ShapedArray(x.shape, x.dtype)
    return raise_to_aval(np.asarray(x))


class _Entry:
    __slots__ = ('graph', 'fn', 'out_tree', 'closure')

    def __init__(self, graph, fn, out_tree, closure):
        self.graph = graph
        self.fn = fn
        self.out_tree = out_tree
        self.closure = closure


class Jitted:
    """A jitted function (see `jit`)."""

    def __init__(self, fun, static_argnums, backend, optimize_graph, static_argnames=()):
        self.fun = fun
        self.static_argnums = static_argnums
        self.static_argnames = static_argnames
        self.backend = backend
        self.optimize = optimize_graph
        self._cache = {}
        # (shape, dtype) per array argument -> (fn, tree builder); one table per grad mode
        self._fast = ({}, {})
        self._hits = 0
        self._misses = 0
        self._signatures = []
        self.__name__ = f'jit({getattr(fun, "__name__", "fun")})'
        self.__doc__ = getattr(fun, '__doc__', None)
        self.__wrapped__ = fun

    def _split(self, args, kwargs):
        if self.static_argnums or self.static_argnames:
            statics, dyn, kwargs = _args.split_static(self.static_argnums, self.static_argnames,
                                                      args, kwargs)
        else:
            statics, dyn = (), args
        leaves, tree = tree_flatten((dyn, kwargs) if kwargs else dyn)
        return leaves, tree, statics, bool(kwargs)

    def _trace(self, leaves, tree, statics, has_kw, key):
        t0 = time.perf_counter()

        def flat_fun(*xs):
            for x, leaf in zip(xs, leaves):
                if type(leaf) in (bool, int, float, complex):
                    x.weak = True       # a Python number stays weak, as it is in eager NumPy
            dyn = tree_unflatten(tree, xs)
            kwargs = {}
            if has_kw:
                dyn, kwargs = dyn
            args, kwargs = _args.merge_static(statics, dyn, kwargs)
            out = self.fun(*args, **kwargs)
            out_leaves, out_tree = tree_flatten(out)
            box.append(out_tree)
            return out_leaves

        box = []
        graph = trace_to_graph(flat_fun, [_aval_of_leaf(x) for x in leaves])
        # tracers of enclosing transforms that `fun` closed over become explicit inputs, so
        # those transforms see them
        graph, closure = lift_closure(graph)
        graph.in_tree, graph.out_tree = tree, box[0]
        if self.optimize:
            graph = optimize(graph)
        self._misses += 1
        sig = _describe_key(key, leaves)
        if self._signatures:
            logger.info('%s: retracing (trace #%d) for %s; earlier signatures: %s',
                        self.__name__, self._misses, sig, '; '.join(self._signatures[-3:]))
        else:
            logger.debug('%s: tracing for %s', self.__name__, sig)
        self._signatures.append(sig)
        logger.debug('%s: traced and compiled in %.1f ms', self.__name__,
                     (time.perf_counter() - t0) * 1e3)
        return _Entry(graph, None, box[0], closure)

    def _lookup(self, args, kwargs, count=True):
        leaves, tree, statics, has_kw = self._split(args, kwargs)
        leaves = [x.data if getattr(x, '_is_tensor', False) and not x.requires_grad else x
                  for x in leaves]
        try:
            # grad mode is part of the signature: a trace made under no_grad bakes closed-over
            # parameters in as constants, which must not be reused when gradients are wanted
            key = (tree, tuple(map(_leaf_sig, leaves)), statics, _grad_enabled.get())
            entry = self._cache.get(key)
        except TypeError as e:
            if 'unhashable' in str(e):
                raise TypeError(f'{self.__name__}: static arguments must be hashable '
                                f'({e})') from None
            raise
        if entry is not None and entry.closure and not _same_captures(entry):
            entry = None        # a captured Tensor's data changed shape or dtype: trace again
        if entry is None:
            entry = self._trace(leaves, tree, statics, has_kw, key)
            if not entry.closure or _captured_by_reference(entry.closure):
                self._cache[key] = entry
        elif count:
            self._hits += 1
        return entry, leaves

    def __call__(self, *args, **kwargs):
        # fast path: positional arguments made of lists, tuples and NumPy arrays only, a
        # signature seen before (no PyTreeDef, no per-leaf type dispatch: ~2 us, not ~35)
        if not kwargs and not self.static_argnums:
            fk = _fast_key(args)
            if fk is not None:
                fast = self._fast[_grad_enabled.get()].get(fk[0])
                if fast is not None:
                    self._hits += 1
                    return fast[1](fast[0](*fk[1]))
        entry, leaves = self._lookup(args, kwargs)
        fn = entry.fn
        if not entry.closure and not any(isinstance(x, Tracer) for x in leaves):
            if fn is None:
                fn = entry.fn = compiled(entry.graph, self.backend)
            if not kwargs and not self.static_argnums:
                fk = _fast_key(args)
                table = self._fast[_grad_enabled.get()]
                if fk is not None and fk[0] not in table:
                    table[fk[0]] = (fn, _tree_builder(entry.out_tree))
            outs = fn(*leaves)
        else:
            outs = bind(jit_call_p, *leaves, *entry.closure, graph=entry.graph)
        return tree_unflatten(entry.out_tree, outs)

    def graph(self, *args, **kwargs):
        """The optimised graph this function runs for these arguments."""
        return self._lookup(args, kwargs, count=False)[0].graph

    def source(self, *args, **kwargs):
        """The generated Python source this function runs for these arguments."""
        return compiled(self.graph(*args, **kwargs), self.backend).__source__

    def cache_info(self):
        """`CacheInfo(hits, misses, size)`; `misses` counts traces."""
        return CacheInfo(self._hits, self._misses, len(self._cache))

    def cache_clear(self):
        self._cache.clear()
        for table in self._fast:
            table.clear()
        self._hits = self._misses = 0
        self._signatures.clear()

    def __repr__(self):
        return f'<{self.__name__}>'


def _captured_by_reference(closure):
    """Whether every value the staged function closed over is a `Tensor` made outside the
    transforms (a module's parameter): such values are captured *by reference*, as
    `tf.function` captures variables -- the cached program takes the same Tensor objects as
    extra inputs on every call, so in-place updates (an optimizer's step) are seen, and
    `backward()` reaches them. Tracers of enclosing transforms differ from call to call, so a
    program closing over one is traced again each time."""
    return all(getattr(c, '_is_tensor', False) and not isinstance(c.data, Tracer)
               for c in closure)


def _same_captures(entry):
    """The captured Tensors still have the shapes and dtypes the program was traced for."""
    n = len(entry.closure)
    return all(c.shape == v.aval.shape and c.dtype == v.aval.dtype
               for c, v in zip(entry.closure, entry.graph.invars[-n:]))


def _fast_key(args):
    """`(key, leaves)` for arguments made only of lists, tuples and `np.ndarray`s (exact
    types), else None. The key is the pre-order sequence of node types and lengths and leaf
    shapes and dtypes, so equal keys mean the same `PyTreeDef` and the same leaf signatures;
    the leaves come in `tree_flatten`'s order. An explicit stack, no recursion."""
    key, leaves = [], []
    stack = [args]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is np.ndarray:
            leaves.append(x)
            key.append(x.shape)
            key.append(x.dtype)
        elif t is tuple or t is list:
            key.append((t, len(x)))
            stack.extend(x[::-1])
        else:
            return None
    return tuple(key), leaves


def _tree_builder(tree):
    """A function `outs -> pytree of structure tree`: for trees of tuples, lists, `None` and
    leaves, a generated expression such as `lambda o: ([(o[0], o[1])], o[2])` (no stack walk
    per call); for any other node type, `tree.unflatten`."""
    parts = []              # the pre-order nodes, rebuilt backwards as in PyTreeDef.unflatten
    n_leaves = 0
    for n in tree._nodes:
        if n is not None and n[0].type not in (tuple, list, type(None)) or \
                n is not None and n[0].name == 'namedtuple':
            return tree.unflatten
    for n in reversed(tree._nodes):
        if n is None:
            parts.append(None)
            continue
        nt, _, k = n
        children = parts[:-k - 1:-1] if k else []
        if k:
            del parts[-k:]
        if nt.type is type(None):
            parts.append('None')
        elif nt.type is list:
            parts.append(('[', children, ']'))
        else:
            parts.append(('(', children, ',)' if k == 1 else ')'))
    # leaves are numbered in pre-order: write the expression out front to back
    out = []
    stack = [parts[0]]
    while stack:
        x = stack.pop()
        if x is None:
            out.append(f'o[{n_leaves}]')
            n_leaves += 1
        elif isinstance(x, str):
            out.append(x)
        else:
            open_, children, close = x
            out.append(open_)
            seq = []
            for i, c in enumerate(children):
                if i:
                    seq.append(', ')
                seq.append(c)
            stack.append(close)
            stack.extend(reversed(seq))
    return eval('lambda o: ' + ''.join(out))     # noqa: S307 (source built above, no input)


def _describe_key(key, leaves):
    parts = []
    for x in leaves:
        if isinstance(x, (np.ndarray, np.generic, Tracer)):
            parts.append(str(ShapedArray(x.shape, x.dtype)))
        else:
            parts.append(type(x).__name__)
    s = f'({", ".join(parts)})'
    if key[2]:
        s += f' static {dict(key[2])}'
    return s


def jit(fun=None, *, static_argnums=(), static_argnames=(), backend='numpy', optimize=True):
    """Compile `fun`: trace it once per input signature and run generated NumPy code.

    Args:
        fun: a function of arrays (and pytrees of arrays) returning arrays or pytrees of them.
        static_argnums: positional arguments that are Python values, not arrays (sizes, flags,
            modes): each distinct value is traced separately, and code may branch on them.
        static_argnames: the same, by parameter name. Each completes the other through `fun`'s
            signature (as in JAX), so a static argument may be passed by position or keyword.
        backend: `'numpy'` (straight-line NumPy calls) or `'numba'` (fused elementwise loops
            when numba is installed, NumPy otherwise).
        optimize: run the graph passes (on by default; off shows the raw trace).

    Returns:
        A callable with `.source(*args)`, `.graph(*args)`, `.cache_info()`, `.cache_clear()`.
        It can be used as `@jit` or `@jit(static_argnums=...)`.
    """
    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, static_argnames=static_argnames,
                             backend=backend, optimize=optimize)
    nums, names = _args.static_spec(fun, static_argnums, static_argnames)
    if backend not in ('numpy', 'numba'):
        raise ChainruleError(f"jit: backend must be 'numpy' or 'numba', got {backend!r}")
    return Jitted(fun, nums, backend, optimize, names)


def make_graph(fun, static_argnums=(), static_argnames=()):
    """A function returning the (unoptimised) graph `fun` stages for given arguments.

        >>> import numpy as np, chainrule as cr
        >>> print(cr.make_graph(lambda x: x * x)(np.ones(2)))
        { lambda ; a:f64[2]. let
            b:f64[2] = mul a a
          in (b) }

    Args:
        fun: the function to stage.
        static_argnums, static_argnames: as for `jit`.

    Returns:
        `make(*args) -> Graph`; the graph's `in_tree`/`out_tree` record the argument and result
        pytrees, and calling the graph on flat arrays evaluates it.
    """
    j = jit(fun, static_argnums=static_argnums, static_argnames=static_argnames,
            optimize=False)

    def make(*args, **kwargs):
        leaves, tree, statics, has_kw = j._split(args, kwargs)
        return j._trace(leaves, tree, statics, has_kw, (tree, (), statics)).graph

    make.__name__ = f'make_graph({getattr(fun, "__name__", "fun")})'
    return make
