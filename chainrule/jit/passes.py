"""Graph passes: what `jit` does to a traced graph before generating code for it.

What you can do with it: `optimize(graph)` returns a smaller graph computing the same outputs,
and `dce(graph)` drops what no output needs. `optimize` runs, in one forward sweep:

- constant folding (results up to `_FOLD_LIMIT` elements are computed at compile time);
- algebraic simplification of what backward passes produce: `x * 1`, `x + 0`, `x ** 1`,
  `x ** 2` as `x * x`, `neg(neg x)`, a negation absorbed by its user (`a + neg(c)` as
  `a - c`, `neg(c) / k` as `c / -k`), transposing or reshaping twice, broadcasting then summing
  back, multiplying or adding a constant-filled array (as a Python-number literal instead);
- log-softmax fusion: the composite spellings (`x - logsumexp(x)`, `x - m - log(sum(exp(x -
  m)))` with m the maximum, and their backward passes) become the `log_softmax` primitive and
  its VJP (see the section at the end of this file);
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
    """The single value of a constant whose elements are all equal, else None.

    O(1) for a broadcast scalar (every stride 0) and for most arrays that are not uniform
    (a few sampled elements differ); one pass over the others. Constants made during tracing
    are often uniform and large: the backward pass's seed broadcast to the input's shape and
    then scaled eagerly (`g * 0.9` of a concrete `g` is a fresh array of 0.9s)."""
    a = np.asarray(c)
    if a.size == 0 or a.dtype.kind not in 'biufc':
        return None
    first = a.flat[0]
    if a.size == 1 or (a.strides and not any(a.strides)):
        return first.item()
    n = a.size
    probe = a.flat[[n // 7, n // 3, n // 2, n - 1]]
    if not np.all(probe == first) or not np.all(a == first):
        return None
    return first.item()


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
        self.log_softmax = {}  # (x id, axis) -> the fused log_softmax of x (rule 1 below)
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
        fused = _softmax_times_row(b, x, y, out_aval) or _zero_max_cotangent(b, x, y, out_aval)
        if fused is not None:
            return fused
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
        fused = _fuse_log_softmax(b, x, y, out_aval) if name == 'sub' else None
        if fused is not None:
            return fused
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
    return _fold_negation(b, prim, invars, params, out_aval)


def _fold_negation(b, prim, invars, params, out_aval):
    """A negation absorbed by its user (backward passes make them: the cotangent of `-sum`):
    `a + neg(c)` and `neg(c) + a` as `a - c`, `a - neg(c)` as `a + c`, `neg(c) * k` and
    `neg(c) / k` (k a number) as `c * -k` and `c / -k`. Each is the same IEEE operation (a
    subtraction is the addition of the negation; a sign flips exactly), so bitwise the same;
    the negation is left to dead-code elimination when nothing else reads it. Real floats only:
    a complex product mixes the parts, so the sign of a zero part could change."""
    name = prim.name
    if name not in ('add', 'sub', 'mul', 'div') or len(invars) != 2 or \
            out_aval is None or out_aval.dtype.kind != 'f':
        return None
    src = [_producer(b, v) for v in invars]
    neg = [e is not None and e.prim.name == 'neg' and
           isinstance(e.invars[0], Var) and e.invars[0].aval == v.aval
           for e, v in zip(src, invars)]
    if not any(neg):
        return None
    from chainrule.ops.elementwise import add_p, sub_p
    x, y = invars
    if name in ('add', 'sub') and neg[1]:
        return b.emit(sub_p if name == 'add' else add_p, [x, src[1].invars[0]], {}, [out_aval])
    if name == 'add' and neg[0]:
        return b.emit(sub_p, [y, src[0].invars[0]], {}, [out_aval])
    for i in {'mul': (0, 1), 'div': (0,)}.get(name, ()):
        k = invars[1 - i]
        if neg[i] and isinstance(k, Literal) and not isinstance(k.value, bool) and \
                isinstance(k.value, (int, float)):
            lit = Literal(-k.value)
            ins = [src[i].invars[0], lit] if i == 0 else [lit, src[i].invars[0]]
            return b.emit(prim, ins, params, [out_aval])
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


# --- log-softmax: the composite spellings as the fused primitive ---------------------------------
#
# `x - logsumexp(x)` and `x - m - log(sum(exp(x - m)))` (m the maximum along the axis, behind a
# stop_gradient or not, the library's isfinite guard or not, kept dims or squeezed and expanded
# again) stage some eight equations forward and, under `grad`, a dozen backward (with the
# maximum's own VJP when the gradient reaches it). Three rules of the forward sweep turn them into
# the `log_softmax` primitive and its VJP, `g - softmax * sum(g)`:
#
# 1. the subtraction that makes the log-probabilities becomes `log_softmax(x, axis)`;
# 2. the backward's `(c / s) * e` (e = exp(x - m), s = sum(e)) becomes `c * exp(log_softmax(x))`
#    (softmax = e / s), so e, s and the maximum are no longer needed;
# 3. the cotangent that reaches the maximum is zero in exact arithmetic (log-softmax does not
#    change when every x moves by the same amount): its VJP `ct_m * mask / count` is dropped.
#    Rule 3 decides "zero" by collecting the cotangent as a signed sum of row vectors, in which
#    `sum(c * softmax)` counts as `c` (softmax sums to one along the axis), and only fires when
#    a softmax term took part in the cancellation.
#
# Each rule checks its whole pattern: the same input x, one axis for every reduction and
# broadcast, and a maximum that is the maximum of x along that axis.

def _base(b, v):
    """`v` with reshapes (and indexing that only adds or drops size-1 axes) stripped: they keep
    the order of the elements, so a row vector reads the same through them."""
    while isinstance(v, Var):
        e = b.by_out.get(v.id)
        if e is None:
            break
        if e.prim.name == 'reshape' or e.prim.name == 'getitem' and all(
                i is None or isinstance(i, slice) and i == slice(None)
                for i in _index_tuple(e.params['idx'])):
            v = e.invars[0]
            continue
        break
    return v


def _index_tuple(idx):
    return idx if isinstance(idx, tuple) else (idx,)


def _eqn(b, v, name):
    """The emitted equation named `name` that defines `v`, or None."""
    e = _producer(b, v)
    return e if e is not None and e.prim.name == name else None


def _kept(shape, axis):
    return tuple(1 if i == axis else d for i, d in enumerate(shape))


def _row_axis(b, v, shape):
    """(row, axis) when `v` is `broadcast_to(r, shape)` of a row vector r that has size 1 along
    exactly one axis of `shape` (where shape is not 1), else None. `row` is r's `_base`."""
    e = _eqn(b, v, 'broadcast_to')
    if e is None or not isinstance(e.invars[0], Var):
        return None
    src = e.invars[0].aval.shape
    src = (1,) * (len(shape) - len(src)) + tuple(src)
    axes = [i for i, (s, d) in enumerate(zip(src, shape)) if s != d]
    if len(axes) != 1 or src != _kept(shape, axes[0]):
        return None
    return _base(b, e.invars[0]), axes[0]


def _is_max_of(b, m, x, axis):
    """`m` (a row, `_base`d) is the maximum of `x` along `axis`, possibly behind
    `stop_gradient` and the guard `where(isfinite(m), m, 0)` (which `logsumexp` uses)."""
    for _ in range(4):
        e = _producer(b, m)
        if e is None:
            return False
        if e.prim.name == 'max':
            return e.invars[0] is x and tuple(e.params['axis']) == (axis,)
        if e.prim.name == 'stop_gradient':
            m = _base(b, e.invars[0])
        elif e.prim.name == 'where':
            c, t, f = e.invars
            fin = _eqn(b, c, 'isfinite')
            if fin is None or _base(b, fin.invars[0]) is not _base(b, t) or \
                    not _is_zeros(f, b.uniform):
                return False
            m = _base(b, t)
        else:
            return False
    return False


def _log_sum_exp_shift(b, lg, axis):
    """For `lg = log(sum(exp(v), axis))` (rows `_base`d), `v`; else None."""
    e = _eqn(b, lg, 'log')
    s = e and _eqn(b, _base(b, e.invars[0]), 'sum')
    if s is None or tuple(s.params['axis']) != (axis,):
        return None
    ex = _eqn(b, s.invars[0], 'exp')
    return ex.invars[0] if ex is not None and isinstance(ex.invars[0], Var) else None


def _fuse_log_softmax(b, a, y, out_aval):
    """Rule 1: `a - y` that is a composite log-softmax of some x: `[log_softmax(x, axis)]`."""
    if out_aval.dtype.kind != 'f' or not isinstance(a, Var):
        return None
    ra = _row_axis(b, y, out_aval.shape)
    if ra is None:
        return None
    axis = ra[1]
    # x - (m + log s), or (x - m) - log s (a chain of two row subtractions, either order)
    candidates = [(a, [ra[0]])]
    src = _eqn(b, a, 'sub')
    inner = src and _row_axis(b, src.invars[1], out_aval.shape)
    if inner is not None and inner[1] == axis and isinstance(src.invars[0], Var):
        candidates.append((src.invars[0], [ra[0], inner[0]]))
    for x, terms in candidates:
        if len(terms) == 1:
            add = _eqn(b, terms[0], 'add')
            if add is None or not all(isinstance(v, Var) for v in add.invars):
                continue
            terms = [_base(b, v) for v in add.invars]
        if x.aval == out_aval and _is_log_softmax_of(b, x, terms, axis):
            from chainrule.ops.nn import log_softmax_p
            out = b.emit(log_softmax_p, [x], {'axis': axis}, [out_aval])
            b.log_softmax[(x.id, axis)] = out[0]
            return out
    return None


def _is_log_softmax_of(b, x, terms, axis):
    """The two row terms are m, the maximum of x along axis, and log(sum(exp(x - m)))."""
    for m, lg in (terms, terms[::-1]):
        v = _log_sum_exp_shift(b, lg, axis)
        sub = v is not None and _eqn(b, v, 'sub')
        if sub and sub.invars[0] is x and \
                _row_axis(b, sub.invars[1], x.aval.shape) == (m, axis) and \
                _is_max_of(b, m, x, axis):
            return True
    return False


def _softmax_times_row(b, u, w, out_aval):
    """Rule 2: `broadcast(c / s) * e` with e = exp(x - m) and s = sum(e) the pieces of a
    log-softmax of x already fused: `[broadcast(c) * exp(log_softmax(x))]`."""
    for p, e in ((u, w), (w, u)):
        ra = _row_axis(b, p, out_aval.shape)
        ex = _eqn(b, e, 'exp')
        if ra is None or ex is None or not isinstance(ex.invars[0], Var):
            continue
        div, axis = _eqn(b, ra[0], 'div'), ra[1]
        sub = _eqn(b, ex.invars[0], 'sub')
        if div is None or sub is None or not isinstance(div.invars[0], Var):
            continue
        s = _eqn(b, _base(b, div.invars[1]), 'sum')
        logp = b.log_softmax.get((sub.invars[0].id, axis)) if isinstance(
            sub.invars[0], Var) else None
        if logp is None or s is None or s.invars[0] is not e or \
                tuple(s.params['axis']) != (axis,) or \
                _row_axis(b, sub.invars[1], out_aval.shape) is None:
            continue
        c = div.invars[0]
        if c.aval.shape != div.outvars[0].aval.shape:
            continue
        from chainrule.ops.elementwise import exp_p, mul_p
        from chainrule.ops.structural import broadcast_to_p, reshape_p
        kept = _kept(out_aval.shape, axis)
        if c.aval.shape != kept:       # a squeezed row (the spelling with expand_dims)
            c = b.emit(reshape_p, [c], {'shape': kept})[0]
        sm = b.emit(exp_p, [logp], {}, [logp.aval])[0]
        cb = b.emit(broadcast_to_p, [c], {'shape': out_aval.shape}, [out_aval])[0]
        return b.emit(mul_p, [cb, sm] if p is u else [sm, cb], {}, [out_aval])
    return None


def _is_softmax(b, v, axis):
    e = _eqn(b, v, 'exp')
    ls = e and _eqn(b, e.invars[0], 'log_softmax')
    return ls is not None and ls.params['axis'] == axis


def _cancels(b, row, axis, shape):
    """Rule 3's test: the row vector `row` is zero in exact arithmetic, as a signed sum of rows
    where `sum(broadcast(c) * softmax, axis)` counts as c, with at least one such term."""
    coef = {}
    used_softmax = False
    stack = [(row, 1, False)]           # (var, sign, summed along axis from a full array)
    steps = 0
    while stack:
        steps += 1
        if steps > 64:
            return False
        v, k, full = stack.pop()
        if not isinstance(v, Var):
            return False
        if not full:
            v = _base(b, v)
        e = _producer(b, v)
        name = e.prim.name if e is not None else None
        if name == 'neg':
            stack.append((e.invars[0], -k, full))
        elif name in ('add', 'sub') and all(isinstance(u, Var) and u.aval.shape == v.aval.shape
                                            for u in e.invars):
            stack.append((e.invars[0], k, full))
            stack.append((e.invars[1], k if name == 'add' else -k, full))
        elif not full and name == 'sum' and tuple(e.params['axis']) == (axis,) and \
                e.invars[0].aval.shape == shape:
            stack.append((e.invars[0], k, True))
        elif full and name == 'mul' and any(
                _is_softmax(b, sm, axis) and _row_axis(b, r, shape) is not None and
                _row_axis(b, r, shape)[1] == axis for r, sm in (e.invars, e.invars[::-1])):
            r = e.invars[0] if _is_softmax(b, e.invars[1], axis) else e.invars[1]
            stack.append((_eqn(b, r, 'broadcast_to').invars[0], k, False))
            used_softmax = True
        else:
            key = ('sum' if full else 'row', v.id)
            coef[key] = coef.get(key, 0) + k
    return used_softmax and not any(coef.values())


def _zero_max_cotangent(b, u, w, out_aval):
    """Rule 3: `broadcast(c) * weights` where c cancels (`_cancels`): a zero array."""
    if out_aval.dtype.kind != 'f':
        return None
    for p in (u, w):
        ra = _row_axis(b, p, out_aval.shape)
        if ra is not None and _cancels(b, ra[0], ra[1], out_aval.shape):
            return [b.new_const(np.broadcast_to(np.zeros((), out_aval.dtype), out_aval.shape))]
    return None
