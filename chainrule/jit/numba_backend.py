"""The numba backend: fuse runs of elementwise equations into compiled loops.

What you can do with it: `jit(f, backend='numba')` with numba installed
(`pip install chainrule[jit]`) runs each run of elementwise operations on one shape
(float32/float64 arithmetic and math functions, comparisons, `where`, casts) as one loop that
numba compiles, instead of one NumPy call (and one temporary array) per operation. Without
numba the NumPy code runs instead, silently. The kernels' source is part of `.source()`.

This module schedules the equations so fusible runs stay together (`_fusion_schedule`) and
writes each run as a kernel (`_emit_cluster`); `chainrule.jit.numpy_codegen` calls both when
asked to fuse.
"""

import numpy as np

from chainrule.interpreters.staging import Literal, Var, _literal_str

__all__ = []


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


# the functions `chainrule.jit.vecmath` computes in a form LLVM vectorises (within one ulp of
# NumPy's); sine and cosine only for finite |x| <= vecmath.TRIG_LIMIT, so a loop that calls
# them checks its arguments (`_trig_guards`) and is run again with libm's where one is beyond
VECTOR_MATH = ('sin', 'cos', 'exp', 'log')


def _scalar_expr(e, args, libm_trig=False):
    """The scalar expression of fusible equation `e` on the argument expressions `args`
    (float32/float64 `sin`, `cos`, `exp`, `log` by `chainrule.jit.vecmath`, unless
    `libm_trig` asks for libm's sine and cosine)."""
    name = e.prim.name
    if name == 'astype':
        dt = e.params['dtype']
        return f'({args[0]} != 0)' if dt == np.bool_ else f'np.{dt.name}({args[0]})'
    dt = e.outvars[0].aval.dtype
    if name in VECTOR_MATH and dt in (np.float32, np.float64) and not (
            libm_trig and name in ('sin', 'cos')):
        return f'vm_{name}{dt.itemsize * 8}({args[0]})'
    return _SCALAR[name].format(*args)


def _trig_guards(eqns, arg_of, indent):
    """The lines, at the end of a loop body, that set `bad` when an argument of a vectorised
    sine or cosine in `eqns` is beyond `vecmath.TRIG_LIMIT`, inf or NaN (`arg_of(e)`: the
    argument's expression); none when there is no such call."""
    seen = []
    for e in eqns:
        if e.prim.name in ('sin', 'cos') and e.outvars[0].aval.dtype in (np.float32,
                                                                        np.float64):
            a = arg_of(e)
            if a not in seen:
                seen.append(a)
    # an or-reduction LLVM vectorises (an `if` setting `bad` keeps the loop scalar)
    return [f'{indent}bad |= not vm_trig_ok({a})' for a in seen]


def vector_globals():
    """The names the kernels' source uses for `chainrule.jit.vecmath`'s functions."""
    from chainrule.jit import vecmath
    names = {f'vm_{f}{b}': getattr(vecmath, f'{f}{b}') for f in VECTOR_MATH for b in (32, 64)}
    return dict(names, vm_trig_ok=vecmath.trig_ok)


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
    become constants of the cluster's float dtype, so float32 stays float32 in the loop.
    A kernel with vectorised sines or cosines returns whether an argument was beyond their
    range; the call then runs its twin with libm's (`_kernel{k}_libm`, compiled when first
    needed)."""
    from chainrule.jit.numpy_codegen import _dtype_expr
    shape = cl.outvars[0].aval.shape
    inner = int(shape[-1])
    kname = f'_kernel{k}'
    ins = [_kernel_input(v, by_out, inner) for v in cl.invars]
    params = [f'in_{names[src.id]}' for src, _ in ins] + \
             [f'out_{names[o.id]}' for o in cl.outvars]
    first = f'out_{names[cl.outvars[0].id]}'
    consts = {}
    local = {v.id: f'x_{names[v.id]}' for v in cl.invars}
    for e in cl.eqns:
        local[e.outvars[0].id] = f't_{names[e.outvars[0].id]}'

    def ref(v, e):
        if not isinstance(v, Literal):
            return local[v.id]
        dt = next((w.aval.dtype for w in e.invars if isinstance(w, Var) and
                   w.aval.dtype.kind == 'f'), None)
        if dt is None or isinstance(v.value, (bool, complex)):
            return _literal_str(v.value)
        key = (dt.name, repr(v.value))
        if key not in consts:
            consts[key] = (f'k{len(consts)}', f'np.{dt.name}({_literal_str(v.value)})')
        return consts[key][0]

    guards = _trig_guards(cl.eqns, lambda e: ref(e.invars[0], e), ' ' * 12)

    def source(name, libm):
        loop = [f'            x_{names[v.id]} = in_{names[src.id]}{idx}'
                for v, (src, idx) in zip(cl.invars, ins)]
        for e in cl.eqns:
            loop.append(f'            {local[e.outvars[0].id]} = ' +
                        _scalar_expr(e, [ref(v, e) for v in e.invars], libm) +
                        f'   # {ir_line(e)}')
        loop += [f'            out_{names[o.id]}[i] = t_{names[o.id]}' for o in cl.outvars]
        check = guards and not libm
        return '\n'.join(
            ['@numba.njit(error_model="numpy", cache=False)',
             f'def {name}({", ".join(params)}):'] +
            [f'    {c} = {val}' for c, val in consts.values()] +
            (['    bad = False'] if check else []) +
            [f'    for r in range({first}.shape[0] // {inner}):',
             f'        for c in range({inner}):',
             f'            i = r * {inner} + c'] + loop +
            (guards + ['    return bad'] if check else []))

    sources = [source(kname, False)] + ([source(f'{kname}_libm', True)] if guards else [])
    glob.setdefault('_kernel_sources', []).extend(sources)
    import math
    import textwrap
    glob.update(numba=_get_numba(), math=math, **vector_globals())
    lines = textwrap.wrap(f'fused into {kname}: {", ".join(e.prim.name for e in cl.eqns)}',
                          92, initial_indent='    # ', subsequent_indent='    #   ')
    for o in cl.outvars:
        lines.append(f'    {names[o.id]} = np.empty({shape}, {_dtype_expr(o.aval.dtype)})')
    args = [f'np.asarray({names[src.id]})' if idx == '[()]' else
            f'np.ascontiguousarray({names[src.id]}).reshape(-1)' for src, idx in ins]
    args += [f'{names[o.id]}.reshape(-1)' for o in cl.outvars]
    if guards:
        lines.append(f'    if {kname}({", ".join(args)}):   # sin/cos beyond vecmath: libm')
        lines.append(f'        {kname}_libm({", ".join(args)})')
    else:
        lines.append(f'    {kname}({", ".join(args)})')
    return lines
