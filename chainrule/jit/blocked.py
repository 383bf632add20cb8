"""Cache-blocked execution: run a chain of elementwise equations tile by tile.

What it lets you do: nothing to call. When `jit` lowers a graph to NumPy code
(`chainrule.jit.numpy_codegen`), each maximal run of elementwise ufunc equations over one large
shape is generated as a loop over tiles of `TILE` elements: every equation of the run is one
NumPy call on the tile (`np.sin(x_t, out=_g0b1)`), writing into tile buffers that stay in the
L2 cache, instead of one pass over the whole array per equation. NumPy's own (SIMD) ufunc loops
still do the arithmetic, on the same elements in the same order, so the results are bitwise
those of the unblocked code; what changes is memory traffic: a chain of 70 operations on 10^6
float64 reads and writes 8 MB per operation unblocked, and ~0 MB between the first read and the
last write blocked.

How a run is cut into tiles:

- `'flat'`: every operand from outside the run has the full shape or one element. Full-size
  operands are read through a flat view (`x.reshape(-1)`, a copy only for a non-contiguous
  input) and sliced per tile; one-element operands are read whole, as 0-d arrays (a constant
  array whose elements are all the same is read as that one element: the same value, dtype and
  arithmetic, without streaming it).
- `'rows'`: some operand broadcasts along other axes (a bias row, a column): the tiles are
  blocks of rows of the leading axis; operands with that axis are sliced, the others read whole.

The values a run computes for later equations or the caller are written, tile by tile, into
arrays made by this call (`np.empty`), so they are the caller's like any result. The others live
only in tile buffers, allocated at the first call of the compiled program and then reused by
every tile and every call: a call takes a set from the program's pool and puts it back when it
is done (so threads calling one program at the same time each get their own). A tile buffer is
never an argument, a constant or a result. An equation writes into the tile buffer of an input
that is dead after it (the in-place rule of the unblocked code, per tile); a value read later in
the tile keeps its own buffer.

With the numba backend (`jit(f, backend='numba')`, numba installed), each run of float
arithmetic (`+ - * /`, negation, `abs`), `sin`, `cos`, `exp` and `log` on one dtype is one
compiled loop per tile, which LLVM vectorises whole: the arithmetic is the same IEEE operations
as NumPy's (bitwise, no contraction into fused multiply-adds without fastmath), and the
functions are `chainrule.jit.vecmath`'s (within one ulp of NumPy's; a loop whose sine or cosine meets an
argument beyond their range runs again on that tile with libm's). NumPy keeps `tanh`, `expm1`,
... (its SIMD loops beat libm's scalar calls numba would make) and `maximum`/`minimum`.
Measured on W4 (bench/jit_bench.py --chain, 10^6 float64; interleaved in one process on a
shared, loaded machine, so read the ratios): the NumPy backend 0.83x -> 0.62-0.84x the
hand-written NumPy time, the numba backend 0.58x -> 0.50x (libm sincos pairs, NumPy's exp)
-> 0.13-0.21x (one vectorised loop). The floor of the NumPy backend is its nine float64 sin/cos
calls per element (libm's, ~9 ns each): 0.56x of the hand-written time.
"""

import numpy as np

from chainrule.interpreters.staging import Literal, Var

__all__ = []

# Elements per tile. Measured on the W4 chain (bench/jit_bench.py, 70 equations on 10^6
# float64, an AMD EPYC with 1 MiB of L2 per core): 4-32 K elements are alike, 64 K is slower
# (the live tile buffers no longer fit in L2). Tests lower both to exercise tails and tiles.
TILE = 16384
# Arrays with fewer elements than this run unblocked: they fit in the cache anyway (up to 1 MiB
# in float32, L2's size here), and per-tile calls would only add Python overhead. Measured on the
# MLP step's update of its 256x256 float32 weights (`w - 0.05 * dw`, two equations): 30 us in
# four tiles against 12 us unblocked, so the bound is above 65536 (it was 4 * TILE).
MIN_SIZE = 16 * TILE


class Group:
    """A run `items[start:stop]` of equations computed tile by tile over `shape`."""

    def __init__(self, start, stop, shape, members, transparent):
        self.start, self.stop, self.shape = start, stop, shape
        self.members = members            # the ufunc equations, in order
        self.transparent = transparent    # the elided broadcasts/casts inside the run
        self.outvars = []                 # the values used after the run (made full-size)


def blockable(e):
    """Whether equation `e` is a one-output elementwise ufunc with an array result (what a
    tile loop can run with `out=`)."""
    prim = getattr(e, 'prim', None)
    impl = getattr(prim, 'impl', None)
    return (isinstance(impl, np.ufunc) and impl.nout == 1 and prim.elementwise and
            not e.params and len(e.outvars) == 1 and e.outvars[0].aval.ndim >= 1)


def plan(graph, items, elided, by_out):
    """The groups of `items` to run blocked: maximal runs of blockable equations with one
    output shape of at least `MIN_SIZE` elements (two equations or more), the elided
    broadcasts and casts between them included.

    Args:
        graph: the graph being lowered.
        items: its equations in the order the code runs them.
        elided: ids of the `broadcast_to`/`astype` results that are not made (their users read
            the source).
        by_out: {var id: the equation that makes it}.

    Returns:
        A list of `Group`s, ordered, not overlapping.
    """
    groups, run, shape = [], [], None

    def close():
        members = [k for k in run if items[k].outvars[0].id not in elided]
        if len(members) >= 2 and int(np.prod(shape)) >= MIN_SIZE and \
                (len(shape) == 1 or _tiles(shape)):
            stop = members[-1] + 1
            groups.append(Group(run[0], stop, shape, [items[k] for k in members],
                                [items[k] for k in run if k < stop and k not in members]))
        run.clear()

    for k, it in enumerate(items):
        if getattr(it, 'outvars', None) and it.outvars[0].id in elided and \
                getattr(it, 'prim', None) is not None:
            if run:
                run.append(k)
            continue
        if blockable(it):
            s = tuple(it.outvars[0].aval.shape)
            if run and s != shape:
                close()
            if not run:
                shape = s
            run.append(k)
            continue
        if run:
            close()
    if run:
        close()
    # the values each group must make whole: read by a later equation or a result
    reads = {}
    for k, it in enumerate(items):
        if getattr(it, 'outvars', None) and it.outvars[0].id in elided:
            continue
        for v in _invars(it):
            if isinstance(v, Var):
                reads.setdefault(resolve(v, elided, by_out).id, []).append(k)
    outs = {v.id for v in graph.outvars if isinstance(v, Var)}
    for g in groups:
        for e in g.members:
            o = e.outvars[0]
            if o.id in outs or any(k >= g.stop for k in reads.get(o.id, ())):
                g.outvars.append(o)
    return groups


def _invars(it):
    """Every value an item reads (a fused `_SelectMul` reads its equations' inputs too)."""
    return [v for e in getattr(it, 'eqns', [it]) for v in e.invars]


def _tiles(shape):
    """Whether a shape of two or more axes splits into two or more tiles of rows (or is
    read through a flat view: decided per group, so this is the weaker test)."""
    return shape[0] >= 2 or int(np.prod(shape[1:])) == 0


def resolve(v, elided, by_out):
    """The value an elided broadcast or cast reads (following chains of them)."""
    while isinstance(v, Var) and v.id in elided:
        v = by_out[v.id].invars[0]
    return v


def _uniform(c):
    """The single value of constant array `c` as a 0-d array when all its elements are the
    same bytes (so -0.0 and 0.0, or NaN payloads, are not merged), else None."""
    if not isinstance(c, np.ndarray) or c.size == 0 or c.dtype.hasobject:
        return None
    flat = np.ascontiguousarray(c).reshape(-1)
    b = flat.view(np.uint8).reshape(flat.size, c.dtype.itemsize)
    if not (b == b[0]).all():
        return None
    z = np.array(flat[0])
    z.flags.writeable = False
    return z


def _size(v):
    return int(np.prod(v.aval.shape, dtype=np.int64))


def _take(pool, make):
    """A set of tile buffers from `pool`, or a new one (another thread may hold the others)."""
    try:
        return pool.pop()
    except IndexError:
        return make()


def _make_buffers(specs):
    def make():
        return tuple(np.empty(shape, dt) for shape, dt in specs)
    return make


# what numba's loops compute per tile: arithmetic exactly as NumPy does (IEEE operations, no
# contraction into fused multiply-adds without fastmath), and sine, cosine, exp and log by
# `chainrule.jit.vecmath` (within one ulp of NumPy's); LLVM vectorises the whole loop.
# maximum/minimum are left to NumPy (signed zeros), other transcendental functions too (numba
# would call libm's scalar ones, slower than NumPy's SIMD loops)
_KERNEL_PRIMS = {'add', 'sub', 'mul', 'div', 'neg', 'abs', 'sin', 'cos', 'exp', 'log'}


def _kernel_runs(g, flat, elided, by_out, casts):
    """{first index: member indices} of the runs of two or more consecutive members that one
    numba loop computes: float arithmetic, sine, cosine, exp and log on full-size or one-element
    values of one dtype."""
    def fits(e):
        dt = e.outvars[0].aval.dtype
        if e.prim.name not in _KERNEL_PRIMS or dt not in (np.float32, np.float64):
            return False
        for v in e.invars:
            if isinstance(v, Literal):
                if isinstance(v.value, bool) or not isinstance(v.value, (int, float)):
                    return False
                continue
            r = resolve(v, elided, by_out)
            if v.id in casts or r.aval.dtype != dt or (
                    r.aval.shape != g.shape and _size(r) != 1):
                return False
        return True

    runs, cur = {}, []
    if not flat:
        return runs
    for j, e in enumerate(g.members + [None]):
        if e is not None and fits(e) and (
                not cur or e.outvars[0].aval.dtype == g.members[cur[0]].outvars[0].aval.dtype):
            cur.append(j)
            continue
        if len(cur) >= 2:
            runs[cur[0]] = list(cur)
        cur = [j] if e is not None and fits(e) else []
    return runs


def _kernel_source(kname, members, ins, outs, names, elided, by_out):
    """The numba source of a loop computing `members` on tiles (`ins`: the vars it reads,
    with whether they are one element; `outs`: the vars it writes), and, where it calls
    vectorised sines or cosines, the source of its twin with libm's (`{kname}_libm`); the
    first returns whether an argument of theirs was beyond `vecmath.TRIG_LIMIT`."""
    from chainrule.jit.numba_backend import _scalar_expr, _trig_guards
    dt = members[0].outvars[0].aval.dtype
    params = [f'in_{names[r.id]}' for r, _ in ins] + [f'out_{names[o.id]}' for o in outs]
    local, consts = {}, {}
    for r, _ in ins:
        local[r.id] = f'x_{names[r.id]}'
    args_of = {}
    for e in members:
        args = []
        for v in e.invars:
            if isinstance(v, Literal):
                key = repr(v.value)
                consts.setdefault(key, f'k{len(consts)}')
                args.append(consts[key])
            else:
                args.append(local[resolve(v, elided, by_out).id])
        args_of[id(e)] = args
        local[e.outvars[0].id] = f't_{names[e.outvars[0].id]}'
    guards = _trig_guards(members, lambda e: args_of[id(e)][0], ' ' * 8)

    def source(name, libm):
        check = guards and not libm
        lines = ['@numba.njit(error_model="numpy", cache=False)',
                 f'def {name}({", ".join(params)}):']
        lines += [f'    {k} = np.{dt.name}({key})' for key, k in consts.items()]
        lines += [f'    x_{names[r.id]} = in_{names[r.id]}[()]' for r, one in ins if one]
        lines += ['    bad = False'] if check else []
        lines.append(f'    for i in range(out_{names[outs[0].id]}.shape[0]):')
        lines += [f'        x_{names[r.id]} = in_{names[r.id]}[i]' for r, one in ins if not one]
        lines += [f'        t_{names[e.outvars[0].id]} = {_scalar_expr(e, args_of[id(e)], libm)}'
                  for e in members]
        lines += [f'        out_{names[o.id]}[i] = t_{names[o.id]}' for o in outs]
        return '\n'.join(lines + (guards + ['    return bad'] if check else []))
    return [source(kname, False)] + ([source(f'{kname}_libm', True)] if guards else [])


def emit(g, gi, names, ir_line, literal, glob, elided, casts, by_out, dtype_expr,
         const_values, fuse=False):
    """The source lines of group `g` (the `gi`-th of its program).

    Args:
        names: {var id: Python name}; the group's results get theirs as full arrays.
        ir_line: the IR text of an equation (for the comments).
        literal: `literal(v, e)`, the source of Python-number argument `v` of equation `e`.
        glob: the generated function's globals (tile buffer pools go there).
        elided, casts: ids of the elided broadcasts/casts (casts make their users pass
            `dtype=`).
        by_out: {var id: the equation that makes it}.
        dtype_expr: `dtype_expr(dtype)`, the source of a dtype.
        const_values: {var id: value} of the program's constants.
        fuse: the numba backend (numba is installed): runs of float arithmetic, sine,
            cosine, exp and log as one compiled loop per tile (`_kernel_runs`).
    """
    shape = g.shape
    n = int(np.prod(shape))
    defined = {e.outvars[0].id for e in g.members}
    whole = {o.id for o in g.outvars}
    # how the operands from outside are read
    outside = {}
    for e in g.members:
        for v in e.invars:
            r = resolve(v, elided, by_out)
            if isinstance(r, Var) and r.id not in defined and r.id not in outside:
                outside[r.id] = r
    flat = all(r.aval.shape == shape or _size(r) == 1 for r in outside.values())
    if flat:
        inner, tile, count = 1, TILE, n
        buf_shape = (TILE,)
    else:
        inner = int(np.prod(shape[1:]))
        tile = max(1, TILE // inner) if inner else TILE
        count = shape[0]
        buf_shape = (tile,) + tuple(shape[1:])
    tile = min(tile, max(count, 1))
    buf_shape = (tile,) + buf_shape[1:]
    p = f'_g{gi}'
    pre, head, body = [], [], []
    ref = {}                       # var id -> its source text inside the tile loop
    zero_d = set()                 # the operands read as one element
    n_el = ' '.join(str(d) for d in shape)
    pre.append(f'    # cache-blocked (chainrule.jit.blocked): {len(g.members)} elementwise '
               f'equations on [{n_el}] ({"flat" if flat else "rows of the leading axis"}), '
               f'in tiles of {tile * (inner if not flat else 1)} elements')
    for r in outside.values():
        nm = names[r.id]
        const = const_values.get(r.id)
        if r.aval.shape == shape and const is not None and _uniform(const) is not None:
            glob[f'{p}_{nm}_1'] = _uniform(const)
            ref[r.id] = f'{p}_{nm}_1'
            zero_d.add(r.id)
        elif r.aval.shape == shape and flat:
            pre.append(f'    {p}_{nm} = np.asarray({nm}).reshape(-1)')
            head.append(f'        {nm}_t = {p}_{nm}[_s:_e]')
            ref[r.id] = f'{nm}_t'
        elif r.aval.shape == shape or (not flat and r.aval.ndim == len(shape) and
                                       r.aval.shape[0] == shape[0] != 1):
            pre.append(f'    {p}_{nm} = np.asarray({nm})')
            head.append(f'        {nm}_t = {p}_{nm}[_s:_e]')
            ref[r.id] = f'{nm}_t'
        elif flat and r.aval.ndim >= 1:
            # one element, read as a 0-d array (the same dtype promotion as the array)
            pre.append(f'    {p}_{nm} = np.asarray({nm}).reshape(())')
            ref[r.id] = f'{p}_{nm}'
            zero_d.add(r.id)
        else:
            ref[r.id] = nm
            zero_d.add(r.id)
    for o in g.outvars:
        nm = names[o.id]
        pre.append(f'    {nm} = np.empty({tuple(shape)}, {dtype_expr(o.aval.dtype)})')
        src = f'{p}_{nm}'
        pre.append(f'    {src} = {nm}.reshape(-1)' if flat else f'    {src} = {nm}')
        head.append(f'        {nm}_t = {src}[_s:_e]')
        ref[o.id] = f'{nm}_t'
    # tile buffers: each value used only inside the run gets one while it is live
    last = {}
    for j, e in enumerate(g.members):
        for v in e.invars:
            r = resolve(v, elided, by_out)
            if isinstance(r, Var):
                last[r.id] = j
    specs, free, buf_of = [], {}, {}

    def new_buffer(o, dead, j):
        """(target, in place?) for output `o` of member `j`: the buffer of a dead input
        of its dtype, else a free one, else a new one."""
        if o.id in whole:
            return ref[o.id], False
        same = [r for r in dead if specs[buf_of[r.id]][1] == o.aval.dtype]
        if same:
            dead.remove(same[0])
            buf_of[o.id] = buf_of[same[0].id]
        else:
            pool = free.setdefault(o.aval.dtype, [])
            if not pool:
                pool.append(len(specs))
                specs.append((buf_shape, o.aval.dtype))
            buf_of[o.id] = pool.pop()
        ref[o.id] = names[o.id]
        if last.get(o.id, -1) <= j:      # never read in the run (nor after): dead now
            dead.append(o)
        return (names[same[0].id], True) if same else (f'{p}b{buf_of[o.id]}', False)

    def emit_run(js):
        """The call of one numba loop computing members `js` (see `_kernel_runs`)."""
        members = [g.members[k] for k in js]
        here = {e.outvars[0].id for e in members}
        end, ins, reads = js[-1], {}, {}
        for e in members:
            for v in e.invars:
                r = resolve(v, elided, by_out)
                if isinstance(r, Var):
                    reads[r.id] = r
                    if r.id not in here:
                        ins[r.id] = r
        outs = [e.outvars[0] for e in members
                if e.outvars[0].id in whole or last.get(e.outvars[0].id, -1) > end]
        outs = outs or [members[-1].outvars[0]]
        targets = [new_buffer(o, [], end)[0] for o in outs]     # never an input's buffer
        for r in reads.values():
            if r.id in buf_of and last.get(r.id, -1) <= end:
                free.setdefault(specs[buf_of[r.id]][1], []).append(buf_of[r.id])
        kname = f'{p}k{len(kernels)}'
        srcs = _kernel_source(kname, members, [(r, r.id in zero_d) for r in ins.values()],
                              outs, names, elided, by_out)
        kernels.extend(srcs)
        args = []
        for r in ins.values():
            if r.id in zero_d:      # one element: a 0-d array for the loop to read
                pre.append(f'    {p}_{names[r.id]}_0 = np.asarray({ref[r.id]})')
                args.append(f'{p}_{names[r.id]}_0')
            else:
                args.append(ref[r.id])
        body.extend(f'        # {ir_line(e)}' for e in members)
        call = f'{kname}({", ".join(args + targets)})'
        if len(srcs) == 1:
            body.append(f'        #   (as one numba loop, {kname}: the same IEEE arithmetic'
                        + (', vecmath\'s exp' if any(e.prim.name == 'exp' for e in members)
                           else '') + ')')
            body.append(f'        {call}')
        else:
            body.append(f'        #   (as one numba loop, {kname}: the same IEEE arithmetic, '
                        f'vecmath\'s sin/cos/exp;')
            body.append('        #   again with libm\'s sin/cos where an argument is beyond '
                        'their range)')
            body.append(f'        if {call}:')
            body.append(f'            {kname}_libm({", ".join(args + targets)})')
        body.extend(f'        {ref[o.id]} = {t}' for o, t in zip(outs, targets)
                    if ref[o.id] != t)

    runs, kernels = {}, []
    if fuse:
        runs = _kernel_runs(g, flat, elided, by_out, casts)
    in_run = {j for js in runs.values() for j in js}
    for j, e in enumerate(g.members):
        if j in runs:
            emit_run(runs[j])
            continue
        if j in in_run:
            continue
        o = e.outvars[0]
        ins = [resolve(v, elided, by_out) for v in e.invars]
        dead = list({r.id: r for r in ins if isinstance(r, Var) and r.id in buf_of and
                     last.get(r.id) == j}.values())
        out, inplace = new_buffer(o, dead, j)
        for r in dead:
            if r.id in buf_of:
                free.setdefault(specs[buf_of[r.id]][1], []).append(buf_of[r.id])
        args = []
        for v in e.invars:
            if isinstance(v, Literal):
                args.append(literal(v, e))
            else:
                args.append(ref[resolve(v, elided, by_out).id])
        cast = any(isinstance(v, Var) and v.id in casts for v in e.invars)
        body.append(f'        # {ir_line(e)}' + ('   (in place: its input is dead)'
                                                  if inplace else ''))
        body.append(f'        {ref[o.id]} = np.{e.prim.impl.__name__}({", ".join(args)}, '
                    f'out={out}' + (f', dtype={dtype_expr(o.aval.dtype)})' if cast else ')'))
    glob[f'{p}_pool'] = []
    glob[f'{p}_make'] = _make_buffers(specs)
    glob['_take'] = _take
    if kernels:
        import math
        from chainrule.jit.numba_backend import _get_numba, vector_globals
        glob.setdefault('_kernel_sources', []).extend(kernels)
        glob.update(numba=_get_numba(), math=math, **vector_globals())
    bufs = [f'{p}b{b}' for b in range(len(specs))]
    lines = pre
    for e in g.transparent:
        why = 'cast' if e.outvars[0].id in casts else 'broadcast'
        lines.append(f'    # {ir_line(e)}   (implicit: the ufuncs below {why})')
    if bufs:
        lines.append(f'    {p}_bufs = _take({p}_pool, {p}_make)')
        lines.append(f'    {", ".join(bufs)}, = {p}_bufs')
    lines.append(f'    for _s in range(0, {count}, {tile}):')
    last_start = (count - 1) // tile * tile if count else 0
    if count % tile and bufs:
        m = count - last_start
        lines.append(f'        if _s == {last_start}:   # the last tile: {m} of {tile}')
        lines.append(f'            {", ".join(bufs)} = {", ".join(b + f"[:{m}]" for b in bufs)}')
    lines.append(f'        _e = _s + {tile}')
    lines += head + body
    if bufs:
        lines.append(f'    {p}_pool.append({p}_bufs)')
    return lines
