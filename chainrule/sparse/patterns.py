"""Sparsity patterns of Jacobians, found by propagating dependencies through a staged program.

`jacobian_pattern(graph)` walks the equations of a graph (`cr.make_graph`) once, in order, and
keeps for every variable a boolean matrix `P` (one row per element of the variable, one column
per element of the input): `P[i, j]` says element i may depend on input element j. Each
primitive maps its inputs' patterns to its output's by one rule of its family, written as a
dependency matrix `D_k` per input (`D_k[i, e]`: output element i reads element e of input k),
so that `P_out = OR_k D_k @ P_k`:

- no derivative (comparisons, `floor`, `argmax`, `stop_gradient`, integer results): none;
- elementwise (`sin`, `mul`, `where`, `astype`, ...): the broadcasting map, a diagonal;
- data movement (`getitem`, `reshape`, `transpose`, `broadcast_to`, `concatenate`, `at_set`):
  found by running the primitive itself on element ids, a permutation or selection;
- scatters (`scatter_add`, `at_add`): the ids of the written positions;
- reductions (`sum`, `max`; `cumsum`, `cumprod`, `log_softmax` along an axis): each output
  reads its group (or prefix) along the axes;
- products (`matmul`): output (i, j) reads row i of `a` and column j of `b`;
- anything else (`solve`, `einsum`, calls of inner graphs, ...): every output reads every
  input element -- dense, always safe.

The pattern is a superset of the true nonzeros (both branches of a `where`, a product whose
factor happens to be 0), never a subset, so a Jacobian computed on it is exact.
"""

import numpy as np

from chainrule.interpreters.staging import Literal

_DATA_MOVEMENT = {'getitem', 'reshape', 'transpose', 'broadcast_to', 'concatenate', 'at_set',
                  'take_along_axis', 'pad', 'flip', 'roll'}
_ELEMENTWISE = {'where', 'astype', 'real', 'imag', 'conj'}
_GROUP_REDUCTIONS = {'sum', 'max', 'min', 'prod', 'logsumexp'}
_ALONG_AXIS = {'cumsum': 'prefix', 'cumprod': 'prefix', 'log_softmax': 'all',
               'softmax': 'all'}


def _sp():
    from chainrule.sparse import _scipy_sparse
    return _scipy_sparse()


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _ids(shape, offset=0):
    return np.arange(offset, offset + _size(shape), dtype=np.int64).reshape(shape)


def _dep(rows, cols, shape):
    """The boolean dependency matrix with ones at (rows, cols)."""
    sp = _sp()
    rows, cols = np.ravel(rows), np.ravel(cols)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=shape)


def _bool(m):
    m = m.tocsr()
    m.data[:] = 1
    m.eliminate_zeros()
    return m


def _elementwise(out_shape, in_shapes):
    """Each output element reads the element of each input it is broadcast from."""
    out = _ids(out_shape).ravel()
    return [_dep(out, np.broadcast_to(_ids(s), out_shape), (out.size, _size(s)))
            for s in in_shapes]


def _data_movement(eqn, in_shapes, values):
    """Run the primitive itself on element ids (each input numbered after the previous one):
    each output element then holds the id of the element it was moved from."""
    offsets = np.cumsum([0] + [_size(s) for s in in_shapes])
    args = []
    for k, (v, s) in enumerate(zip(eqn.invars, in_shapes)):
        if np.dtype(v.aval.dtype).kind in 'fc':
            args.append(_ids(s, offsets[k]))
        elif values[k] is not None:                 # a constant index array: its values
            args.append(np.asarray(values[k]))
        else:
            return None                             # indices computed at run time
    src = np.asarray(eqn.prim.impl(*args, **eqn.params)).ravel().astype(np.int64)
    out = np.arange(src.size)
    deps = []
    for k, s in enumerate(in_shapes):
        hit = (src >= offsets[k]) & (src < offsets[k + 1])
        if np.dtype(eqn.invars[k].aval.dtype).kind not in 'fc':
            hit[:] = False
        deps.append(_dep(out[hit], src[hit] - offsets[k], (src.size, _size(s))))
    return deps


def _written(shape, idx, value_shape):
    """The positions of an array of `shape` that `x[idx]` reads, broadcast to `value_shape`."""
    pos = _ids(shape)[idx]
    return pos, np.broadcast_to(_ids(value_shape), pos.shape)


def _scatter(eqn, in_shapes, out_shape):
    if eqn.prim.name == 'scatter_add':
        pos, src = _written(out_shape, eqn.params['idx'], in_shapes[0])
        return [_dep(pos, src, (_size(out_shape), _size(in_shapes[0])))]
    x_shape, y_shape = in_shapes                   # at_add(x, y): x itself, plus y where written
    pos, src = _written(x_shape, eqn.params['idx'], y_shape)
    n = _size(x_shape)
    return [_dep(np.arange(n), np.arange(n), (n, n)), _dep(pos, src, (n, _size(y_shape)))]


def _axes(axis, nd):
    if axis is None:
        return tuple(range(nd))
    axis = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(a % nd for a in axis)


def _group_reduction(eqn, in_shape, out_shape):
    """Each output element reads the input elements that share its kept coordinates."""
    nd = len(in_shape)
    axes = _axes(eqn.params.get('axis'), nd)
    kept = [d for d in range(nd) if d not in axes]
    coords = np.indices(in_shape).reshape(nd, -1)
    if kept:
        group = np.ravel_multi_index(coords[kept], [in_shape[d] for d in kept])
    else:
        group = np.zeros(coords.shape[1], dtype=np.int64)
    return [_dep(group, np.arange(group.size), (_size(out_shape), _size(in_shape)))]


def _along_axis(eqn, in_shape, how):
    """cumsum-like (each output reads its prefix along the axis) or softmax-like (all of it)."""
    axis = eqn.params.get('axis')
    ids = _ids(in_shape)
    if axis is None:
        ids = ids.reshape(1, -1)
    else:
        ids = np.moveaxis(ids, int(axis) % len(in_shape), -1).reshape(-1, in_shape[axis])
    n = ids.shape[1]
    i, j = np.triu_indices(n) if how == 'prefix' else np.indices((n, n)).reshape(2, -1)
    return [_dep(ids[:, j], ids[:, i], (_size(in_shape), _size(in_shape)))]


def _matmul(in_shapes, out_shape):
    (sa, sb) = in_shapes
    if len(sa) < 2 or len(sb) < 2:
        return None
    n, k, m = sa[-2], sa[-1], sb[-1]
    out = _ids(out_shape)[..., None]                               # (..., n, m, 1)
    batch = out_shape[:-2]
    a = np.broadcast_to(_ids(sa), batch + (n, k))[..., :, None, :]  # (..., n, 1, k)
    b = np.broadcast_to(_ids(sb), batch + (k, m))
    b = np.swapaxes(b, -1, -2)[..., None, :, :]                     # (..., 1, m, k)
    full = batch + (n, m, k)
    size = _size(out_shape)
    return [_dep(np.broadcast_to(out, full), np.broadcast_to(a, full), (size, _size(sa))),
            _dep(np.broadcast_to(out, full), np.broadcast_to(b, full), (size, _size(sb)))]


def _dense(out_size, pats):
    """Every output element reads every element any input depends on."""
    sp = _sp()
    cols = np.unique(np.concatenate([p.indices for p in pats])) if pats else np.array([], int)
    n = pats[0].shape[1]
    return _bool(sp.csr_matrix((np.ones(len(cols) * out_size, np.int32),
                                (np.repeat(np.arange(out_size), len(cols)),
                                 np.tile(cols, out_size))), shape=(out_size, n)))


def _rule(eqn, in_shapes, out_shape, values):
    """The dependency matrices of `eqn` (one per input), or None for the dense fallback."""
    prim, name = eqn.prim, eqn.prim.name
    if prim.multiple_results:
        return None
    if prim.elementwise or name in _ELEMENTWISE:
        return _elementwise(out_shape, in_shapes)
    if name in _DATA_MOVEMENT:
        return _data_movement(eqn, in_shapes, values)
    if name in ('scatter_add', 'at_add'):
        return _scatter(eqn, in_shapes, out_shape)
    if name in _GROUP_REDUCTIONS and len(in_shapes) == 1:
        return _group_reduction(eqn, in_shapes[0], out_shape)
    if name in _ALONG_AXIS and len(in_shapes) == 1:
        return _along_axis(eqn, in_shapes[0], _ALONG_AXIS[name])
    if name == 'matmul':
        return _matmul(in_shapes, out_shape)
    return None


def _constant(v):
    return np.dtype(v.aval.dtype).kind not in 'fc'


def jacobian_pattern(graph, argnum=0):
    """The sparsity pattern (a `scipy.sparse.csr_matrix` of ones) of the Jacobian of the
    graph's single output with respect to its input `argnum`, both flattened."""
    sp = _sp()
    x = graph.invars[argnum]
    n = _size(x.aval.shape)
    pats, values = {}, {}
    for v, c in zip(graph.constvars, graph.consts):
        values[v.id] = c
    pats[x.id] = sp.identity(n, dtype=np.int32, format='csr')

    def pattern(v):
        if isinstance(v, Literal) or v.id not in pats:
            return sp.csr_matrix((_size(v.aval.shape), n), dtype=np.int32)
        return pats[v.id]

    for eqn in graph.eqns:
        ins = [pattern(v) for v in eqn.invars]
        if all(p.nnz == 0 for p in ins) or not eqn.prim.differentiable:
            continue                        # a constant: no entry means no dependency
        vals = [v.value if isinstance(v, Literal) else values.get(v.id) for v in eqn.invars]
        for out in eqn.outvars:
            size = _size(out.aval.shape)
            if _constant(out) or eqn.prim.name == 'stop_gradient':
                continue
            deps = _rule(eqn, [tuple(v.aval.shape) for v in eqn.invars], tuple(out.aval.shape),
                         vals)
            if deps is None:
                pats[out.id] = _dense(size, [p for p in ins if p.nnz])
            else:
                total = sp.csr_matrix((size, n), dtype=np.int32)
                for d, p in zip(deps, ins):
                    if p.nnz and d.nnz:
                        total = total + d @ p
                pats[out.id] = _bool(total)
    (out,) = graph.outvars
    return _bool(pattern(out).astype(np.int32))
