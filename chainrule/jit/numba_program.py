"""The numba backend's whole-program mode: one compiled function per jitted program.

What you can do with it: nothing directly. `jit(f, backend='numba')` tries it first: when every
equation of the optimised graph is one this module can write for numba (float32/float64
matrices and vectors: elementwise arithmetic, math functions, comparisons and casts, matrix
products, 2-D transposes, reshapes, broadcasts, sums and maxima over one axis or all,
`log_softmax` along the last axis), the whole program becomes one `numba.njit` function and a
call of the jitted function is one call of it. Otherwise (or when numba refuses the
function), the numba backend's per-kernel code runs, as before.

Why: on small arrays the time of a jitted program beyond its matrix products is the dozens of
NumPy calls between them (~1-3 us each, and as many passes over memory). Measured on the MLP
training step of `bench/jit_bench.py --mlp` (64-256-256-10, batch 64, float32, one thread):
the products alone 348 us, the NumPy program 443 us, the per-kernel numba program 431 us, the
whole-program function 375 us.

How each equation is written:
- runs of elementwise equations over one shape are the numba backend's fused loops
  (`numba_backend._emit_cluster`: the same scalar code, NaN-propagating maximum, vectorised
  exp/log/sin/cos), called from the program (inlined by LLVM); a lone elementwise equation is a
  one-equation loop, and one on 0-d values a scalar expression;
- a matrix product is BLAS's gemm, called through the C interface of the OpenBLAS library NumPy
  itself loaded (`_blas_gemm`): numba's own `np.dot` calls SciPy's copy of OpenBLAS, an older
  build that measured 10 % slower on the step's 64x256 by 256x256 product (98 vs 87 us); where
  that library cannot be found, numba's `np.dot`. `a @ b.T` of the shapes OpenBLAS is slow at
  is `(b @ a.T).T` (`numpy_codegen._transposed_operand`), and an elementwise loop reading such a
  transposed result reads it in tiles (`_tiled_c_copy`) instead of column by column;
- sums, maxima and log-softmax are loops in this module (`_sum_rows` and friends).

Results are the caller's (as the NumPy code's): every array the program returns is made by
this call, and a result that is an argument, a view or a second copy of another result is
copied. Constants of the program are passed as arguments on each call (numba would freeze a
global array at compile time; NumPy's code reads the captured array as it is).
"""

import ctypes
import glob as _glob
import logging
import os

import numpy as np

from chainrule.interpreters.staging import Literal, Var, _literal_str, _params_str
from chainrule.jit.numba_backend import (
    _SCALAR, _Cluster, _emit_cluster, _fusion_schedule, _get_numba, _scalar_expr,
    vector_globals)

__all__ = []

logger = logging.getLogger('chainrule.jit')
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Unsupported(Exception):
    """An equation this module cannot write for numba: the caller falls back."""


# --- BLAS through NumPy's own OpenBLAS -----------------------------------------------------------

_CBLAS = {}     # dtype char -> ctypes function, or None when none was found


def _find_cblas(kind):
    """`cblas_?gemm` of the OpenBLAS in NumPy's wheel (`numpy.libs`), as a ctypes function with
    its argument types, or None (another NumPy build: numba's np.dot is used instead)."""
    if kind in _CBLAS:
        return _CBLAS[kind]
    fn = None
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), 'numpy.libs')
    for path in sorted(_glob.glob(os.path.join(libdir, '*openblas*'))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # the wheel's ILP64 build prefixes and suffixes its symbols; a plain build has neither
        for sym, int_t in ((f'scipy_cblas_{kind}gemm64_', ctypes.c_int64),
                           (f'cblas_{kind}gemm64_', ctypes.c_int64),
                           (f'cblas_{kind}gemm', ctypes.c_int)):
            f = getattr(lib, sym, None)
            if f is None:
                continue
            real = ctypes.c_float if kind == 's' else ctypes.c_double
            ptr = ctypes.c_void_p
            f.restype = None
            f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t, real,
                          ptr, int_t, ptr, int_t, real, ptr, int_t]
            fn = f
            break
        if fn is not None:
            break
    _CBLAS[kind] = fn
    return fn


_HELPERS = {}


def _helpers():
    """The numba functions the generated programs call (compiled lazily, once)."""
    if _HELPERS:
        return _HELPERS
    numba = _get_numba()
    njit = numba.njit(error_model='numpy', cache=False)

    @njit
    def row_major(a):
        # rows contiguous, one row stride between them: BLAS's lda
        isz = a.itemsize
        return a.strides[1] == isz and (a.shape[0] <= 1 or (
            a.strides[0] >= a.shape[1] * isz and a.strides[0] % isz == 0))

    @njit
    def leading(a, transposed):
        isz = a.itemsize
        if transposed:
            return max(a.strides[1] // isz if a.shape[1] > 1 else a.shape[0], 1)
        return max(a.strides[0] // isz if a.shape[0] > 1 else a.shape[1], 1)

    def make_gemm(cblas):
        if cblas is None:
            @njit
            def gemm_into(a, b, c, alpha, beta):
                p = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))
                if beta == 0:
                    c[:] = alpha * p
                else:
                    c[:] = alpha * p + beta * c

        else:
            @njit
            def gemm_into(a, b, c, alpha, beta):
                # c (row-major, m x n) = alpha a @ b + beta c; each operand row-major or the
                # transpose of a row-major array (passed with BLAS's transpose flag), else
                # copied
                if not row_major(a) and not row_major(a.T):
                    a = np.ascontiguousarray(a)
                if not row_major(b) and not row_major(b.T):
                    b = np.ascontiguousarray(b)
                m, k = a.shape
                n = b.shape[1]
                if m == 0 or n == 0:
                    return
                if k == 0:
                    if beta == 0:
                        c[:] = 0
                    else:
                        c[:] = beta * c
                    return
                ta = not row_major(a)
                tb = not row_major(b)
                cblas(101, 112 if ta else 111, 112 if tb else 111, m, n, k, alpha,
                      a.ctypes.data, leading(a, ta), b.ctypes.data, leading(b, tb), beta,
                      c.ctypes.data, n)

        @njit
        def gemm(a, b):
            c = np.empty((a.shape[0], b.shape[1]), a.dtype)
            gemm_into(a, b, c, 1.0, 0.0)
            return c

        @njit
        def gemm_update(a, b, w, alpha):
            # w + alpha a @ b as one gemm on a copy of w (an SGD step `w - lr * a @ b`)
            c = np.ascontiguousarray(w).copy()
            gemm_into(a, b, c, alpha, 1.0)
            return c
        return gemm, gemm_update

    _HELPERS['_gemm_s'], _HELPERS['_gemm_update_s'] = make_gemm(_find_cblas('s'))
    _HELPERS['_gemm_d'], _HELPERS['_gemm_update_d'] = make_gemm(_find_cblas('d'))

    @njit
    def tiled_c_copy(x):
        # a C-ordered copy of a transposed view `x` (F-ordered): its base `x.T` is read row by
        # row while the copy is written in strips of 8 rows (a cache line each per column),
        # not one element per cache line (64x256 float32: 13 -> 8 us)
        xt = x.T
        n, m = xt.shape
        out = np.empty((m, n), x.dtype)
        m8 = m - m % 8
        for i0 in range(0, m8, 8):
            for j in range(n):
                for i in range(i0, i0 + 8):
                    out[i, j] = xt[j, i]
        for i in range(m8, m):
            for j in range(n):
                out[i, j] = xt[j, i]
        return out

    @njit
    def sum_rows(x):
        # x.sum(axis=0) of a 2-D array: rows added one after another (as NumPy does)
        out = np.zeros(x.shape[1], x.dtype)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[j] += x[i, j]
        return out

    @njit
    def sum_cols(x):
        out = np.empty(x.shape[0], x.dtype)
        for i in range(x.shape[0]):
            out[i] = np.sum(x[i])
        return out

    @njit
    def max_rows(x):
        # x.max(axis=0), NaN-propagating as NumPy's
        out = x[0].copy()
        for i in range(1, x.shape[0]):
            for j in range(x.shape[1]):
                v = x[i, j]
                out[j] = v if (v > out[j] or v != v) else out[j]
        return out

    @njit
    def max_cols(x):
        out = np.empty(x.shape[0], x.dtype)
        for i in range(x.shape[0]):
            m = x[i, 0]
            for j in range(1, x.shape[1]):
                v = x[i, j]
                m = v if (v > m or v != v) else m
            out[i] = m
        return out

    @njit
    def max_all(x):
        f = x.ravel()
        m = f[0]
        for v in f[1:]:
            m = v if (v > m or v != v) else m
        return m

    from chainrule.jit import vecmath

    def make_log_softmax(exp, log):
        @njit
        def log_softmax_rows(x):
            # x - max - log(sum(exp(x - max))) along the last axis of a 2-D array (the
            # log_softmax impl's operations in its order; exp and log by vecmath, as the
            # fused loops compute them), a pass per operation over the whole array so the
            # exponentials are one vectorised loop (64x10 float32: 8 -> 2 us)
            r, n = x.shape
            out = np.empty((r, n), x.dtype)
            e = np.empty(r * n, x.dtype)
            flat = out.reshape(-1)
            for i in range(r):
                m = x[i, 0]
                for j in range(1, n):
                    v = x[i, j]
                    m = v if (v > m or v != v) else m
                for j in range(n):
                    out[i, j] = x[i, j] - m
            for k in range(r * n):
                e[k] = exp(flat[k])
            for i in range(r):
                s = x.dtype.type(0)
                for j in range(n):
                    s += e[i * n + j]
                ls = log(s)
                for j in range(n):
                    out[i, j] = out[i, j] - ls
            return out
        return log_softmax_rows

    _HELPERS.update(_tiled_c_copy=tiled_c_copy, _sum_rows=sum_rows, _sum_cols=sum_cols,
                    _max_rows=max_rows, _max_cols=max_cols, _max_all=max_all,
                    _log_softmax_rows_s=make_log_softmax(vecmath.exp32, vecmath.log32),
                    _log_softmax_rows_d=make_log_softmax(vecmath.exp64, vecmath.log64))
    return _HELPERS


# --- code generation ---------------------------------------------------------------------------

def _check_types(graph):
    for v in list(graph.invars) + list(graph.constvars):
        if v.aval.dtype not in _FLOATS or v.aval.ndim == 0 or v.aval.ndim > 4:
            raise Unsupported(f'argument of type {v.aval}')
    for e in graph.eqns:
        for o in e.outvars:
            if o.aval.dtype not in _FLOATS + (np.dtype(np.bool_),):
                raise Unsupported(f'{e.prim.name} makes {o.aval}')


def _single(e):
    """A lone fusible equation as a one-equation cluster (its outputs: all of them)."""
    ins, seen = [], set()
    for v in e.invars:
        if isinstance(v, Var) and v.id not in seen:
            seen.add(v.id)
            ins.append(v)
    return _Cluster([e], ins, list(e.outvars))


def _sgd_folds(graph, items):
    """The updates `w - lr * (a @ b)` (a cluster of exactly a `mul` by a number and a `sub`
    from `w`, an argument of the program, whose product has no other use) that become one
    gemm on a copy of `w` (alpha = -lr, beta = 1): {id(the matmul): (w, lr, result, _,
    cluster), id(the cluster): True}. The gemm adds `-lr * (a @ b)` to `w` in one step, so the
    result is within an ulp of the two separately rounded operations."""
    by_out = {o.id: e for e in graph.eqns for o in e.outvars}
    users = {}
    for it in items:
        for v in it.invars:
            if isinstance(v, Var):
                users.setdefault(v.id, []).append(it)
    outs = {v.id for v in graph.outvars if isinstance(v, Var)}
    args = {v.id for v in graph.invars}
    folds = {}
    for cl in items:
        if not isinstance(cl, _Cluster) or len(cl.eqns) != 2 or len(cl.outvars) != 1:
            continue
        mul, sub = cl.eqns
        if mul.prim.name != 'mul' or sub.prim.name != 'sub' or \
                sub.invars[1] is not mul.outvars[0] or cl.outvars[0] is not sub.outvars[0]:
            continue
        lit = [v for v in mul.invars if isinstance(v, Literal)]
        prod = [v for v in mul.invars if isinstance(v, Var)]
        w = sub.invars[0]
        if len(lit) != 1 or len(prod) != 1 or isinstance(lit[0].value, (bool, complex)) or \
                not isinstance(w, Var) or w.id not in args:
            continue
        p = prod[0]
        mm = by_out.get(p.id)
        if mm is None or mm.prim.name != 'matmul' or p.id in outs or \
                users.get(p.id) != [cl] or w.aval != p.aval or \
                cl.outvars[0].aval != p.aval or p.aval.ndim != 2:
            continue
        folds[id(mm)] = (w, float(lit[0].value), cl.outvars[0], None, cl)
        folds[id(cl)] = True
    return folds


def codegen(graph, name='jitted'):
    """(source, globals) of the numba program for `graph`: `name(*inputs)` (a Python wrapper)
    calls `_program` (the numba function, not yet compiled). Raises `Unsupported`."""
    from chainrule.jit.numpy_codegen import _RESERVED, _dtype_expr, _transposed_operand
    import keyword
    _check_types(graph)
    names = {}
    for vid, n in graph.names().items():
        names[vid] = n + '_' if keyword.iskeyword(n) or n in _RESERVED else n
    ir_names = graph.names()

    def ir_line(e):
        return (f'{" ".join(ir_names[o.id] + ":" + str(o.aval) for o in e.outvars)} = '
                f'{e.prim.name}{_params_str(e.params)} ' + ' '.join(
                    _literal_str(v.value) if isinstance(v, Literal) else ir_names[v.id]
                    for v in e.invars))

    glob = {'np': np}
    by_out = {o.id: e for e in graph.eqns for o in e.outvars}
    items = _fusion_schedule(graph)
    last = {}
    for k, it in enumerate(items):
        for v in it.invars:
            if isinstance(v, Var):
                last[v.id] = k
    outs = {v.id for v in graph.outvars if isinstance(v, Var)}
    made = set()            # vars holding an array this call made (not a view)
    transposed = set()      # products computed transposed: F-ordered views
    lines = []
    kernels = 0

    def lit(v, dt):
        if isinstance(v.value, bool) or dt is None:
            return _literal_str(v.value)
        return f'np.{dt.name}({_literal_str(v.value)})'

    def emit_cluster(cl):
        nonlocal kernels
        for v in cl.invars:
            if v.aval.ndim == 0:
                raise Unsupported('a 0-d input of a fused loop')
        pre = []
        for v in cl.invars:
            if v.id in transposed:      # read a transposed product in tiles, once
                c_name = f'{names[v.id]}_c'
                pre.append(f'    {c_name} = _tiled_c_copy({names[v.id]})')
                names[v.id] = c_name
                transposed.discard(v.id)
                made.add(v.id)
        call = _emit_cluster(cl, kernels, names, ir_line, glob, by_out)
        kernels += 1
        lines.extend(pre + call)
        made.update(o.id for o in cl.outvars)

    folds = _sgd_folds(graph, items)
    for k, e in enumerate(items):
        if isinstance(e, _Cluster):
            if id(e) not in folds:
                emit_cluster(e)
            continue
        pn = e.prim.name
        a = e.invars
        args = [names[v.id] if isinstance(v, Var) else None for v in a]
        o = e.outvars[0]
        out = names[o.id]
        if pn in _SCALAR or pn == 'astype':
            if len(e.outvars) != 1 or (e.params and pn != 'astype'):
                raise Unsupported(pn)
            if o.aval.ndim:
                if any(isinstance(v, Var) and v.aval.shape not in ((), o.aval.shape)
                       for v in a):
                    raise Unsupported(f'{pn} broadcasting its operands')
                emit_cluster(_single(e))
                continue
            # on 0-d values: a scalar expression
            dt = next((v.aval.dtype for v in a if isinstance(v, Var) and
                       v.aval.dtype.kind == 'f'), None)
            refs = [lit(v, dt) if isinstance(v, Literal) else args[i] for i, v in enumerate(a)]
            lines.append(f'    # {ir_line(e)}')
            lines.append(f'    {out} = {_scalar_expr(e, refs)}')
            continue
        if any(isinstance(v, Literal) for v in a):
            raise Unsupported(f'{pn} of a literal')
        x = a[0]
        lines.append(f'    # {ir_line(e)}')
        if pn == 'matmul':
            if not all(v.aval.ndim == 2 for v in a) or a[0].aval.dtype != a[1].aval.dtype:
                raise Unsupported('matmul other than of two matrices of one dtype')
            gemm = '_gemm_s' if x.aval.dtype == np.float32 else '_gemm_d'
            bt = _transposed_operand(e, by_out) if o.id not in outs else None
            fold = folds.get(id(e))
            if fold is not None:
                w, lr, new = fold[:3]
                lines.append(f'    # {ir_line(fold[4].eqns[0])}')
                lines.append(f'    # {ir_line(fold[4].eqns[1])}')
                lines.append(f'    #   (the update folded into the product: one gemm, '
                             f'alpha={-lr!r}, beta=1, on a copy of {names[w.id]})')
                lines.append(f'    {names[new.id]} = {gemm.replace("gemm", "gemm_update")}('
                             f'{args[0]}, {args[1]}, {names[w.id]}, {-lr!r})')
                made.add(new.id)
            elif bt is not None:
                lines.append(f'    {out} = {gemm}({names[bt.id]}, {args[0]}.T).T')
                transposed.add(o.id)
            else:
                lines.append(f'    {out} = {gemm}({args[0]}, {args[1]})')
            made.add(o.id)
        elif pn == 'transpose':
            axes = tuple(e.params['axes'])
            lines.append(f'    {out} = {args[0]}.T' if axes == (1, 0) else
                         f'    {out} = np.transpose({args[0]}, {axes})')
            if x.id in transposed and axes == (1, 0):
                made.add(o.id)      # the transpose of a transposed product: C-ordered
        elif pn == 'reshape':
            lines.append(f'    {out} = np.ascontiguousarray({args[0]})'
                         f'.reshape({tuple(int(s) for s in e.params["shape"])})')
        elif pn == 'broadcast_to':
            if x.aval.ndim == 0:
                raise Unsupported('broadcast of a 0-d value')
            lines.append(f'    {out} = np.broadcast_to({args[0]}, '
                         f'{tuple(int(s) for s in e.params["shape"])})')
        elif pn == 'stop_gradient':
            lines.append(f'    {out} = {args[0]}')
        elif pn in ('sum', 'max'):
            axis = tuple(sorted(int(i) % max(x.aval.ndim, 1) for i in e.params['axis']))
            keep = e.params['keepdims']
            nd = x.aval.ndim
            if x.aval.dtype not in _FLOATS:
                raise Unsupported(f'{pn} of {x.aval}')
            if axis == tuple(range(nd)):
                call = f'np.sum({args[0]})' if pn == 'sum' else f'_max_all({args[0]})'
                if keep:
                    call = f'np.full({tuple([1] * nd)}, {call})'
            elif nd == 2 and len(axis) == 1:
                fn = {('sum', 0): '_sum_rows', ('sum', 1): '_sum_cols',
                      ('max', 0): '_max_rows', ('max', 1): '_max_cols'}[pn, axis[0]]
                call = f'{fn}({args[0]})'
                if keep:
                    call += f'.reshape({tuple(int(s) for s in o.aval.shape)})'
                made.add(o.id)
            else:
                raise Unsupported(f'{pn} over axes {axis} of {x.aval}')
            lines.append(f'    {out} = {call}')
        elif pn == 'log_softmax':
            ax = e.params['axis']
            ax = ax[0] if isinstance(ax, tuple) and len(ax) == 1 else ax
            if x.aval.ndim != 2 or not isinstance(ax, int) or ax % 2 != 1:
                raise Unsupported(f'log_softmax over axis {ax} of {x.aval}')
            kind = 's' if x.aval.dtype == np.float32 else 'd'
            lines.append(f'    {out} = _log_softmax_rows_{kind}({args[0]})')
            made.add(o.id)
        else:
            raise Unsupported(pn)

    # the results: made by this call and not shared, else copied (C-ordered)
    rets, seen = [], set()
    for v in graph.outvars:
        if isinstance(v, Literal):
            raise Unsupported('a literal result')
        n = names[v.id]
        if v.aval.ndim == 0:
            rets.append(n)
        elif v.id in made and v.id not in seen and v.id not in transposed:
            rets.append(n)
        else:
            rets.append(f'np.ascontiguousarray({n}).copy()' if v.id not in transposed else
                        f'_tiled_c_copy({n})')
        seen.add(v.id)
    params = [names[v.id] for v in list(graph.invars) + list(graph.constvars)]
    src = [f'def _program({", ".join(params)}):'] + lines + \
          [f'    return ({", ".join(rets)}{"," if len(rets) == 1 else ""})']
    kernel_src = glob.pop('_kernel_sources', [])
    glob.update(_helpers())
    import math
    glob.update(numba=_get_numba(), math=math, **vector_globals())
    # the wrapper: C-contiguous arguments (the program's loops read them flat), the
    # program's constants, and 0-d results as NumPy scalars of their dtype
    ins = [names[v.id] for v in graph.invars]
    for i, (v, c) in enumerate(zip(graph.constvars, graph.consts)):
        glob[f'_const{i}'] = c
    call_args = [f'np.ascontiguousarray({n})' for n in ins] + \
        [f'np.ascontiguousarray(_const{i})' for i in range(len(graph.consts))]
    wrap = []
    for i, v in enumerate(graph.outvars):
        wrap.append(f'{_dtype_expr(v.aval.dtype)}(_r[{i}])' if v.aval.ndim == 0 else f'_r[{i}]')
    wrapper = [f'def {name}({", ".join(ins)}):',
               f'    _r = _program({", ".join(call_args)})',
               f'    return ({", ".join(wrap)}{"," if len(wrap) == 1 else ""})']
    source = '\n'.join(kernel_src) + ('\n\n' if kernel_src else '') + \
        '\n'.join(src) + '\n\n' + '\n'.join(wrapper) + '\n'
    return source, glob


def compile_program(graph, name='jitted'):
    """The whole-program function of `graph` (compiled now, for the argument types of the
    graph), or None when this module cannot write it or numba refuses it."""
    numba = _get_numba()
    if not numba:
        return None
    try:
        src, glob = codegen(graph, name)
    except Unsupported as e:
        logger.debug('numba backend: no whole-program function (%s)', e)
        return None
    code = compile(src, f'<chainrule.jit numba program {id(graph):x}>', 'exec')
    exec(code, glob)
    nb = {np.dtype(np.float32): numba.float32, np.dtype(np.float64): numba.float64}
    sig = tuple(numba.types.Array(nb[v.aval.dtype], v.aval.ndim, 'C')
                for v in list(graph.invars) + list(graph.constvars))
    # compiled now for C-contiguous writable arrays (so what numba refuses falls back here);
    # other argument types (read-only arrays) get their own compilation when they come
    prog = numba.njit(error_model='numpy', cache=False)(glob['_program'])
    try:
        prog.compile(sig)
    except Exception as e:      # noqa: BLE001 (numba's errors have no common base class)
        logger.debug('numba backend: numba refused the whole-program function (%s)', e)
        return None
    glob['_program'] = prog
    fn = glob[name]
    fn.__source__ = src
    return fn
