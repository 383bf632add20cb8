"""Graph passes: what `jit` does to a traced graph before generating code for it.

What you can do with it: `optimize(graph)` returns a smaller graph computing the same outputs,
and `dce(graph)` drops what no output needs. `optimize` runs, in one forward sweep:

- constant folding (results up to `_FOLD_LIMIT` elements are computed at compile time);
- algebraic simplification of what backward passes produce: `x * 1`, `x + 0`, `x ** 1`,
  `x ** 2` as `x * x`, `neg(neg x)`, transposing or reshaping twice, broadcasting then summing
  back, multiplying or adding a constant-filled array (as a Python-number literal instead);
- common-subexpression elimination;

then dead-code elimination.
"""

import numpy as np

from chainrule.core import Tracer
from chainrule.interpreters.staging import (
    Eqn, Graph, Literal, Var, freeze, raise_to_aval)

__all__ = ['optimize', 'dce']


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
