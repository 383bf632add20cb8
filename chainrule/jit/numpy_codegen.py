"""NumPy code generation: lower an optimised graph to a straight-line Python function.

What you can do with it: `codegen(graph)` returns the source and globals of a function that
calls NumPy directly, one call per equation, each preceded by the equation as a comment (what
`Jitted.source()` shows); `compiled(graph, backend)` executes that source once and caches the
function on the graph.

An elementwise result is written into the buffer of an input that is provably dead
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
are `np.dot` and transposes/reshapes ndarray methods (no Python dispatch); a sum over one axis
of a float matrix is a BLAS product with a ones vector (`_sum_as_dot`: 3-4 -> 1-1.5 us);
`log_softmax` is written out as its impl's ufunc calls (`_log_softmax_lines`, bitwise the
same); and `a @ b.T` of the shapes OpenBLAS is slow at runs as `(b @ a.T).T`
(`_transposed_operand`: 111 -> 91 us on the step's 64x256 by (256x256).T product).

Results are the caller's: the `return` line hands out an array made by the call as it is,
and copies what would otherwise alias an argument, a constant of the program or another result
(`_return_line`), so writing into a result never changes a later call; decided at compile time,
so the usual program (every result computed) pays nothing.

Runs of elementwise equations over one large shape (`chainrule.jit.blocked`) are generated as
a loop over cache-sized tiles, each equation one ufunc call per tile into reused tile buffers.

With `fuse=True` (the numba backend, `chainrule.jit.numba_backend`) a program with such runs
keeps the tiles and lets numba compute runs of arithmetic, sin, cos and exp in them as vectorised
loops; otherwise runs of elementwise equations become calls of fused kernels.
"""

import keyword

import numpy as np

from chainrule.interpreters.staging import (
    Literal, ShapedArray, Var, _literal_str, _params_str, dtype_short)
from chainrule.jit import blocked
from chainrule.jit.numba_backend import (
    _Cluster, _emit_cluster, _fusion_schedule, _get_numba, _kernel_input)

__all__ = ['codegen', 'compiled']


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
        'no_grad': lambda a, p: a[0],
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

    by_out = {o.id: e for e in graph.eqns for o in e.outvars}

    def schedule(fuse):
        items = _fusion_schedule(graph) if fuse else _select_muls(graph, list(graph.eqns))
        casts = _implicit_casts(graph, items)
        elided = _implicit_broadcasts(graph, items, by_out) | casts
        groups = [] if fuse else blocked.plan(graph, items, elided, by_out)
        return items, elided, casts, groups

    # large arrays run in cache-sized tiles, numba's vectorised loops computing the runs of
    # arithmetic, sin, cos and exp in them (`chainrule.jit.blocked`); small ones, fused into
    # numba loops
    items, elided, casts, groups = schedule(False)
    tiled_kernels = fuse and bool(groups)
    if fuse and not groups:
        items, elided, casts, groups = schedule(True)
    kernels = []
    group_no = {g.start: i for i, g in enumerate(groups)}
    groups = {g.start: g for g in groups}
    skip = {k for g in groups.values() for k in range(g.start + 1, g.stop)}
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
    # for the results (`_return_line`): which vars hold a new array, which may alias an
    # argument or constant (their ids), which may be read-only views
    made, srcs, readonly = set(), {}, set()
    for v in list(graph.invars) + list(graph.constvars):
        roots[v.id] = frozenset()
        srcs[v.id] = frozenset([v.id])

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
        ins = [v for v in e.invars if isinstance(v, Var)]
        for o in e.outvars:
            if fresh:
                made.add(o.id)
            else:
                srcs[o.id] = frozenset().union(*[srcs.get(v.id, ()) for v in ins])
                if e.prim.name == 'broadcast_to' or any(v.id in readonly for v in ins):
                    readonly.add(o.id)
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

    def alias_elided(e):
        """NumPy's ufuncs broadcast (and cast) by themselves: the users read the source."""
        src_var = e.invars[0]
        names[e.outvars[0].id] = names[src_var.id]
        roots[e.outvars[0].id] = roots.get(src_var.id, frozenset())
        for r in roots[e.outvars[0].id]:
            live_until[r] = max(live_until.get(r, -1), last.get(e.outvars[0].id, -1))

    transposed = set()   # products computed transposed (`_transposed_operand`)

    def reads_transposed(e):
        """Whether item `e` reads a product computed transposed: its ufunc result is then
        made C-ordered (NumPy would follow the transposed operand's layout, and the
        transposition would spread to later values and to the results)."""
        return any(isinstance(v, Var) and v.id in transposed for v in e.invars)
    lines = [f'def {name}({", ".join(names[v.id] for v in graph.invars)}):']
    consts = {v.id: c for v, c in zip(graph.constvars, graph.consts)}
    for k, e in enumerate(items):
        if k in skip:
            continue
        if k in groups:
            g = groups[k]
            lines.extend(blocked.emit(
                g, group_no[k], names, ir_line, lambda v, e: _typed_literal(v, e, glob), glob,
                elided, casts, by_out, _dtype_expr, consts, fuse=tiled_kernels))
            for o in g.outvars:
                roots[o.id] = frozenset([o.id])
                owns.add(o.id)
                made.add(o.id)
                live_until[o.id] = last.get(o.id, -1)
            for t in g.transparent:
                alias_elided(t)
            continue
        if isinstance(e, _Cluster):
            lines.extend(_emit_cluster(e, len(kernels), names, ir_line, glob, by_out))
            kernels.append(e)
            for o in e.outvars:
                roots[o.id] = frozenset([o.id])
                owns.add(o.id)
                made.add(o.id)
                live_until[o.id] = last.get(o.id, -1)
            continue
        if isinstance(e, _SelectMul):
            o = e.outvars[0]
            reuse = find_reuse([e.invars[0]], o, k)
            out = reuse and names[reuse[0].id]
            if not out and reads_transposed(e):
                out = _C_ORDER
            lines.extend(e.emit(names, ir_line, glob, out))
            mark_outputs(e, reuse, fresh=True)
            continue
        prim = e.prim
        if e.outvars[0].id in elided:
            alias_elided(e)
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
        reuse, pre, fresh = None, [], isinstance(impl, np.ufunc) or prim.name in _FRESH_PRIMS
        if isinstance(impl, np.ufunc) and prim.elementwise and not e.params:
            o = e.outvars[0]
            reuse = find_reuse(e.invars, o, k)
            cast = any(isinstance(v, Var) and v.id in casts for v in e.invars)
            call = f'np.{impl.__name__}({", ".join(args)}' + (
                f', out={names[reuse[0].id]}' if reuse else
                _C_ORDER if reads_transposed(e) else '') + (
                f', dtype={_dtype_expr(o.aval.dtype)})' if cast else ')')
        elif prim.name in _VIEW_METHODS and isinstance(e.invars[0], Var) and \
                e.invars[0].aval.ndim >= 1:
            call = _VIEW_METHODS[prim.name](args, _code_params(prim, e.params, glob))
        elif prim.name == 'log_softmax' and e.invars[0].aval.dtype.kind == 'f':
            pre, call = _log_softmax_lines(args[0], outs[0], e.params['axis'])
            fresh = True
        elif prim.name == 'sum' and _sum_as_dot(e, args, glob):
            call = _sum_as_dot(e, args, glob)
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
            # (not for a result of the program: the caller gets NumPy's C order)
            bt = _transposed_operand(e, by_out) if two_d and last.get(
                e.outvars[0].id) != float('inf') else None
            if bt is not None:
                call = f'np.dot({names[bt.id]}, {args[0]}.T).T'
                transposed.add(e.outvars[0].id)
        else:
            fn = f'_{prim.name}_impl'
            glob[fn] = impl
            ps = _code_params(prim, e.params, glob)
            kw = ''.join(f', {k}={v}' for k, v in sorted(ps.items()))
            call = f'{fn}({", ".join(args)}{kw})'
        target = ', '.join(outs) + (',' if prim.multiple_results and len(outs) == 1 else '')
        lines.append(f'    # {ir_line(e)}' + ('   (in place: its input is dead)' if reuse else ''))
        lines.extend(pre)
        lines.append(f'    {target} = {call}')
        mark_outputs(e, reuse, fresh)
        if e.outvars[0].id in transposed:
            # a transposed view: an elementwise result written into it runs NumPy's strided
            # loops (the MLP's ReLU mask on 64x256: 29 us in place, 15 us into a new array,
            # 4 us when both are C-ordered), so the next result gets an array of its own
            owns.discard(e.outvars[0].id)
    lines.append(_return_line(graph, names, by_out, made, roots, srcs, readonly, glob))
    src = '\n'.join(lines) + '\n'
    if glob.get('_kernel_sources'):
        src = '\n'.join(glob.pop('_kernel_sources')) + '\n\n' + src
    return src, glob


def _return_line(graph, names, by_out, made, roots, srcs, readonly, glob):
    """The `return` of the generated function: results the caller owns.

    A result is handed out as it is when it is a new array of this call (or a writable view
    of one) that no other result shares; an argument or constant of the program, a second
    result on the same buffer and a read-only view (a broadcast) are copied; anything else
    (a view of an argument, what an unfamiliar impl returns) goes through `_own`, which
    copies when the array is a view, read-only, or one of the arguments and constants it may
    alias. So writing into a result never changes a later call, an argument, or another
    result."""
    outs, seen_vars, seen_roots = [], set(), set()
    for v in graph.outvars:
        if isinstance(v, Literal):
            outs.append(_literal_str(v.value))
            continue
        n = names[v.id]
        rs = frozenset([v.id]) if v.id in made else roots.get(v.id, frozenset())
        if v.id in seen_vars or rs & seen_roots or v.id in readonly or srcs.get(v.id) == {v.id}:
            outs.append(f'{n}.copy()' if v.aval.ndim else f'_own({n}, {n})')
        elif v.id in made or (rs and not srcs.get(v.id) and v.id in by_out and
                              by_out[v.id].prim.name in _VIEW_PRIMS):
            outs.append(n)
        else:
            outs.append(f'_own({", ".join([n] + sorted(names[i] for i in srcs.get(v.id, ())))})')
        seen_vars.add(v.id)
        seen_roots |= rs
    if any('_own(' in o for o in outs):
        glob['_own'] = _own
    return f'    return ({", ".join(outs)}{"," if len(outs) == 1 else ""})'


# the ops whose results the generated code makes itself as views (or copies) of their input
_VIEW_PRIMS = {'broadcast_to', 'reshape', 'transpose', 'astype', 'getitem', 'stop_gradient',
               'no_grad'}


def _own(x, *sources):
    """`x` when it is a whole writable array of its own, not one of `sources`; else a copy."""
    if not isinstance(x, np.ndarray):
        return x                # NumPy scalars and Python numbers are immutable
    if x.base is not None or not x.flags.writeable or any(x is s for s in sources):
        return x.copy()
    return x


def _transposed_operand(e, by_out):
    """For `a @ b.T` (float matrices, b.T a transpose in the graph) of the shapes where OpenBLAS
    (SkylakeX kernels, as NumPy's wheels select on AVX-512 CPUs) is slow, `b`: the product is
    then computed as `(b @ a.T).T`, the same sums of products in another layout. Measured
    (float32, one thread, AMD EPYC): a 64x256 by 256x256 product 111 -> 91 us, 64x512 by
    512x512 481 -> 352 us, 32x256 by 256x256 72 -> 48 us; with a few rows more (128x256 by
    256x256), a short inner dimension (64x64 by 64x256) or a narrow result, NumPy's layout is as
    fast or faster, counting the strided read of the transposed result by the next elementwise
    operation (about +10 us on 64x256: see `codegen`). So: at most 64 rows, an inner dimension of at least 128,
    and at least twice as many columns as rows. Else None."""
    a, b = e.invars
    src = by_out.get(b.id)
    if src is None or src.prim.name != 'transpose' or tuple(src.params['axes']) != (1, 0) or \
            not isinstance(src.invars[0], Var):
        return None
    m, k = a.aval.shape
    n = b.aval.shape[1]
    return src.invars[0] if m <= 64 and k >= 128 and n >= 2 * m else None


def _log_softmax_lines(x, out, axis):
    """`log_softmax(x, axis)` written out as the ufunc calls its impl makes (the same
    operations in the same order, so bitwise the same), without the impl's Python call and
    the `.max`/`.sum` method wrappers (float32 64x10: 15 -> 7 us in the MLP step): the
    statements before the last, and the last call."""
    m, s = f'_{out}_max', f'_{out}_lse'
    return [f'    {m} = np.maximum.reduce({x}, axis={axis}, keepdims=True)',
            f'    {out} = np.subtract({x}, {m})',
            f'    {s} = np.add.reduce(np.exp({out}), axis={axis}, keepdims=True)'], \
        f'np.subtract({out}, np.log({s}, out={s}), out={out})'


# A sum over one axis of a real float matrix is a matrix-vector product with a ones vector: BLAS
# runs it 1.5-5x faster than NumPy's add.reduce (float32 64x256: 2.8 -> 1.2 us over the rows,
# 4.5 -> 1.3 us along them; 1000x1000: 100 -> 50 us). NumPy adds rows one after another and
# BLAS does the same, so over axis 0 the rounding is of the same kind; along the contiguous axis
# NumPy sums pairwise, so only short rows (`_DOT_SUM_ROW`) go to BLAS. A result of only -0.0s
# becomes +0.0 (BLAS starts from +0.0); every other value agrees to rounding.
_DOT_SUM_ROW = 128          # NumPy's pairwise sum is plain 8-way accumulation up to 128 elements
_DOT_SUM_ONES = 1 << 16     # the longest ones vector held as a constant of the program


def _sum_as_dot(e, args, glob):
    """`np.dot(ones, x)` / `np.dot(x, ones)` for `sum(x, axis)` of a 2-D float32/float64 `x`
    over one axis (see above), with the ones shaped for `keepdims`; else None."""
    x = e.invars[0]
    if not isinstance(x, Var) or x.aval.ndim != 2 or \
            x.aval.dtype not in (np.float32, np.float64) or len(e.params['axis']) != 1:
        return None
    (axis,) = e.params['axis']
    n = int(x.aval.shape[axis])
    if n > _DOT_SUM_ONES or axis == 1 and n > _DOT_SUM_ROW:
        return None
    keep = e.params['keepdims']
    shape = ((1, n) if axis == 0 else (n, 1)) if keep else (n,)
    name = f'_ones_{dtype_short(x.aval.dtype)}_{"x".join(map(str, shape))}'
    if name not in glob:
        glob[name] = np.ones(shape, x.aval.dtype)
        glob[name].flags.writeable = False
    return f'np.dot({name}, {args[0]})' if axis == 0 else f'np.dot({args[0]}, {name})'


_C_ORDER = ", order='C'"    # a ufunc's keyword for a C-ordered result (see `reads_transposed`)


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
        """The lines; `out`: the name of a dead buffer to write into, `_C_ORDER`, or None."""
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
        to = out if out == _C_ORDER else f', out={out}' if out else ''
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


# the numba backend compiles a program whose arrays are all at most this large as one numba
# function (`chainrule.jit.numba_program`: per-call overhead is what small arrays pay for);
# larger elementwise chains run in cache-sized tiles (`chainrule.jit.blocked`)
_WHOLE_PROGRAM_SIZE = 1 << 18


def _whole_program(graph):
    vs = list(graph.invars) + list(graph.constvars) + [o for e in graph.eqns for o in e.outvars]
    return bool(_get_numba()) and all(
        isinstance(v.aval, ShapedArray) and
        int(np.prod(v.aval.shape, dtype=np.int64)) <= _WHOLE_PROGRAM_SIZE for v in vs)


def compiled(graph, backend='numpy'):
    """The generated Python function of `graph` (cached on the graph); the numba backend
    falls back to NumPy code when numba is not installed."""
    key = ('fn', backend)
    fn = graph._cache.get(key)
    if fn is None and backend == 'numba' and _whole_program(graph):
        from chainrule.jit.numba_program import compile_program
        fn = compile_program(graph)
        if fn is not None:
            graph._cache[key] = fn
    if fn is None:
        fuse = backend == 'numba' and bool(_get_numba())
        src, glob = codegen(graph, fuse=fuse)
        exec(compile(src, f'<chainrule.jit {id(graph):x}>', 'exec'), glob)
        fn = glob['jitted']
        fn.__source__ = src
        graph._cache[key] = fn
    return fn
