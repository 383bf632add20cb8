"""Structured control flow that can be staged and differentiated: `cond`, `scan`,
`fori_loop`, `while_loop`.

What you can do with it: write branches and loops whose decision depends on traced values,
inside `jit` (where a Python `if` on a traced value is an error) and under `grad`/`jvp`:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> from chainrule import lax
    >>> f = cr.jit(lambda x: lax.cond(x > 0, lambda x: cnp.sin(x), lambda x: -x, x))
    >>> float(f(0.5)), float(f(-2.0))
    (0.479425538604203, 2.0)
    >>> def power(x, n):                    # x**n by a loop whose carry is differentiated
    ...     return lax.fori_loop(0, n, lambda i, acc: acc * x, 1.0)
    >>> cr.grad(power)(3.0, 4)              # 4 * 3**3
    108.0

Each function stages the functions it is given into graphs (`chainrule.interpreters.staging`)
and binds one primitive carrying them: `cond_p`, `scan_p`, `while_p`. Their rules are graphs
derived from those graphs, bound with the same primitives, so every transform composes:

- `cond`: the VJP is a `cond` between the two branches' backward graphs, the JVP a `cond`
  between their JVP graphs.
- `scan` (and `fori_loop` with concrete bounds, which is a `scan` over `arange`): the VJP runs
  one scan forward that keeps every intermediate carry, then one scan in the opposite
  direction over the body's backward graph (memory: one carry per step, as in JAX); the JVP
  scans the body's JVP graph with the tangents carried alongside.
- `while_loop` (and `fori_loop` with traced bounds): forward mode only. Its trip count is not
  known before it runs, so reverse mode would need to store an unknown number of carries; a
  `grad` through it raises an error saying to use `fori_loop` with static bounds or `scan`.

Batching (`vmap`): a `cond` with a shared predicate stays one `cond` of the batched branches;
with a batched predicate both branches run and `where` picks per example. A `scan` scans the
batched body (carries batched). A `while_loop` runs while any example's condition holds, and
finished examples keep their carry, so each gets its own trip count.

Functions given to these take and return pytrees of arrays; branches and loop bodies must
return the same structure, shapes and dtypes as their inputs (the error says which differ).
"""

import numpy as np

from chainrule._results import owned, owned_copies
from chainrule._tensor_face_args import faced_for
from chainrule.core import (
    AllArgs, ChainruleError, ConcretizationError, GradientError, PerArg, Primitive, ShapeError,
    Tracer, bind, concrete)
from chainrule.interpreters.staging import (
    Graph, ShapedArray, Var, eval_graph, lift_closure, raise_to_aval, trace_to_graph)
from chainrule.jit import (
    backward_graph, compiled, instantiate_tangents, jvp_graph, optimize)
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['cond', 'scan', 'fori_loop', 'while_loop', 'cond_p', 'scan_p', 'while_p']


# --- staging helpers ---------------------------------------------------------------------------

def _aval(x):
    if getattr(x, '_is_tensor', False):
        x = x.data
    if isinstance(x, Tracer):
        return ShapedArray(x.shape, x.dtype)
    return raise_to_aval(np.asarray(x))


def _in_loop_body(kind):
    from chainrule.random._staged import in_loop_body    # (chainrule.random imports lax)
    return in_loop_body(kind)


def _stage_flat(flat_fun, avals):
    """Stage `flat_fun(*flat args) -> flat list` into an optimised graph whose inputs are the
    tracers it closed over (lifted, so enclosing transforms see them) and then its arguments.

    Returns:
        (graph, lifted tracers)."""
    graph, lifted = lift_closure(trace_to_graph(flat_fun, avals))
    n = len(avals)
    graph = Graph(graph.constvars, graph.consts, graph.invars[n:] + graph.invars[:n],
                  graph.eqns, graph.outvars)
    return optimize(graph), lifted


def _stage(fun, in_tree, avals):
    """Stage `fun(*unflattened args)`: (graph, lifted tracers, out_tree), as `_stage_flat`."""
    box = []

    def flat(*xs):
        leaves, tree = tree_flatten(fun(*tree_unflatten(in_tree, xs)))
        box.append(tree)
        return leaves

    graph, lifted = _stage_flat(flat, avals)
    return graph, lifted, box[0]


def _with_inputs(graph, before, avals):
    """`graph` with unused inputs of `avals` inserted at position `before`."""
    extra = [Var(a) for a in avals]
    inv = graph.invars[:before] + extra + graph.invars[before:]
    return Graph(graph.constvars, graph.consts, inv, graph.eqns, graph.outvars)


def _types(avals):
    return '(' + ', '.join(map(str, avals)) + ')'


def _as_operand(x):
    if isinstance(x, Tracer) or getattr(x, '_is_tensor', False):
        return x
    return np.asarray(x)


def _graph_shape(graph, prefix=()):
    return [(tuple(prefix) + a.shape, a.dtype) for a in graph.out_avals]


def _batch_size(args, dims):
    for a, d in zip(args, dims):
        if d is not None:
            return int(np.shape(a)[d]) if not isinstance(a, Tracer) else int(a.shape[d])
    raise ChainruleError('batching rule called with nothing batched')


def batched_graph(graph, dims, size):
    """`graph` mapped over a leading batch axis of the inputs whose `dims` entry is 0 (the
    others are shared), with every output batched on axis 0. Cached on the graph."""
    key = ('vmap', tuple(dims), size)
    bg = graph._cache.get(key)
    if bg is None:
        from chainrule import ops
        from chainrule.interpreters.batching import vmap_flat
        avals = [ShapedArray((size,) + a.shape, a.dtype) if d is not None else a
                 for a, d in zip(graph.in_avals, dims)]
        out_avals = graph.out_avals

        def f(*a):
            if all(d is None for d in dims):
                outs, odims = eval_graph(graph, a), [None] * len(out_avals)
            else:
                outs, odims, _ = vmap_flat(lambda *b: eval_graph(graph, b), list(a),
                                           list(dims))
            return [o if d == 0 else ops.broadcast_to(o, (size,) + oa.shape)
                    for o, d, oa in zip(outs, odims, out_avals)]

        bg = graph._cache[key] = optimize(trace_to_graph(f, avals))
    return bg


# --- cond ----------------------------------------------------------------------------------------

def _cond_impl(pred, *args, branches):
    return tuple(compiled(branches[1 if bool(pred) else 0])(*args))


def _cond_vjp(needed, g, ans, pred, *args, branches):
    """The predicate gets zeros; the operands that need one their cotangents, from one `cond`
    of the branches' backward graphs (staged for exactly those operands)."""
    cts = iter(bind(cond_p, pred, *args, *g, branches=tuple(
        backward_graph(b, needed[1:]) for b in branches)))
    return [np.zeros(np.shape(pred), np.result_type(pred)) if needed[0] else None] + \
        [next(cts) if k else None for k in needed[1:]]


def _cond_jvp(tangents, out, pred, *args, branches):
    ts = instantiate_tangents(tangents[1:], branches[0].in_avals)
    return bind(cond_p, pred, *args, *ts, branches=tuple(jvp_graph(b) for b in branches))


def _cond_batch(args, dims, *, branches):
    """vmap of cond: with a shared predicate, one cond of the batched branches; with a batched
    predicate, both batched branches run and `where` picks each example's result."""
    from chainrule import ops
    from chainrule.jit import jit_call_p
    pred, operands = args[0], args[1:]
    odims = list(dims[1:])
    size = _batch_size(args, dims)
    bgs = tuple(batched_graph(b, odims, size) for b in branches)
    if dims[0] is None:
        return bind(cond_p, pred, *operands, branches=bgs), 0
    outs_f = bind(jit_call_p, *operands, graph=bgs[0])
    outs_t = bind(jit_call_p, *operands, graph=bgs[1])
    res = []
    for t, f in zip(outs_t, outs_f):
        p = ops.reshape(pred, (size,) + (1,) * (len(ops.shape_of(t)) - 1))
        res.append(ops.where(p, t, f))
    return tuple(res), 0


cond_p = Primitive(
    'cond', _cond_impl, multiple_results=True, vjp=AllArgs(_cond_vjp), jvp=_cond_jvp,
    batch=_cond_batch,
    shape=lambda *avals, branches: _graph_shape(branches[0]),
    doc='Run branches[1] if the first argument is true, else branches[0].')


def cond(pred, true_fun, false_fun, *operands):
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`, stageable.

    Args:
        pred: a boolean scalar (possibly traced).
        true_fun, false_fun: functions of `operands` returning the same pytree structure,
            shapes and dtypes.
        *operands: pytrees of arrays.

    Returns:
        The chosen branch's result. Both branches are staged (and must type-check); only one
        runs. Differentiable in the operands (and in values the branches close over).
    """
    if np.shape(pred) != ():
        raise ShapeError(f'cond: the predicate must be a scalar, got shape {np.shape(pred)}')
    # PyTorch code given Tensors sees Tensors (chainrule._tensor_face_args)
    true_fun, false_fun = faced_for(true_fun, operands), faced_for(false_fun, operands)
    leaves, tree = tree_flatten(operands)
    leaves = [_as_operand(x) for x in leaves]
    avals = [_aval(x) for x in leaves]
    gt, lt, tt = _stage(lambda *a: true_fun(*a), tree, avals)
    gf, lf, tf = _stage(lambda *a: false_fun(*a), tree, avals)
    if tt != tf or gt.out_avals != gf.out_avals:
        raise ChainruleError(
            f'cond: the branches return different types: true_fun gives {tt} of '
            f'{_types(gt.out_avals)}, false_fun gives {tf} of {_types(gf.out_avals)}')
    # one input list for both: (lifted of true, lifted of false, operands)
    gt = _with_inputs(gt, len(lt), [_aval(x) for x in lf])
    gf = _with_inputs(gf, 0, [_aval(x) for x in lt])
    outs = bind(cond_p, pred, *lt, *lf, *leaves, branches=(gf, gt))
    return tree_unflatten(tt, outs)


# --- scan -----------------------------------------------------------------------------------------

def _scan_impl(*args, body, length, reverse, num_consts, num_carry):
    fn = compiled(body)
    nc, nk = num_consts, num_carry
    consts = args[:nc]
    carry = list(args[nc:nc + nk])
    xs = args[nc + nk:]
    ny = len(body.outvars) - nk
    ys = [[None] * length for _ in range(ny)]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        out = fn(*consts, *carry, *[x[i] for x in xs])
        carry = out[:nk]
        for j in range(ny):
            ys[j][i] = out[nk + j]
    y_avals = body.out_avals[nk:]
    stacked = [np.stack(y) if length else np.zeros((0,) + a.shape, a.dtype)
               for y, a in zip(ys, y_avals)]
    return tuple(owned(list(carry), args) + stacked)    # (length 0: the carry is the arguments)


def _scan_shape(*avals, body, length, reverse, num_consts, num_carry):
    out = body.out_avals
    return [(a.shape, a.dtype) for a in out[:num_carry]] + \
        [((length,) + a.shape, a.dtype) for a in out[num_carry:]]


def _bind_scan(consts, carry, xs, body, length, reverse):
    return bind(scan_p, *consts, *carry, *xs, body=body, length=length, reverse=reverse,
                num_consts=len(consts), num_carry=len(carry))


def _scan_vjp_all(g, args, body, length, reverse, nc, nk):
    consts, init, xs = args[:nc], args[nc:nc + nk], args[nc + nk:]
    avals = body.in_avals
    c_avals, k_avals, x_avals = avals[:nc], avals[nc:nc + nk], avals[nc + nk:]
    y_avals = body.out_avals[nk:]
    # 1. forward again, keeping the carry each step starts from
    res_body = body._cache.get('residual_body')
    if res_body is None:
        res_body = optimize(trace_to_graph(
            lambda *a: eval_graph(body, a)[:nk] + list(a[nc:nc + nk]), avals))
        body._cache['residual_body'] = res_body
    carries = _bind_scan(consts, init, xs, res_body, length, reverse)[nk:]
    # 2. backward, in the opposite direction, through the body's backward graph:
    #    carry = (cotangent of consts so far, cotangent of the carry); xs = (carry_i, x_i, ct_y_i)
    bwd = backward_graph(body)
    back_body = body._cache.get('back_body')
    if back_body is None:
        def step(*a):
            cs, acc, ctc = a[:nc], a[nc:2 * nc], a[2 * nc:2 * nc + nk]
            ci = a[2 * nc + nk:2 * nc + 2 * nk]
            xi = a[2 * nc + 2 * nk:2 * nc + 2 * nk + len(x_avals)]
            cty = a[2 * nc + 2 * nk + len(x_avals):]
            cts = eval_graph(bwd, list(cs) + list(ci) + list(xi) + list(ctc) + list(cty))
            new_acc = [s + c for s, c in zip(acc, cts[:nc])]
            return new_acc + list(cts[nc:nc + nk]) + list(cts[nc + nk:])
        back_body = optimize(trace_to_graph(
            step, c_avals + c_avals + k_avals + k_avals + x_avals + y_avals))
        body._cache['back_body'] = back_body
    ct_carry, ct_ys = list(g[:nk]), list(g[nk:])
    zeros = [np.zeros(a.shape, a.dtype) for a in c_avals]
    out = _bind_scan(consts, zeros + ct_carry, list(carries) + list(xs) + ct_ys, back_body,
                     length, not reverse)
    return tuple(out)     # (ct_consts, ct_init, ct_xs): one per argument, in order


def _scan_vjp(needed, g, ans, *args, body, length, reverse, num_consts, num_carry):
    cts = _scan_vjp_all(g, args, body, length, reverse, num_consts, num_carry)
    return [c if k else None for c, k in zip(cts, needed)]


def _scan_jvp(tangents, out, *args, body, length, reverse, num_consts, num_carry):
    nc, nk = num_consts, num_carry
    n = len(args)
    ts = instantiate_tangents(tangents, [_aval(a) for a in args])
    jb = body._cache.get('jvp_body')
    if jb is None:
        jg = jvp_graph(body, with_primals=True)   # (args, tangents) -> (outs, out tangents)
        m = len(body.outvars)

        def step(*a):
            # a = (consts, consts_t, carry, carry_t, x, x_t) -> (carry, carry_t, y, y_t)
            cs, cts_ = a[:nc], a[nc:2 * nc]
            k, kt = a[2 * nc:2 * nc + nk], a[2 * nc + nk:2 * nc + 2 * nk]
            rest = a[2 * nc + 2 * nk:]
            nx = len(rest) // 2
            x, xt = rest[:nx], rest[nx:]
            o = eval_graph(jg, list(cs) + list(k) + list(x) + list(cts_) + list(kt) + list(xt))
            outs, ots = o[:m], o[m:]
            return list(outs[:nk]) + list(ots[:nk]) + list(outs[nk:]) + list(ots[nk:])

        avals = body.in_avals
        ca, ka, xa = avals[:nc], avals[nc:nc + nk], avals[nc + nk:]
        jb = optimize(trace_to_graph(step, ca + ca + ka + ka + xa + xa))
        body._cache['jvp_body'] = jb
    consts, carry, xs = args[:nc], args[nc:nc + nk], args[nc + nk:n]
    tc, tk, tx = ts[:nc], ts[nc:nc + nk], ts[nc + nk:]
    res = _bind_scan(list(consts) + tc, list(carry) + tk, list(xs) + tx, jb, length, reverse)
    ny = len(body.outvars) - nk
    return tuple(res[nk:2 * nk]) + tuple(res[2 * nk + ny:])


def _scan_batch(args, dims, *, body, length, reverse, num_consts, num_carry):
    """vmap of scan: one scan of the batched body; the carry is batched, the xs are scanned
    along their second axis (the first is the batch), the stacked ys come out (length, batch,
    ...)."""
    from chainrule import ops
    nc, nk = num_consts, num_carry
    size = _batch_size(args, dims)
    consts, carry, xs = args[:nc], args[nc:nc + nk], args[nc + nk:]
    cd, kd, xd = dims[:nc], dims[nc:nc + nk], dims[nc + nk:]
    carry = [c if d == 0 else ops.broadcast_to(c, (size,) + tuple(np.shape(c)) if not
                                               isinstance(c, Tracer) else (size,) + c.shape)
             for c, d in zip(carry, kd)]
    xs = [ops.transpose(x, (1, 0) + tuple(range(2, len(ops.shape_of(x))))) if d == 0 else x
          for x, d in zip(xs, xd)]
    bbody = batched_graph(body, list(cd) + [0] * nk + list(xd), size)
    out = _bind_scan(consts, carry, xs, bbody, length, reverse)
    return out, (0,) * nk + (1,) * (len(out) - nk)


scan_p = Primitive('scan', _scan_impl, multiple_results=True, vjp=AllArgs(_scan_vjp),
                   jvp=_scan_jvp, shape=_scan_shape, batch=_scan_batch,
                   doc='Loop `body` over the leading axis of the xs, threading a carry.')


def scan(f, init, xs=None, length=None, reverse=False):
    """Loop `f(carry, x) -> (carry, y)` over the leading axis of `xs`, stacking the `y`s.

        def scan(f, init, xs):             # the meaning, in Python
            carry, ys = init, []
            for x in xs:
                carry, y = f(carry, x)
                ys.append(y)
            return carry, np.stack(ys)

    Args:
        f: the loop body; `carry` keeps its pytree structure, shapes and dtypes.
        init: the initial carry (a pytree of arrays).
        xs: a pytree of arrays sharing a leading axis (or None, with `length`).
        length: the number of steps, when `xs` is None.
        reverse: run from the last element to the first (`ys` stay aligned with `xs`).

    Returns:
        `(final carry, stacked ys)`.
    """
    c_leaves, c_tree = tree_flatten(init)
    c_leaves = [_as_operand(x) for x in c_leaves]
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [_as_operand(x) for x in x_leaves]
    lengths = {int(np.shape(x)[0]) if np.shape(x) else None for x in x_leaves}
    if None in lengths:
        raise ShapeError('scan: every array in xs needs a leading axis to scan over, got shapes '
                         f'{[np.shape(x) for x in x_leaves]}')
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        raise ShapeError(f'scan: xs leading axes and length disagree: {sorted(lengths)} '
                         f'(shapes {[np.shape(x) for x in x_leaves]}, length={length})')
    (n,) = lengths
    c_avals = [_aval(x) for x in c_leaves]
    x_avals = [ShapedArray(_aval(x).shape[1:], _aval(x).dtype) for x in x_leaves]
    nk = len(c_leaves)
    box = []
    f = faced_for(f, (init, xs))

    def body(*a):
        carry = tree_unflatten(c_tree, a[:nk])
        x = tree_unflatten(x_tree, a[nk:])
        out = f(carry, x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ChainruleError('scan: f must return a pair (new carry, y)')
        new_c, new_tree = tree_flatten(out[0])
        if new_tree != c_tree or [_aval(c) for c in new_c] != c_avals:
            raise ChainruleError(
                f'scan: f must return a carry of the type it was given: got {new_tree} of '
                f'{_types([_aval(c) for c in new_c])}, expected {c_tree} of {_types(c_avals)}. '
                'Cast with .astype or broadcast the initial carry to the shape the body gives.')
        ys, y_tree = tree_flatten(out[1])
        box.append(y_tree)
        return list(new_c) + list(ys)

    with _in_loop_body('lax.scan'):
        graph, lifted = _stage_flat(body, c_avals + x_avals)
    out = _bind_scan(lifted, c_leaves, x_leaves, graph, n, bool(reverse))
    return tree_unflatten(c_tree, out[:nk]), tree_unflatten(box[0], out[nk:])


# --- fori_loop ------------------------------------------------------------------------------------

def fori_loop(lower, upper, body_fun, init_val):
    """`val = body_fun(i, val)` for `i` in `range(lower, upper)`; returns `val`.

    With concrete bounds this is a `scan` over `arange(lower, upper)` (reverse-mode
    differentiable); with traced bounds it is a `while_loop` (forward mode only).
    """
    body_fun = faced_for(body_fun, (lower, init_val))
    try:
        lo, hi = int(concrete(lower)), int(concrete(upper))
    except ConcretizationError:
        def cond_fun(state):
            return state[0] < state[1]

        def body(state):
            i, u, val = state
            return i + 1, u, body_fun(i, val)

        return while_loop(cond_fun, body, (lower, upper, init_val))[2]
    if hi <= lo:
        return owned_copies(init_val)      # the caller's own arrays, as every other result
    carry, _ = scan(lambda val, i: (body_fun(i, val), None), init_val,
                    np.arange(lo, hi))
    return carry


# --- while_loop -----------------------------------------------------------------------------------

def _while_impl(*args, cond, body, num_cond_consts, num_body_consts):
    cf, bf = compiled(cond), compiled(body)
    ncc, nbc = num_cond_consts, num_body_consts
    cc, bc = args[:ncc], args[ncc:ncc + nbc]
    carry = tuple(args[ncc + nbc:])
    while bool(cf(*cc, *carry)[0]):
        carry = bf(*bc, *carry)
    return tuple(owned(list(carry), args))    # (no step ran: the carry is the arguments)


def _while_vjp(i, g, ans, *args, **params):
    raise GradientError(
        'while_loop has no reverse-mode derivative: its trip count is only known when it runs, '
        'so the carries a backward pass needs cannot be planned. Use lax.fori_loop with '
        'concrete bounds or lax.scan (both reverse-differentiable), or forward mode (cr.jvp).')


def _while_jvp(tangents, out, *args, cond, body, num_cond_consts, num_body_consts):
    ncc, nbc = num_cond_consts, num_body_consts
    nk = len(args) - ncc - nbc
    ts = instantiate_tangents(tangents, [_aval(a) for a in args])
    key = ('while_jvp',)
    pair = body._cache.get(key)
    if pair is None:
        jg = jvp_graph(body, with_primals=True)
        b_avals = body.in_avals
        ba, ka = b_avals[:nbc], b_avals[nbc:]

        def jbody(*a):
            # (body consts, their tangents, carry, carry tangents) -> (carry, carry tangents)
            return eval_graph(jg, list(a[:nbc]) + list(a[2 * nbc:2 * nbc + nk]) +
                              list(a[nbc:2 * nbc]) + list(a[2 * nbc + nk:]))

        jb = optimize(trace_to_graph(jbody, ba + ba + ka + ka))
        c_avals = cond.in_avals
        jc = optimize(trace_to_graph(lambda *a: eval_graph(cond, a[:ncc + nk]),
                                     c_avals + ka))
        pair = (jc, jb)
        body._cache[key] = pair
    jc, jb = pair
    cc, bc, carry = args[:ncc], args[ncc:ncc + nbc], args[ncc + nbc:]
    bct, kt = ts[ncc:ncc + nbc], ts[ncc + nbc:]
    res = bind(while_p, *cc, *bc, *bct, *carry, *kt, cond=jc, body=jb,
               num_cond_consts=ncc, num_body_consts=2 * nbc)
    return tuple(res[nk:])


def _while_batch(args, dims, *, cond, body, num_cond_consts, num_body_consts):
    """vmap of while_loop: every example's carry is batched; the loop runs while any
    example's condition holds, and examples whose condition is false keep their carry
    (`where(pred, body(carry), carry)`), so each ends with its own trip count."""
    from chainrule import ops
    ncc, nbc = num_cond_consts, num_body_consts
    size = _batch_size(args, dims)
    cc, bc, carry = args[:ncc], args[ncc:ncc + nbc], args[ncc + nbc:]
    ccd, bcd, kd = list(dims[:ncc]), list(dims[ncc:ncc + nbc]), dims[ncc + nbc:]
    carry = [c if d == 0 else ops.broadcast_to(c, (size,) + tuple(ops.shape_of(c)))
             for c, d in zip(carry, kd)]
    nk = len(carry)
    key = ('while_batch', tuple(ccd), tuple(bcd), size)
    pair = body._cache.get(key)
    if pair is None:
        bcond = batched_graph(cond, ccd + [0] * nk, size)     # -> (size,) booleans
        bbody = batched_graph(body, bcd + [0] * nk, size)
        c_avals = bcond.in_avals
        k_avals = bbody.in_avals[nbc:]

        def any_cond(*a):
            p = eval_graph(bcond, a)[0]
            return [ops.greater(ops.sum(ops.astype(p, np.int64)), 0)]

        def masked_body(*a):
            p = eval_graph(bcond, list(a[:ncc]) + list(a[ncc + nbc:]))[0]
            k = list(a[ncc + nbc:])
            new = eval_graph(bbody, list(a[ncc:ncc + nbc]) + k)
            return [ops.where(ops.reshape(p, (size,) + (1,) * (len(ops.shape_of(n)) - 1)), n, c)
                    for n, c in zip(new, k)]

        pair = (optimize(trace_to_graph(any_cond, c_avals)),
                optimize(trace_to_graph(masked_body, c_avals[:ncc] + bbody.in_avals[:nbc] +
                                        k_avals)))
        body._cache[key] = pair
    gc, gb = pair
    out = bind(while_p, *cc, *cc, *bc, *carry, cond=gc, body=gb, num_cond_consts=ncc,
               num_body_consts=ncc + nbc)
    return out, (0,) * len(out)


while_p = Primitive(
    'while', _while_impl, multiple_results=True, vjp=PerArg(_while_vjp), jvp=_while_jvp,
    batch=_while_batch,
    shape=lambda *avals, cond, body, num_cond_consts, num_body_consts: _graph_shape(body),
    doc='Apply `body` to the carry while `cond` holds (forward-mode differentiable only).')


def while_loop(cond_fun, body_fun, init_val):
    """`while cond_fun(val): val = body_fun(val)`; returns `val`. Stageable; differentiable in
    forward mode only (see the module docstring).

    Args:
        cond_fun: carry -> boolean scalar.
        body_fun: carry -> carry of the same pytree structure, shapes and dtypes.
        init_val: the initial carry.
    """
    cond_fun, body_fun = faced_for(cond_fun, (init_val,)), faced_for(body_fun, (init_val,))
    leaves, tree = tree_flatten(init_val)
    leaves = [_as_operand(x) for x in leaves]
    avals = [_aval(x) for x in leaves]
    flat = tree_flatten(tuple(leaves))[1]       # the inputs as one flat tuple
    with _in_loop_body('lax.while_loop'):
        cg, cl, _ = _stage(lambda *a: cond_fun(tree_unflatten(tree, a)), flat, avals)
    if cg.out_avals[0].shape != () or len(cg.outvars) != 1:
        raise ShapeError(f'while_loop: cond_fun must return a boolean scalar, got '
                         f'{_types(cg.out_avals)}')
    with _in_loop_body('lax.while_loop'):
        bg, bl, bt = _stage(lambda *a: body_fun(tree_unflatten(tree, a)), flat, avals)
    if bt != tree or bg.out_avals != avals:
        raise ChainruleError(
            f'while_loop: body_fun must return a carry of the type it was given: got {bt} of '
            f'{_types(bg.out_avals)}, expected {tree} of {_types(avals)}')
    out = bind(while_p, *cl, *bl, *leaves, cond=cg, body=bg, num_cond_consts=len(cl),
               num_body_consts=len(bl))
    return tree_unflatten(tree, out)
