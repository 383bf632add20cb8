"""Result types of chainrule's primitives from shapes and dtypes alone: the rules a loaded graph
is checked with (see `chainrule._graphcheck`).

What this module lets you do: `RULES[name](*avals, **params)` gives the `(shape, dtype)` of each
result of primitive `name` applied to operands of those types -- for every primitive that has
no `shape` rule of its own and is not elementwise: reshapes, reductions, indexing, matmul and
einsum, linear algebra, FFTs, convolutions and pooling, control flow, and the primitives of
`chainrule.scipy` (matrix functions, LU, Sylvester and banded solves, n-d convolution). A rule
never creates an array of an operand's or result's shape: shapes come from NumPy's rules
written out on tuples, dtypes from running NumPy (or the primitive) on one-element arrays
(dtypes depend on dtypes only). Operands or parameters the primitive would reject raise
`FormatProblem` (or NumPy's own error, which the checker turns into one).
"""

import warnings

import numpy as np

from chainrule._format import FormatProblem
from chainrule.core import registry
from chainrule.interpreters.staging import ShapedArray

__all__ = ['RULES', 'axis_index', 'size_of']


def _one(dtype, shape=(1,)):
    return np.ones(shape, dtype)


def _dtype_of(fn, *dtypes, shape=(1,)):
    """The dtype `fn` gives on one-element arrays (dtypes depend on dtypes only)."""
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = fn(*[_one(d, shape) for d in dtypes])
    return np.result_type(out)


def axis_index(a, nd):
    """`a` as an axis of an `nd`-dimensional array (0..nd-1), or FormatProblem."""
    if not -nd <= a < nd:
        raise FormatProblem(f'axis {a} is out of range for {nd} dimensions')
    return a % nd


def size_of(shape):
    """The number of elements of `shape` (Python ints: no overflow)."""
    n = 1
    for d in shape:
        n *= d
    return n


def _reduce_shape(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    axes = {axis_index(a, len(shape)) for a in axes}
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _sum_rule(x, *, axis, keepdims):
    return [(_reduce_shape(x.shape, axis, keepdims), _dtype_of(np.sum, x.dtype))]


def _max_rule(x, *, axis, keepdims):
    axes = range(x.ndim) if axis is None else axis
    if any(x.shape[axis_index(a, x.ndim)] == 0 for a in axes):
        raise FormatProblem(f'max over an empty axis of {x}')
    return [(_reduce_shape(x.shape, axis, keepdims), x.dtype)]


def _reshape_rule(x, *, shape):
    known = size_of(d for d in shape if d != -1)
    if list(shape).count(-1) > 1 or (-1 not in shape and known != size_of(x.shape)) or \
            (-1 in shape and (known == 0 or size_of(x.shape) % known)):
        raise FormatProblem(f'cannot reshape {x} to {shape}')
    return [(tuple(size_of(x.shape) // known if d == -1 else d for d in shape), x.dtype)]


def _broadcast_rule(x, *, shape):
    if np.broadcast_shapes(x.shape, shape) != shape:
        raise FormatProblem(f'cannot broadcast {x} to {shape}')
    return [(shape, x.dtype)]


def _transpose_rule(x, *, axes):
    if sorted(a % x.ndim if x.ndim else a for a in axes) != list(range(x.ndim)) or \
            any(not -x.ndim <= a < x.ndim for a in axes):
        raise FormatProblem(f'axes {axes} are not a permutation of the axes of {x}')
    return [(tuple(x.shape[a] for a in axes), x.dtype)]


def _cum_rule(fn):
    def rule(x, *, axis):
        axis_index(axis, x.ndim)
        return [(x.shape, _dtype_of(lambda a: fn(a, axis=0), x.dtype))]
    return rule


def _concatenate_rule(*xs, axis):
    if not xs or xs[0].ndim == 0:
        raise FormatProblem('concatenate needs arrays with at least one axis')
    nd = xs[0].ndim
    ax = axis_index(axis, nd)
    for x in xs:
        if x.ndim != nd or any(d != e for i, (d, e) in enumerate(zip(x.shape, xs[0].shape))
                               if i != ax):
            raise FormatProblem(f'cannot concatenate {[str(x) for x in xs]} along axis {axis}')
    shape = list(xs[0].shape)
    shape[ax] = sum(x.shape[ax] for x in xs)
    return [(tuple(shape), np.result_type(*[x.dtype for x in xs]))]


def _split_rule(x, *, cuts, axis):
    # numpy.split: the pieces between 0, the cuts and the end, each cut read as a slice bound
    ax = axis_index(axis, x.ndim) if x.ndim else None
    if ax is None:
        raise FormatProblem('split needs an array with at least one axis')
    n = x.shape[ax]
    bounds = [0] + list(cuts) + [n]
    shape = list(x.shape)
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        shape[ax] = len(range(n)[lo:hi])
        out.append((tuple(shape), x.dtype))
    return out


def _index_shape(shape, idx):
    """The shape of `x[idx]` for `x` of `shape`, by NumPy's indexing rules, without `x`."""
    consumed = sum(x.ndim if isinstance(x, np.ndarray) and x.dtype == bool else
                   0 if x is None or x is Ellipsis else 1 for x in idx)
    if consumed > len(shape):
        raise FormatProblem(f'too many indices for an array of shape {shape}')
    items = []
    for x in idx:
        if x is Ellipsis:
            items.extend([slice(None)] * (len(shape) - consumed))
        else:
            items.append(x)
    items.extend([slice(None)] * (len(shape) - sum(
        x.ndim if isinstance(x, np.ndarray) and x.dtype == bool else 0 if x is None else 1
        for x in items)))
    has_array = any(isinstance(x, np.ndarray) for x in items)
    out, adv, adv_at, dim = [], [], [], 0
    for x in items:
        if x is None:
            out.append(1)
        elif isinstance(x, slice):
            out.append(len(range(*x.indices(shape[dim]))))
            dim += 1
        elif isinstance(x, np.ndarray) and x.dtype == bool:
            if x.shape != tuple(shape[dim:dim + x.ndim]):
                raise FormatProblem(f'a boolean index of shape {x.shape} does not match the '
                                    f'indexed dimensions of {shape}')
            adv.append((int(np.count_nonzero(x)),))
            adv_at.append(len(out))
            dim += x.ndim
        else:
            a = np.asarray(x)
            if a.size and (a.min() < -shape[dim] or a.max() >= shape[dim]):
                raise FormatProblem(f'index out of range for dimension {dim} of {shape}')
            if isinstance(x, np.ndarray) or has_array:
                adv.append(a.shape)
                adv_at.append(len(out))
            dim += 1
    if adv:
        b = tuple(np.broadcast_shapes(*adv))
        contiguous = adv_at == [adv_at[0]] * len(adv_at)
        at = adv_at[0] if contiguous else 0
        out[at:at] = b
    return tuple(out)


def _getitem_rule(x, *, idx):
    return [(_index_shape(x.shape, idx), x.dtype)]


def _at_rule(x, y, *, idx):
    target = _index_shape(x.shape, idx)
    if np.broadcast_shapes(y.shape, target) != target:
        raise FormatProblem(f'cannot write {y} into a selection of shape {target}')
    return [(x.shape, x.dtype)]


def _scatter_add_rule(g, *, idx, shape):
    target = _index_shape(shape, idx)
    if np.broadcast_shapes(g.shape, target) != target:
        raise FormatProblem(f'cannot add {g} into a selection of shape {target}')
    return [(shape, g.dtype)]


def _matmul_shape(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise FormatProblem('matmul of a 0-d array')
    sa = (1,) + a.shape if a.ndim == 1 else a.shape
    sb = b.shape + (1,) if b.ndim == 1 else b.shape
    if sa[-1] != sb[-2]:
        raise FormatProblem(f'matmul of {a} and {b}: inner dimensions differ')
    out = tuple(np.broadcast_shapes(sa[:-2], sb[:-2])) + (sa[-2], sb[-1])
    if a.ndim == 1:
        out = out[:-2] + out[-1:]
    if b.ndim == 1:
        out = out[:-1]
    return out


def _matmul_rule(a, b):
    return [(_matmul_shape(a, b), _dtype_of(np.matmul, a.dtype, b.dtype, shape=(1, 1)))]


def _linear_rule(x, w, *b):
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1] or \
            (b and b[0].shape not in ((w.shape[0],), ())):
        raise FormatProblem(f'linear of {x}, {w}{", " + str(b[0]) if b else ""}')
    return [(x.shape[:-1] + (w.shape[0],), np.result_type(x.dtype, w.dtype,
                                                          *[t.dtype for t in b]))]


def _einsum_rule(*xs, spec):
    if '->' not in spec or spec.count('->') != 1:
        raise FormatProblem(f'einsum spec {spec!r:.60} has no explicit output')
    ins, out = spec.split('->')
    terms = ins.split(',')
    if len(terms) != len(xs) or not all(t.isalpha() for t in terms + [out] if t):
        raise FormatProblem(f'einsum spec {spec!r:.60} does not fit {len(xs)} operands')
    size = {}
    for t, x in zip(terms, xs):
        if len(t) != x.ndim:
            raise FormatProblem(f'einsum term {t!r} does not fit {x}')
        for c, d in zip(t, x.shape):
            if size.setdefault(c, d) != d and 1 not in (d, size[c]):
                raise FormatProblem(f'einsum label {c!r} has sizes {size[c]} and {d}')
            size[c] = max(size[c], d) if 1 in (d, size[c]) else d
    if len(set(out)) != len(out) or any(c not in size for c in out):
        raise FormatProblem(f'einsum output {out!r} is not made of input labels')
    return [(tuple(size[c] for c in out), np.result_type(*[x.dtype for x in xs]))]


def _linalg(name, fn, outs):
    """A rule for a NumPy linalg routine on stacks of matrices: `outs(shape, params)` gives the
    result shapes; dtypes come from `fn` on 1x1 matrices."""
    def rule(*avals, **params):
        shapes = outs(*[a.shape for a in avals], **params)
        dts = _dtype_of(lambda *a: fn(*a, **params), *[a.dtype for a in avals], shape=(1, 1)) \
            if len(shapes) == 1 else None
        if dts is None:
            with np.errstate(all='ignore'):
                res = fn(*[_one(a.dtype, (1, 1)) for a in avals], **params)
            dts = [np.result_type(r) for r in res]
        else:
            dts = [dts]
        return list(zip(shapes, dts))
    return rule


def _sq(s, **_):
    if len(s) < 2 or s[-1] != s[-2]:
        raise FormatProblem(f'needs square matrices, got shape {s}')
    return s


def _solve_shapes(a, b, **_):
    _sq(a)
    if b[-2:-1] != a[-1:] or len(b) < 2:
        raise FormatProblem(f'solve of shapes {a} and {b}')
    return [tuple(np.broadcast_shapes(a[:-2], b[:-2])) + b[-2:]]


def _svd_shapes(a, *, full_matrices):
    if len(a) < 2:
        raise FormatProblem(f'svd needs matrices, got shape {a}')
    m, n, k = a[-2], a[-1], min(a[-2:])
    u, v = (m, m) if full_matrices else (m, k), (n, n) if full_matrices else (k, n)
    return [a[:-2] + u, a[:-2] + (k,), a[:-2] + v]


def _qr_shapes(a, *, full_matrices):
    if len(a) < 2:
        raise FormatProblem(f'qr needs matrices, got shape {a}')
    m, n, k = a[-2], a[-1], min(a[-2:])
    return [a[:-2] + ((m, m) if full_matrices else (m, k)),
            a[:-2] + ((m, n) if full_matrices else (k, n))]


def _fft_axes(x, axes):
    if not axes or len(set(a % max(x.ndim, 1) for a in axes)) != len(axes):
        raise FormatProblem(f'invalid FFT axes {axes}')
    return [axis_index(a, x.ndim) for a in axes]


def _fftn_rule(x, *, axes, norm, inverse):
    _fft_axes(x, axes)
    return [(x.shape, _dtype_of(lambda a: np.fft.fft(a), x.dtype))]


def _rfftn_rule(x, *, axes, norm):
    ax = _fft_axes(x, axes)
    if x.dtype.kind == 'c':
        raise FormatProblem(f'rfftn of complex {x}')
    shape = list(x.shape)
    shape[ax[-1]] = shape[ax[-1]] // 2 + 1
    return [(tuple(shape), _dtype_of(lambda a: np.fft.rfft(a), x.dtype))]


def _irfftn_rule(x, *, axes, n, norm):
    ax = _fft_axes(x, axes)
    if n == 0:
        raise FormatProblem('irfftn with n=0')
    shape = list(x.shape)
    shape[ax[-1]] = n
    return [(tuple(shape), _dtype_of(lambda a: np.fft.irfft(a, n=2), x.dtype))]


def _window_out(shape, kernel, stride, padding, dilation=(1, 1)):
    if len(shape) != 4 or 0 in kernel or 0 in stride or 0 in dilation:
        raise FormatProblem(f'a window op needs (N, C, H, W) arrays and positive kernel/stride/'
                            f'dilation; got shape {shape}, kernel {kernel}, stride {stride}, '
                            f'dilation {dilation}')
    out = tuple((d + 2 * p - dl * (k - 1) - 1) // s + 1
                for d, k, s, p, dl in zip(shape[2:], kernel, stride, padding, dilation))
    if min(out) < 1 or any(p > dl * (k - 1) + 1 for p, k, dl in zip(padding, kernel, dilation)):
        raise FormatProblem(f'window {kernel} (padding {padding}) does not fit shape {shape}')
    return out


def _unfold_rule(x, *, kernel, stride, padding, dilation=(1, 1)):
    oh, ow = _window_out(x.shape, kernel, stride, padding, dilation)
    return [((x.shape[0], oh, ow, kernel[0] * kernel[1] * x.shape[1]), x.dtype)]


def _fold_rule(cols, *, kernel, stride, padding, shape, dilation=(1, 1)):
    oh, ow = _window_out(shape, kernel, stride, padding, dilation)
    # (a transposed convolution's output_padding can leave room for more windows than cols has)
    if len(cols.shape) != 4 or cols.shape[0] != shape[0] or cols.shape[1] > oh or \
            cols.shape[2] > ow or cols.shape[3] != kernel[0] * kernel[1] * shape[1]:
        raise FormatProblem(f'fold of {cols} into shape {shape}')
    return [(shape, cols.dtype)]


def _conv_rule(x, w, *b, stride, padding, dilation=(1, 1)):
    if w.ndim != 4 or x.ndim != 4 or w.shape[1] != x.shape[1] or \
            (b and b[0].shape != (w.shape[0],)):
        raise FormatProblem(f'conv2d of {x} with weights {w}')
    oh, ow = _window_out(x.shape, w.shape[2:], stride, padding, dilation)
    dt = _dtype_of(np.matmul, x.dtype, w.dtype, shape=(1, 1))
    return [((x.shape[0], w.shape[0], oh, ow), np.result_type(dt, *[t.dtype for t in b]))]


def _batch_norm_rule(x, w, b, *stats, eps):
    if x.ndim < 2 or w.shape != x.shape[1:2] or b.shape != x.shape[1:2] or \
            any(s.shape != x.shape[1:2] for s in stats):
        raise FormatProblem(f'batch_norm of {x} with weight {w} and bias {b}')
    return [(x.shape, np.result_type(x.dtype, w.dtype, b.dtype))]


def _pool_rule(x, *, kernel, stride, padding):
    oh, ow = _window_out(x.shape, kernel, stride, padding)
    return [(x.shape[:2] + (oh, ow), x.dtype)]


def _pool_back_rule(which):
    def rule(u, x, ans, *, kernel, stride, padding):
        if _pool_rule(x, kernel=kernel, stride=stride, padding=padding)[0][0] != ans.shape or \
                u.shape != (ans.shape if which == 'scatter' else x.shape):
            raise FormatProblem(f'pool_{which} of {u}, {x}, {ans}')
        return [((x if which == 'scatter' else ans).shape, u.dtype)]
    return rule


def _log_softmax_rule(x, *, axis):
    axis_index(axis, x.ndim)
    if x.ndim == 0 or x.shape[axis] == 0:
        raise FormatProblem(f'log_softmax over an empty or missing axis of {x}')
    return [(x.shape, x.dtype)]


def _class_labels_rule(t, *, num_classes, ignore_index, op):
    if t.dtype.kind not in 'iu':
        raise FormatProblem(f'class labels of dtype {t.dtype}')
    return [(t.shape, t.dtype)]


def _cross_entropy_rule(z, t, *, reduction, ignore_index):
    if z.ndim != 2 or t.shape != z.shape[:1] or t.dtype.kind not in 'iu' or z.shape[1] == 0:
        raise FormatProblem(f'cross_entropy of logits {z} and targets {t}')
    return [(z.shape[:1] if reduction == 'none' else (), z.dtype)]


def _same_types(got, want, what):
    if list(got) != list(want):
        raise FormatProblem(f'{what}: {[str(a) for a in got]} where its graph takes '
                            f'{[str(a) for a in want]}')


def _cond_rule(pred, *args, branches):
    if pred.shape != ():
        raise FormatProblem(f'the predicate is {pred}, not a scalar')
    for b in branches:
        _same_types(args, b.in_avals, 'the operands are')
    if branches[0].out_avals != branches[1].out_avals:
        raise FormatProblem('the branches return different types')
    return [(a.shape, a.dtype) for a in branches[0].out_avals]


def _scan_rule(*args, body, length, reverse, num_consts, num_carry):
    nc, nk = num_consts, num_carry
    if nc + nk > len(args):
        raise FormatProblem(f'num_consts + num_carry ({nc} + {nk}) exceeds the {len(args)} '
                            'operands')
    xs = args[nc + nk:]
    if any(x.ndim == 0 or x.shape[0] != length for x in xs):
        raise FormatProblem(f'the scanned operands {[str(x) for x in xs]} do not all have '
                            f'length {length}')
    _same_types(list(args[:nc + nk]) + [ShapedArray(x.shape[1:], x.dtype) for x in xs],
                body.in_avals, 'the operands are')
    if len(body.outvars) < nk or body.out_avals[:nk] != list(args[nc:nc + nk]):
        raise FormatProblem('the body does not return the carry types it takes')
    return [(a.shape, a.dtype) for a in body.out_avals[:nk]] + \
        [((length,) + a.shape, a.dtype) for a in body.out_avals[nk:]]


def _while_rule(*args, cond, body, num_cond_consts, num_body_consts):
    ncc, nbc = num_cond_consts, num_body_consts
    if ncc + nbc > len(args):
        raise FormatProblem('the constant counts exceed the operands')
    carry = list(args[ncc + nbc:])
    _same_types(list(args[:ncc]) + carry, cond.in_avals, 'the condition operands are')
    _same_types(list(args[ncc:ncc + nbc]) + carry, body.in_avals, 'the body operands are')
    if len(cond.outvars) != 1 or cond.out_avals[0].shape != () or \
            cond.out_avals[0].dtype != np.bool_:
        raise FormatProblem('the condition does not return one boolean scalar')
    _same_types(body.out_avals, carry, 'the body returns')
    return [(a.shape, a.dtype) for a in carry]


def _jit_call_rule(*args, graph):
    _same_types(args, graph.in_avals, 'the operands are')
    return [(a.shape, a.dtype) for a in graph.out_avals]


def _argpartition_rule(x, *, kth, axis):
    n = x.shape[axis]
    if any(not -n <= k < n for k in (kth if isinstance(kth, tuple) else (kth,))):
        raise FormatProblem(f'kth={kth} is out of range for axis {axis} of {x}')
    return [(x.shape, np.dtype(np.intp))]


# --- the primitives of chainrule.scipy (declared when their module is imported) ------------------

def _impl_of(name):
    """The impl of primitive `name`, looked up when a rule runs (chainrule.scipy's modules
    declare theirs on import, after this one)."""
    return lambda *a, **p: registry[name].impl(*a, **p)


def _sylvester_shapes(a, b, q):
    _sq(a)
    _sq(b)
    if len(q) < 2 or q[-2:] != (a[-1], b[-1]) or not a[:-2] == b[:-2] == q[:-2]:
        raise FormatProblem(f'solve_sylvester of shapes {a}, {b} and {q}: q must be '
                            f'(..., {a[-1]}, {b[-1]}) with the batch shape of a and b')
    return [q]


def _banded_shapes(ab, b, *, l, u):
    if len(ab) < 2 or len(b) < 2 or ab[-2] != l + u + 1 or b[-2] != ab[-1] or \
            ab[:-2] != b[:-2]:
        raise FormatProblem(f'solve_banded with (l, u) = ({l}, {u}) of shapes {ab} (ab) and {b} '
                            f'(b): ab must be (..., {l + u + 1}, n) and b (..., n, k)')
    return [b]


def _lu_pivots_rule(piv):
    if piv.ndim < 1 or piv.dtype.kind not in 'iu':
        raise FormatProblem(f'lu_pivots_to_permutation of {piv}: needs integer pivots (..., n)')
    return [(piv.shape, np.dtype(np.intp))]


def _convolve_rule(x, k, *, nbatch, method):
    if x.ndim != k.ndim or nbatch > x.ndim or x.shape[:nbatch] != k.shape[:nbatch] or \
            0 in x.shape or 0 in k.shape:
        raise FormatProblem(f'convolve of {x} and {k} with nbatch={nbatch}: both need the same '
                            'number of axes, the same leading nbatch axes and no empty axis')
    shape = x.shape[:nbatch] + tuple(a + b - 1 for a, b in zip(x.shape[nbatch:],
                                                                k.shape[nbatch:]))
    dt = _dtype_of(lambda a, b: registry['convolve'].impl(a, b, nbatch=0, method=method),
                   x.dtype, k.dtype)
    return [(shape, dt)]


_SCIPY_RULES = {
    'expm': _linalg('expm', _impl_of('expm'), lambda a: [_sq(a)]),
    'logm': _linalg('logm', _impl_of('logm'), lambda a: [_sq(a)]),
    'sqrtm': _linalg('sqrtm', _impl_of('sqrtm'), lambda a: [_sq(a)]),
    'lu': _linalg('lu', _impl_of('lu'), lambda a: [_sq(a), a[:-1]]),
    'lu_pivots_to_permutation': _lu_pivots_rule,
    'solve_sylvester': _linalg('solve_sylvester', _impl_of('solve_sylvester'),
                               _sylvester_shapes),
    # (dtypes do not depend on the band widths: found with l = u = 0 on 1x1 matrices)
    'solve_banded': _linalg('solve_banded',
                            lambda ab, b, *, l, u: registry['solve_banded'].impl(ab, b, l=0, u=0),
                            _banded_shapes),
    'convolve': _convolve_rule,
}


RULES = {
    'argsort': lambda x, *, axis, stable: [(x.shape, np.dtype(np.intp))],
    'argpartition': _argpartition_rule,
    'sum': _sum_rule, 'max': _max_rule,
    'reshape': _reshape_rule, 'broadcast_to': _broadcast_rule, 'transpose': _transpose_rule,
    'astype': lambda x, *, dtype: [(x.shape, dtype)],
    'cumsum': _cum_rule(np.cumsum), 'cumprod': _cum_rule(np.cumprod),
    'concatenate': _concatenate_rule, 'split': _split_rule,
    'getitem': _getitem_rule, 'at_set': _at_rule, 'at_add': _at_rule,
    'scatter_add': _scatter_add_rule,
    'matmul': _matmul_rule, 'linear': _linear_rule, 'einsum': _einsum_rule,
    'inv': _linalg('inv', np.linalg.inv, lambda a: [_sq(a)]),
    'solve': _linalg('solve', np.linalg.solve, lambda a, b: _solve_shapes(a, b)),
    'det': _linalg('det', np.linalg.det, lambda a: [_sq(a)[:-2]]),
    'slogdet': _linalg('slogdet', np.linalg.slogdet, lambda a: [_sq(a)[:-2]] * 2),
    'cholesky': _linalg('cholesky', np.linalg.cholesky, lambda a: [_sq(a)]),
    'triangular_solve': _linalg('triangular_solve', lambda a, b, lower: np.linalg.solve(a, b),
                                lambda a, b, **_: _solve_shapes(a, b)),
    'eigh': _linalg('eigh', np.linalg.eigh, lambda a, **_: [_sq(a)[:-1], a]),
    'eig': _linalg('eig', lambda a: registry['eig'].impl(a), lambda a: [_sq(a)[:-1], a]),
    'svd': _linalg('svd', np.linalg.svd, _svd_shapes),
    'qr': _linalg('qr', lambda a, full_matrices: np.linalg.qr(a), _qr_shapes),
    'fftn': _fftn_rule, 'rfftn': _rfftn_rule, 'irfftn': _irfftn_rule,
    'unfold': _unfold_rule, 'fold': _fold_rule, 'conv2d': _conv_rule,
    'batch_norm': _batch_norm_rule,
    'max_pool2d': _pool_rule, 'pool_scatter': _pool_back_rule('scatter'),
    'pool_gather': _pool_back_rule('gather'),
    'log_softmax': _log_softmax_rule, 'cross_entropy': _cross_entropy_rule,
    'class_labels': _class_labels_rule,
    'cond': _cond_rule, 'scan': _scan_rule, 'while': _while_rule, 'jit_call': _jit_call_rule,
    **_SCIPY_RULES,
}
