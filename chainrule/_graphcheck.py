"""Checking a graph read from a file, without running it and without allocating its arrays.

What this module lets you do: `check_graph(graph, probe_limit)` validates a `Graph` that
`chainrule.export.load_graph` rebuilt from untrusted JSON, and raises `FormatProblem` saying
which equation is wrong and why. It checks:

1. every variable is defined once, before it is used; constants have their variables' types;
2. every equation's parameters against the primitive's schema (`SCHEMAS`: each parameter's
   name and kind -- an axis, a shape, a dtype, an index, a graph, one of a few strings, ...);
   a parameter that is missing, unexpected or of the wrong kind is refused, so a crafted file
   can never hand a primitive an argument it would choke on (or a NumPy keyword such as `out=`);
3. every equation's declared result types against its primitive's rules, on *abstract values*
   (shapes and dtypes): the primitive's own `shape` rule where it has one, the broadcasting rule
   for elementwise primitives, and otherwise the rules in `RULES` below (a reshape, a matmul, a
   convolution, an FFT, ...). Dtypes come from running the primitive on one-element arrays. No
   array of a declared shape is ever created, so a small file declaring huge shapes loads in
   small memory (a program that needs huge arrays only needs them when it runs);
4. graph-carrying primitives (`cond`, `scan`, `while`, `jit_call`): their graphs' input and
   output types agree with the equation's operands, counts and results.

A primitive with no rule here (one registered by a user) is checked by running it on broadcast
zero arrays of the declared shapes, only when the equation's declared arrays hold at most
`probe_limit` elements; beyond that the file is refused, saying how to allow it.
"""

import warnings

import numpy as np

from chainrule._format import FormatProblem
from chainrule.core import registry
from chainrule.interpreters.staging import Graph, Literal, ShapedArray, abstract_eval

__all__ = ['check_graph', 'SCHEMAS', 'RULES', 'DTYPES']

DTYPES = frozenset({'float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8',
                    'uint16', 'uint32', 'uint64', 'bool', 'complex128', 'complex64'})


# --- parameter kinds ------------------------------------------------------------------------------

def _int(v):
    return type(v) is int


def _nonneg(v):
    return type(v) is int and v >= 0


def _ints(v):
    return isinstance(v, tuple) and all(type(x) is int for x in v)


def _shape(v):
    return isinstance(v, tuple) and all(_nonneg(x) for x in v)


def _pair(v):
    return isinstance(v, tuple) and len(v) == 2 and all(_nonneg(x) for x in v)


def _choice(*options):
    return lambda v: any(v is o or (isinstance(o, str) and v == o) for o in options)


def _index_item(x):
    if x is None or x is Ellipsis or type(x) is int:
        return True
    if isinstance(x, slice):
        return all(p is None or type(p) is int for p in (x.start, x.stop, x.step)) and \
            x.step != 0
    return isinstance(x, np.ndarray) and x.dtype.kind in 'biu'


KINDS = {
    'int': _int,
    'int or None': lambda v: v is None or _int(v),
    'nonneg': _nonneg,
    'bool': lambda v: isinstance(v, bool),
    'ints': _ints,
    'shape': _shape,
    'reshape': lambda v: isinstance(v, tuple) and all(type(x) is int and x >= -1 for x in v),
    'pair': _pair,
    'dtype': lambda v: isinstance(v, np.dtype) and v.name in DTYPES,
    'index': lambda v: isinstance(v, tuple) and all(map(_index_item, v)) and
    sum(x is Ellipsis for x in v) <= 1,
    'graph': lambda v: isinstance(v, Graph),
    'two graphs': lambda v: isinstance(v, tuple) and len(v) == 2 and
    all(isinstance(g, Graph) for g in v),
    'norm': _choice(None, 'backward', 'ortho', 'forward'),
    'side': _choice('left', 'right'),
    'reduction': _choice('mean', 'sum', 'none'),
    'UPLO': _choice('L', 'U'),
    'str': lambda v: isinstance(v, str) and len(v) < 1000,
    'kth': lambda v: _int(v) or (_ints(v) and len(v) > 0),
}

_WINDOW = {'kernel': 'pair', 'stride': 'pair', 'padding': 'pair'}

# the parameters of every primitive that takes any (the others take none)
SCHEMAS = {
    'all': {'axis': 'ints', 'keepdims': 'bool'},
    'any': {'axis': 'ints', 'keepdims': 'bool'},
    'argmax': {'axis': 'int', 'keepdims': 'bool'},
    'argmin': {'axis': 'int', 'keepdims': 'bool'},
    'argpartition': {'kth': 'kth', 'axis': 'int'},
    'argsort': {'axis': 'int', 'stable': 'bool'},
    'astype': {'dtype': 'dtype'},
    'at_add': {'idx': 'index'},
    'at_set': {'idx': 'index'},
    'broadcast_to': {'shape': 'shape'},
    'concatenate': {'axis': 'int'},
    'cond': {'branches': 'two graphs'},
    'conv2d': {'stride': 'pair', 'padding': 'pair'},
    'class_labels': {'num_classes': 'nonneg', 'ignore_index': 'int or None', 'op': 'str'},
    'cross_entropy': {'reduction': 'reduction', 'ignore_index': 'int'},
    'cumprod': {'axis': 'int'},
    'cumsum': {'axis': 'int'},
    'eigh': {'UPLO': 'UPLO'},
    'einsum': {'spec': 'str'},
    'fftn': {'axes': 'ints', 'norm': 'norm', 'inverse': 'bool'},
    'fold': dict(_WINDOW, shape='shape'),
    'getitem': {'idx': 'index'},
    'irfftn': {'axes': 'ints', 'n': 'nonneg', 'norm': 'norm'},
    'jit_call': {'graph': 'graph'},
    'log_softmax': {'axis': 'int'},
    'max': {'axis': 'ints', 'keepdims': 'bool'},
    'max_pool2d': _WINDOW,
    'pool_gather': _WINDOW,
    'pool_scatter': _WINDOW,
    'qr': {'full_matrices': 'bool'},
    'reshape': {'shape': 'reshape'},
    'rfftn': {'axes': 'ints', 'norm': 'norm'},
    'round': {'decimals': 'int'},
    'scan': {'body': 'graph', 'length': 'nonneg', 'reverse': 'bool', 'num_consts': 'nonneg',
             'num_carry': 'nonneg'},
    'scatter_add': {'idx': 'index', 'shape': 'shape'},
    'scatter_along_axis': {'axis': 'int', 'n': 'nonneg'},
    'searchsorted': {'side': 'side'},
    'sum': {'axis': 'ints', 'keepdims': 'bool'},
    'svd': {'full_matrices': 'bool'},
    'take_along_axis': {'axis': 'int'},
    'transpose': {'axes': 'ints'},
    'triangular_solve': {'lower': 'bool'},
    'unfold': _WINDOW,
    'while': {'cond': 'graph', 'body': 'graph', 'num_cond_consts': 'nonneg',
              'num_body_consts': 'nonneg'},
}

# graphs made by other means (checkpoint, custom rules) carry Python functions: not loadable
_NOT_LOADABLE = {'checkpoint_call', 'custom_jvp_call', 'custom_vjp_call'}


def not_loadable(name):
    """Primitives no saved graph holds: those carrying Python functions, and reverse mode's
    `projectN` (nodes of its tape only, never staged)."""
    return name in _NOT_LOADABLE or (name.startswith('project') and name[7:].isdigit())


def _check_params(prim, params):
    schema = SCHEMAS.get(prim.name, {})
    if set(params) != set(schema):
        missing, extra = sorted(set(schema) - set(params)), sorted(set(params) - set(schema))
        raise FormatProblem(
            f'parameters {sorted(params)} do not match what {prim.name} takes ({sorted(schema)})'
            + (f'; missing {missing}' if missing else '') + (f'; unexpected {extra}' if extra
                                                            else ''))
    for k, kind in schema.items():
        if not KINDS[kind](params[k]):
            raise FormatProblem(f'parameter {k}={params[k]!r:.60} is not a valid {kind}')


def _check_axes(params, ins):
    """Every `axis` (an int or a tuple) names an axis of the first operand."""
    axis = params.get('axis')
    if axis is None or not ins or isinstance(ins[0], Literal):
        return
    axes = [_axis(a, ins[0].ndim) for a in (axis if isinstance(axis, tuple) else (axis,))]
    if len(set(axes)) != len(axes):
        raise FormatProblem(f'axis {axis} repeats an axis')


# --- abstract rules -------------------------------------------------------------------------------

def _one(dtype, shape=(1,)):
    return np.ones(shape, dtype)


def _dtype_of(fn, *dtypes, shape=(1,)):
    """The dtype `fn` gives on one-element arrays (dtypes depend on dtypes only)."""
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = fn(*[_one(d, shape) for d in dtypes])
    return np.result_type(out)


def _axis(a, nd):
    if not -nd <= a < nd:
        raise FormatProblem(f'axis {a} is out of range for {nd} dimensions')
    return a % nd


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _reduce_shape(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    axes = {_axis(a, len(shape)) for a in axes}
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _sum_rule(x, *, axis, keepdims):
    return [(_reduce_shape(x.shape, axis, keepdims), _dtype_of(np.sum, x.dtype))]


def _max_rule(x, *, axis, keepdims):
    axes = range(x.ndim) if axis is None else axis
    if any(x.shape[_axis(a, x.ndim)] == 0 for a in axes):
        raise FormatProblem(f'max over an empty axis of {x}')
    return [(_reduce_shape(x.shape, axis, keepdims), x.dtype)]


def _reshape_rule(x, *, shape):
    known = _prod(d for d in shape if d != -1)
    if list(shape).count(-1) > 1 or (-1 not in shape and known != _prod(x.shape)) or \
            (-1 in shape and (known == 0 or _prod(x.shape) % known)):
        raise FormatProblem(f'cannot reshape {x} to {shape}')
    return [(tuple(_prod(x.shape) // known if d == -1 else d for d in shape), x.dtype)]


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
        _axis(axis, x.ndim)
        return [(x.shape, _dtype_of(lambda a: fn(a, axis=0), x.dtype))]
    return rule


def _concatenate_rule(*xs, axis):
    if not xs or xs[0].ndim == 0:
        raise FormatProblem('concatenate needs arrays with at least one axis')
    nd = xs[0].ndim
    ax = _axis(axis, nd)
    for x in xs:
        if x.ndim != nd or any(d != e for i, (d, e) in enumerate(zip(x.shape, xs[0].shape))
                               if i != ax):
            raise FormatProblem(f'cannot concatenate {[str(x) for x in xs]} along axis {axis}')
    shape = list(xs[0].shape)
    shape[ax] = sum(x.shape[ax] for x in xs)
    return [(tuple(shape), np.result_type(*[x.dtype for x in xs]))]


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
    return [_axis(a, x.ndim) for a in axes]


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


def _window_out(shape, kernel, stride, padding):
    if len(shape) != 4 or 0 in kernel or 0 in stride:
        raise FormatProblem(f'a window op needs (N, C, H, W) arrays and positive kernel/stride; '
                            f'got shape {shape}, kernel {kernel}, stride {stride}')
    out = tuple((d + 2 * p - k) // s + 1 for d, k, s, p in zip(shape[2:], kernel, stride,
                                                                padding))
    if min(out) < 1 or any(p > k for p, k in zip(padding, kernel)):
        raise FormatProblem(f'window {kernel} (padding {padding}) does not fit shape {shape}')
    return out


def _unfold_rule(x, *, kernel, stride, padding):
    oh, ow = _window_out(x.shape, kernel, stride, padding)
    return [((x.shape[0], oh, ow, kernel[0] * kernel[1] * x.shape[1]), x.dtype)]


def _fold_rule(cols, *, kernel, stride, padding, shape):
    oh, ow = _window_out(shape, kernel, stride, padding)
    if cols.shape != (shape[0], oh, ow, kernel[0] * kernel[1] * shape[1]):
        raise FormatProblem(f'fold of {cols} into shape {shape}')
    return [(shape, cols.dtype)]


def _conv_rule(x, w, *b, stride, padding):
    if w.ndim != 4 or x.ndim != 4 or w.shape[1] != x.shape[1] or \
            (b and b[0].shape != (w.shape[0],)):
        raise FormatProblem(f'conv2d of {x} with weights {w}')
    oh, ow = _window_out(x.shape, w.shape[2:], stride, padding)
    dt = _dtype_of(np.matmul, x.dtype, w.dtype, shape=(1, 1))
    return [((x.shape[0], w.shape[0], oh, ow), np.result_type(dt, *[t.dtype for t in b]))]


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
    _axis(axis, x.ndim)
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


RULES = {
    'argsort': lambda x, *, axis, stable: [(x.shape, np.dtype(np.intp))],
    'argpartition': _argpartition_rule,
    'sum': _sum_rule, 'max': _max_rule,
    'reshape': _reshape_rule, 'broadcast_to': _broadcast_rule, 'transpose': _transpose_rule,
    'astype': lambda x, *, dtype: [(x.shape, dtype)],
    'cumsum': _cum_rule(np.cumsum), 'cumprod': _cum_rule(np.cumprod),
    'concatenate': _concatenate_rule,
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
    'max_pool2d': _pool_rule, 'pool_scatter': _pool_back_rule('scatter'),
    'pool_gather': _pool_back_rule('gather'),
    'log_softmax': _log_softmax_rule, 'cross_entropy': _cross_entropy_rule,
    'class_labels': _class_labels_rule,
    'cond': _cond_rule, 'scan': _scan_rule, 'while': _while_rule, 'jit_call': _jit_call_rule,
}


def _elementwise_rule(prim, ins, params):
    shapes = [a.shape for a in ins if not isinstance(a, Literal)]
    shape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    args = [a.value if isinstance(a, Literal) else np.zeros((), a.dtype) for a in ins]
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            res = prim.impl(*args, **params)
        except Exception:    # noqa: BLE001 - some ops reject zero (integer powers): try ones
            res = prim.impl(*[a if isinstance(a, (int, float, complex, bool)) else
                              np.ones((), a.dtype) for a in args], **params)
    return [(shape, np.result_type(res))]


def _abstract(prim, ins, params, declared, probe_limit):
    """The (shape, dtype) of each result of `prim` on `ins` (avals or Literals)."""
    avals = [a.aval if isinstance(a, Literal) else a for a in ins]
    rule = RULES.get(prim.name)
    if rule is not None:
        return rule(*avals, **params)
    if prim.shape is not None:
        out = prim.shape(*avals, **params)
        return list(out) if prim.multiple_results else [out]
    if prim.elementwise or prim.name == 'where':
        return _elementwise_rule(prim, ins, params)
    size = sum(_prod(a.shape) for a in avals) + sum(_prod(a.shape) for a in declared)
    if size > probe_limit:
        raise FormatProblem(
            f'{prim.name} has no shape rule, and checking it means running it on arrays of '
            f'{size} elements (more than probe_limit={probe_limit}); pass a larger '
            'probe_limit to load_graph if the file is trusted')
    return [(a.shape, a.dtype) for a in abstract_eval(prim, ins, params)]


def _check_eqn(e, probe_limit):
    prim = e.prim
    if not_loadable(prim.name):
        raise FormatProblem(f'{prim.name} is not a primitive a saved graph can hold')
    if prim.name in SCHEMAS or prim.name in RULES or prim.shape is not None or \
            prim.elementwise or prim.name == 'where':
        _check_params(prim, e.params)
    ins = [v if isinstance(v, Literal) else v.aval for v in e.invars]
    _check_axes(e.params, ins)
    declared = [v.aval for v in e.outvars]
    try:
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            want = _abstract(prim, ins, e.params, declared, probe_limit)
        want = [ShapedArray(s, d) for s, d in want]
    except FormatProblem:
        raise
    except Exception as err:  # noqa: BLE001 - a rule rejecting its operands, whatever the type
        raise FormatProblem(f'{prim.name} rejects operands {[str(a) for a in ins]} with '
                            f'parameters {_short(e.params)}: {type(err).__name__}: {err}') \
            from None
    if not prim.multiple_results and len(declared) != 1:
        raise FormatProblem(f'{prim.name} has one result, {len(declared)} are declared')
    if want != declared:
        raise FormatProblem(f'results declared as {[str(a) for a in declared]}, but '
                            f'{prim.name} of {[str(a) for a in ins]} gives '
                            f'{[str(a) for a in want]}')


def _short(params):
    return '{' + ', '.join(f'{k}={v!r:.40}' for k, v in sorted(params.items())) + '}'


def check_graph(graph, probe_limit):
    """Check `graph` (rebuilt from a file) as the module docstring says; raise `FormatProblem`
    naming the first equation that is wrong."""
    defined = set()

    def define(v, where):
        if v.id in defined:
            raise FormatProblem(f'{where}: a variable is defined twice')
        defined.add(v.id)

    for v, c in zip(graph.constvars, graph.consts):
        define(v, 'constants')
        if ShapedArray(c.shape, c.dtype) != v.aval:
            raise FormatProblem(f'a constant of type {ShapedArray(c.shape, c.dtype)} is bound '
                                f'to a variable of type {v.aval}')
    for v in graph.invars:
        define(v, 'inputs')
    for i, e in enumerate(graph.eqns):
        where = f'equation {i} ({e.prim.name})'
        if registry.get(e.prim.name) is not e.prim:
            raise FormatProblem(f'{where}: primitive is not registered')
        if any(not isinstance(v, Literal) and v.id not in defined for v in e.invars):
            raise FormatProblem(f'{where}: an input is used before it is defined')
        try:
            _check_eqn(e, probe_limit)
        except FormatProblem as err:
            raise FormatProblem(f'{where}: {err}') from None
        for v in e.outvars:
            define(v, where)
    if any(not isinstance(v, Literal) and v.id not in defined for v in graph.outvars):
        raise FormatProblem('an output is not defined by the graph')

