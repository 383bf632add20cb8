"""The op table: one row per public `chainrule.numpy` function, driving `tests/test_ops.py`.

Each row names the chainrule function, its NumPy reference, where to sample inputs, the shapes
to test (scalars, broadcasting pairs such as (3,1)/(1,4) and (2,3,4)/(3,4)), keyword variants
(`axis`, `keepdims`, `ddof`), whether it is differentiable, and the PyTorch function to compare
gradients with. `linalg`, `fft` and `einsum` have their own test files.

Adding a function to `chainrule.numpy` means adding a row here (or naming it in `NOT_TESTED_HERE`
with the reason); `test_every_public_function_has_a_row` checks that.
"""

from dataclasses import dataclass, field

import numpy as np

import chainrule.numpy as cnp

F64, F32, C128 = np.float64, np.float32, np.complex128


@dataclass
class Row:
    """One function to test.

    Attributes:
        name: the public `chainrule.numpy` name this row tests (several rows may share it).
        fn: the chainrule function, called with the sampled arrays and `**kwargs`.
        ref: the NumPy reference, same call. It is also called with `Tensor`s (to test NumPy's
            dispatch to chainrule) unless `dispatch=False`.
        shapes: a list of argument-shape tuples, one tuple per test case.
        domain: `(lo, hi)` to sample every argument uniformly from, or a list with one entry per
            argument: `(lo, hi)`, `'int'` (integers 0..2, not differentiated) or `'bool'`.
        kwargs: keyword variants; each is a separate case.
        diff: differentiable (`False`: outputs are constants; the test checks zero gradients).
        dtypes: floating dtypes to test (float64 gets second order; others first order).
        complex: also check gradients with complex128 inputs (JAX's convention).
        torch: the PyTorch reference for gradients: a name in `torch`, or a function
            `(torch, *tensors, **kwargs)`; `None` where torch has no counterpart.
        order: the derivative order checked in float64.
        dispatch: `ref` works on `Tensor`s through `__array_ufunc__`/`__array_function__`.
    """

    name: str
    fn: object
    ref: object
    shapes: list
    domain: object = (-2.0, 2.0)
    kwargs: list = field(default_factory=lambda: [{}])
    diff: bool = True
    dtypes: tuple = (F64, F32)
    complex: bool = False
    torch: object = None
    order: int = 2
    dispatch: bool = True

    def cases(self):
        """(case id, shapes, kwargs) for each shape and keyword variant."""
        for s in self.shapes:
            for kw in self.kwargs:
                if not _axis_fits(kw.get('axis'), len(s[0]) if s else 0):
                    continue
                sid = 'x'.join(_shape_id(x) for x in s)
                kid = ','.join(f'{k}={v}' for k, v in kw.items())
                yield f'{self.name}[{sid}{"," + kid if kid else ""}]', s, kw

    def domains(self, nargs):
        d = self.domain
        if isinstance(d, list):
            return d
        return [d] * nargs

    def sample(self, shapes, dtype, rng):
        """Arguments for one case: floating arguments in `dtype` (complex when asked)."""
        out = []
        for shape, dom in zip(shapes, self.domains(len(shapes))):
            if dom == 'int':
                out.append(rng.integers(0, 3, shape))
            elif dom == 'bool':
                out.append(rng.random(shape) < 0.5)
            else:
                lo, hi = dom
                x = rng.uniform(lo, hi, shape)
                if np.dtype(dtype).kind == 'c':
                    x = x + 1j * rng.uniform(lo, hi, shape)
                out.append(np.asarray(x, dtype=dtype))
        return out


def _axis_fits(axis, ndim):
    axes = () if axis is None else (axis,) if isinstance(axis, int) else axis
    return all(-ndim <= a < ndim for a in axes)


def _shape_id(s):
    return '(' + ','.join(map(str, s)) + ')'


UNARY = [((),), ((3,),), ((2, 3),)]
BINARY = [((), ()), ((3,), (3,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 4)), ((), (2, 3))]
REDUCE = [((2, 3, 4),)]
REDUCE_KW = [{}, {'axis': 0}, {'axis': -1, 'keepdims': True}, {'axis': (0, 2)}]


def unary(name, domain=(-2.0, 2.0), torch=None, complex=False, ref=None, fn=None, **kw):
    return Row(name, fn or getattr(cnp, name), ref or getattr(np, name), UNARY, domain,
               torch=torch, complex=complex, **kw)


def binary(name, domain=(-2.0, 2.0), torch=None, complex=False, ref=None, fn=None, **kw):
    return Row(name, fn or getattr(cnp, name), ref or getattr(np, name), BINARY, domain,
               torch=torch, complex=complex, **kw)


def reduction(name, kwargs=REDUCE_KW, domain=(-2.0, 2.0), torch=None, **kw):
    return Row(name, getattr(cnp, name), kw.pop('ref', None) or getattr(np, name),
               kw.pop('shapes', REDUCE + [((3,),)]), domain, kwargs=kwargs, torch=torch, **kw)


def nondiff(name, shapes=UNARY, domain=(-3.0, 3.0), ref=None, **kw):
    return Row(name, getattr(cnp, name), ref or getattr(np, name), shapes, domain, diff=False,
               **kw)


def _np_logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else None)


def _np_at_set(x, y):
    out = np.array(x, copy=True)
    out[1:3] = y
    return out


def _np_set_repeated(x, y):
    out = np.array(x, copy=True)
    out[[0, 2, 0]] = y          # NumPy keeps the last write to position 0
    return out


def _np_at_add(x, y):
    out = np.array(x, copy=True)
    np.add.at(out, [0, 2, 0], y)
    return out


_IDX_ROWS = [
    ('int', 1), ('slice', (slice(None), slice(1, None, 2))),
    ('ellipsis_none', (Ellipsis, None, 0)),
    ('int_array', np.array([2, 0, 2])), ('bool_mask', np.array([True, False, True, True])),
    ('mixed', (np.array([0, 2, 0]), np.array([1, 0, 1]))),
    ('slice_array', (slice(1, None), np.array([2, 0, 2]))),
    ('bool_2d', np.arange(12).reshape(4, 3) % 5 == 1),
]

POS = (0.3, 2.0)
UNIT = (-0.9, 0.9)

ROWS = [
    # --- elementwise, unary --------------------------------------------------------------------
    unary('abs', torch='abs', complex=True),
    unary('absolute', torch='abs'),
    unary('negative', torch='negative', complex=True),
    unary('positive', torch='positive'),
    unary('reciprocal', POS, torch='reciprocal', complex=True),
    unary('square', torch='square', complex=True),
    unary('sqrt', POS, torch='sqrt', complex=True),
    unary('cbrt', POS),
    unary('exp', torch='exp', complex=True),
    unary('exp2', torch='exp2'),
    unary('expm1', torch='expm1'),
    unary('log', POS, torch='log', complex=True),
    unary('log2', POS, torch='log2'),
    unary('log10', POS, torch='log10'),
    unary('log1p', POS, torch='log1p'),
    unary('sin', torch='sin', complex=True),
    unary('cos', torch='cos', complex=True),
    unary('tan', (-1.2, 1.2), torch='tan'),
    unary('arcsin', UNIT, torch='arcsin'),
    unary('arccos', UNIT, torch='arccos'),
    unary('arctan', torch='arctan'),
    unary('sinh', torch='sinh', complex=True),
    unary('cosh', torch='cosh'),
    unary('tanh', torch='tanh', complex=True),
    unary('arcsinh', torch='arcsinh'),
    unary('arccosh', (1.2, 3.0), torch='arccosh'),
    unary('arctanh', UNIT, torch='arctanh'),
    unary('sinc', torch='sinc'),
    unary('deg2rad', torch='deg2rad'),
    unary('rad2deg', torch='rad2deg'),
    unary('radians'),
    unary('degrees'),
    unary('conj', complex=True),
    unary('conjugate', complex=True),
    unary('real', complex=True),
    unary('imag', complex=True),
    unary('angle', (0.2, 2.0), complex=True),
    unary('nan_to_num'),
    unary('fabs', torch='abs'),
    unary('copy'),
    Row('real_if_close', lambda z: cnp.real_if_close(z * (1 + 1e-17j)),
        lambda z: np.real_if_close(z * (1 + 1e-17j)), UNARY, complex=True, dispatch=False),
    unary('stop_gradient', fn=cnp.stop_gradient, ref=lambda x: x, diff=False, dispatch=False),
    nondiff('sign'), nondiff('floor'), nondiff('ceil'), nondiff('trunc'), nondiff('fix'),
    nondiff('rint'), nondiff('round', kwargs=[{}, {'decimals': 1}]),
    nondiff('around', kwargs=[{'decimals': 2}]),
    nondiff('isnan'), nondiff('isinf'), nondiff('isfinite'),
    nondiff('logical_not', domain=['bool']),
    # --- elementwise, binary -------------------------------------------------------------------
    binary('add', torch='add', complex=True),
    binary('subtract', torch='subtract', complex=True),
    binary('multiply', torch='multiply', complex=True),
    binary('divide', [(-2.0, 2.0), POS], torch='divide', complex=True),
    binary('true_divide', [(-2.0, 2.0), POS], torch='true_divide'),
    binary('power', [POS, (-1.5, 1.5)], torch='pow'),
    binary('float_power', [POS, (-1.5, 1.5)], torch='float_power'),
    binary('maximum', torch='maximum'),
    binary('minimum', torch='minimum'),
    binary('fmax', torch='fmax'),
    binary('fmin', torch='fmin'),
    binary('arctan2', torch='arctan2'),
    binary('hypot', torch='hypot'),
    binary('logaddexp', torch='logaddexp'),
    binary('logaddexp2', torch='logaddexp2'),
    binary('mod', [(0.1, 3.0), (0.7, 1.3)], torch='remainder'),
    binary('remainder', [(0.1, 3.0), (0.7, 1.3)], torch='remainder'),
    binary('heaviside'),
    Row('power_int', lambda x: cnp.power(x, 3), lambda x: np.power(x, 3), UNARY, complex=True),
    Row('power_weak_scalar', lambda x: x ** 2.0 * 2.0 - 1.0 / (x * x + 1.0),
        lambda x: x ** 2.0 * 2.0 - 1.0 / (x * x + 1.0), UNARY, complex=True),
    nondiff('floor_divide', BINARY, [(0.1, 3.0), (0.7, 1.3)]),
    nondiff('equal', BINARY, ['int', 'int']), nondiff('not_equal', BINARY, ['int', 'int']),
    nondiff('less', BINARY), nondiff('less_equal', BINARY), nondiff('greater', BINARY),
    nondiff('greater_equal', BINARY),
    nondiff('logical_and', BINARY, ['bool', 'bool']), nondiff('logical_or', BINARY, ['bool'] * 2),
    nondiff('logical_xor', BINARY, ['bool', 'bool']),
    nondiff('bitwise_and', BINARY, ['int', 'int']), nondiff('bitwise_or', BINARY, ['int', 'bool']),
    nondiff('bitwise_xor', BINARY, ['bool', 'bool']),
    nondiff('invert', domain=['int']), nondiff('bitwise_not', domain=['bool']),
    nondiff('bitwise_invert', domain=['int']),
    Row('clip', cnp.clip, np.clip, UNARY,
        kwargs=[{'a_min': -0.5, 'a_max': 0.7}, {'a_min': None, 'a_max': 0.5}, {'min': -0.3}],
        torch=lambda T, x, a_min, a_max: T.clamp(x, a_min, a_max)),
    Row('where_nonzero', lambda x: cnp.where(x > 0), lambda x: np.where(x > 0),
        [((3, 4),), ((5,),)], diff=False, dispatch=False),
    Row('select', lambda c, x, y: cnp.select([c, x > 0.5], [x, y], -1.0),
        lambda c, x, y: np.select([c, x > 0.5], [x, y], -1.0),
        [((3,), (3,), (3,)), ((3, 1), (1, 4), ())], ['bool', (-2, 2), (-2, 2)], dispatch=False),
    nondiff('iscomplex'), nondiff('isreal'),
    Row('where', cnp.where, np.where, [((3,), (3,), (3,)), ((3, 1), (1, 4), ()),
                                       ((2, 3, 4), (3, 4), (2, 1, 1))], ['bool', (-2, 2), (-2, 2)],
        torch=lambda T, c, x, y: T.where(c, x, y)),
    # --- reductions ----------------------------------------------------------------------------
    reduction('sum', torch='sum'),
    reduction('mean', torch='mean'),
    reduction('prod', [{}, {'axis': 1}, {'axis': -1, 'keepdims': True}], (0.5, 1.5),
              torch='prod'),
    reduction('max', torch='amax'),
    reduction('min', torch='amin'),
    reduction('amax', torch='amax'),
    reduction('amin', torch='amin'),
    reduction('ptp', [{}, {'axis': 1}]),
    reduction('var', REDUCE_KW + [{'ddof': 1}, {'axis': 1, 'ddof': 1, 'keepdims': True}],
              torch='var', complex=True),
    reduction('std', REDUCE_KW + [{'ddof': 1}], torch='std'),
    reduction('cumsum', [{}, {'axis': 0}, {'axis': -1}], torch='cumsum'),
    reduction('cumprod', [{}, {'axis': 1}], (0.5, 1.5), torch='cumprod'),
    reduction('logsumexp', REDUCE_KW, ref=_np_logsumexp, torch='logsumexp', dispatch=False),
    reduction('average', [{}, {'axis': 1}], complex=True),
    Row('average_weights', lambda a, w: cnp.average(a, axis=1, weights=w),
        lambda a, w: np.average(a, axis=1, weights=w), [((2, 3), (3,)), ((2, 3), (2, 3))],
        [(-2.0, 2.0), (0.5, 1.5)]),
    reduction('nansum', torch='nansum'),
    reduction('nanmean', torch='nanmean'),
    reduction('median'),
    Row('quantile', cnp.quantile, np.quantile, REDUCE + [((3,),)],
        kwargs=[{'q': 0.3}, {'q': [0.25, 0.9], 'axis': 1},
                {'q': 0.5, 'axis': -1, 'keepdims': True}, {'q': 0.6, 'axis': (0, 2)}]),
    Row('percentile', cnp.percentile, np.percentile, REDUCE + [((3,),)],
        kwargs=[{'q': 30}, {'q': [10, 95], 'axis': 0}]),
    Row('trapezoid', cnp.trapezoid, np.trapezoid, [((3, 4),), ((5,),)],
        kwargs=[{}, {'dx': 0.5, 'axis': 0}]),
    Row('trapezoid_x', lambda y, x: cnp.trapezoid(y, x), lambda y, x: np.trapezoid(y, x),
        [((3, 4), (4,)), ((5,), (5,))]),
    # --- shapes --------------------------------------------------------------------------------
    Row('reshape', lambda x: cnp.reshape(x, (3, -1)), lambda x: np.reshape(x, (3, -1)),
        [((2, 3),), ((6, 1),)], torch=lambda T, x: x.reshape(3, -1)),
    Row('ravel', cnp.ravel, np.ravel, [((2, 3),), ((),)], torch='ravel'),
    Row('transpose', cnp.transpose, np.transpose, [((2, 3, 4),)],
        kwargs=[{}, {'axes': (1, 0, 2)}, {'axes': (-1, 0, 1)}]),
    Row('permute_dims', cnp.permute_dims, np.permute_dims, [((2, 3, 4),)],
        kwargs=[{'axes': (2, 0, 1)}]),
    Row('moveaxis', lambda x: cnp.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1),
        [((2, 3, 4),)], torch=lambda T, x: T.moveaxis(x, 0, -1)),
    Row('rollaxis', cnp.rollaxis, np.rollaxis, [((2, 3, 4),)],
        kwargs=[{'axis': 2}, {'axis': 0, 'start': 3}, {'axis': -1, 'start': 1}]),
    Row('swapaxes', lambda x: cnp.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2),
        [((2, 3, 4),)], torch=lambda T, x: T.swapaxes(x, 0, 2)),
    Row('squeeze', cnp.squeeze, np.squeeze, [((1, 3, 1),)], kwargs=[{}, {'axis': 0}]),
    Row('expand_dims', cnp.expand_dims, np.expand_dims, [((2, 3),)],
        kwargs=[{'axis': 0}, {'axis': -1}, {'axis': (0, 2)}]),
    Row('broadcast_to', lambda x: cnp.broadcast_to(x, (2, 3, 4)),
        lambda x: np.broadcast_to(x, (2, 3, 4)), [((3, 1),), ((),), ((4,),)]),
    Row('broadcast_arrays', cnp.broadcast_arrays, np.broadcast_arrays, [((3, 1), (1, 4))]),
    Row('concatenate', lambda x, y: cnp.concatenate([x, y], axis=1),
        lambda x, y: np.concatenate([x, y], axis=1), [((2, 3), (2, 1))],
        torch=lambda T, x, y: T.cat([x, y], 1)),
    Row('concat', lambda x, y: cnp.concat([x, y]), lambda x, y: np.concat([x, y]),
        [((2, 3), (1, 3))]),
    Row('stack', lambda x, y: cnp.stack([x, y], axis=1), lambda x, y: np.stack([x, y], axis=1),
        [((2, 3), (2, 3))], torch=lambda T, x, y: T.stack([x, y], 1)),
    Row('stack_scalars', lambda x, y: cnp.stack([x, y]), lambda x, y: np.stack([x, y]),
        [((), ())]),
    Row('hstack', lambda x, y: cnp.hstack([x, y]), lambda x, y: np.hstack([x, y]),
        [((2, 3), (2, 1)), ((3,), (2,)), ((), ())]),
    Row('vstack', lambda x, y: cnp.vstack([x, y]), lambda x, y: np.vstack([x, y]),
        [((2, 3), (1, 3)), ((3,), (3,))]),
    Row('row_stack', lambda x, y: cnp.row_stack([x, y]), lambda x, y: np.vstack([x, y]),
        [((3,), (3,))], dispatch=False),
    Row('dstack', lambda x, y: cnp.dstack([x, y]), lambda x, y: np.dstack([x, y]),
        [((2, 3), (2, 3))]),
    Row('column_stack', lambda x, y: cnp.column_stack([x, y]),
        lambda x, y: np.column_stack([x, y]), [((3,), (3, 2))]),
    Row('append', cnp.append, np.append, [((2, 3), (4,))]),
    Row('append_axis', lambda x, y: cnp.append(x, y, axis=0),
        lambda x, y: np.append(x, y, axis=0), [((2, 3), (1, 3))]),
    Row('split', lambda x: cnp.split(x, 3, axis=1), lambda x: np.split(x, 3, axis=1),
        [((2, 6),)]),
    Row('split_indices', lambda x: cnp.split(x, [1, 4]), lambda x: np.split(x, [1, 4]),
        [((5, 2),)]),
    Row('array_split', lambda x: cnp.array_split(x, 3), lambda x: np.array_split(x, 3),
        [((5,),)]),
    Row('hsplit', lambda x: cnp.hsplit(x, 2), lambda x: np.hsplit(x, 2), [((2, 4),)]),
    Row('vsplit', lambda x: cnp.vsplit(x, 2), lambda x: np.vsplit(x, 2), [((4, 2),)]),
    Row('dsplit', lambda x: cnp.dsplit(x, 2), lambda x: np.dsplit(x, 2), [((1, 2, 4),)]),
    Row('flip', cnp.flip, np.flip, [((2, 3),)], kwargs=[{}, {'axis': 1}]),
    Row('fliplr', cnp.fliplr, np.fliplr, [((2, 3),)]),
    Row('flipud', cnp.flipud, np.flipud, [((2, 3),)]),
    Row('rot90', cnp.rot90, np.rot90, [((2, 3),)], kwargs=[{}, {'k': 2}, {'k': 3}]),
    Row('roll', cnp.roll, np.roll, [((2, 3),)],
        kwargs=[{'shift': 1}, {'shift': -1, 'axis': 1}, {'shift': (1, 2), 'axis': (0, 1)}]),
    Row('tile', cnp.tile, np.tile, [((2, 3),), ((3,),)], kwargs=[{'reps': 2},
                                                                  {'reps': (2, 1, 2)}]),
    Row('repeat', cnp.repeat, np.repeat, [((2, 3),)],
        kwargs=[{'repeats': 2}, {'repeats': 2, 'axis': 1}, {'repeats': [1, 0, 2], 'axis': 1}]),
    Row('pad', cnp.pad, np.pad, [((2, 3),)],
        kwargs=[{'pad_width': 1}, {'pad_width': ((1, 0), (0, 2)), 'constant_values': 3.0},
                {'pad_width': 2, 'mode': 'edge'}, {'pad_width': 2, 'mode': 'reflect'},
                {'pad_width': 2, 'mode': 'symmetric'}, {'pad_width': 2, 'mode': 'wrap'}]),
    Row('diagonal', cnp.diagonal, np.diagonal, [((3, 4),), ((2, 3, 3),)],
        kwargs=[{}, {'offset': 1}, {'offset': -1, 'axis1': -1, 'axis2': -2}],
        torch=lambda T, x, **kw: T.diagonal(x, kw.get('offset', 0), kw.get('axis1', 0),
                                            kw.get('axis2', 1))),
    Row('diag', cnp.diag, np.diag, [((3,),), ((3, 4),)], kwargs=[{}, {'k': 1}, {'k': -1}],
        torch=lambda T, x, k=0: T.diag(x, k)),
    Row('diagflat', cnp.diagflat, np.diagflat, [((2, 2),)], kwargs=[{}, {'k': 1}]),
    Row('trace', cnp.trace, np.trace, [((3, 4),), ((3, 3, 2),)], kwargs=[{}, {'offset': 1}]),
    Row('tril', cnp.tril, np.tril, [((3, 4),), ((2, 3, 3),)], kwargs=[{}, {'k': -1}],
        torch=lambda T, x, k=0: T.tril(x, k)),
    Row('triu', cnp.triu, np.triu, [((3, 4),), ((2, 3, 3),)], kwargs=[{}, {'k': 1}],
        torch=lambda T, x, k=0: T.triu(x, k)),
    Row('atleast_1d', cnp.atleast_1d, np.atleast_1d, [((),), ((2,),)]),
    Row('atleast_2d', cnp.atleast_2d, np.atleast_2d, [((),), ((2,),), ((), (3,))]),
    Row('atleast_3d', cnp.atleast_3d, np.atleast_3d, [((),), ((2,),), ((2, 3),)]),
    # --- indexing ------------------------------------------------------------------------------
    *[Row('getitem_' + n, (lambda i: lambda x: x[i])(idx), (lambda i: lambda x: x[i])(idx),
          [((4, 3),)], dispatch=False) for n, idx in _IDX_ROWS],
    Row('take', cnp.take, np.take, [((3, 4),)],
        kwargs=[{'indices': [0, 2, 2]}, {'indices': [[1, 0], [3, 3]], 'axis': 1}]),
    Row('take_along_axis', lambda x: cnp.take_along_axis(x, np.array([[0, 2], [1, 1]]), 1),
        lambda x: np.take_along_axis(x, np.array([[0, 2], [1, 1]]), 1), [((2, 3),)],
        torch=lambda T, x: T.take_along_dim(x, T.tensor([[0, 2], [1, 1]]), 1)),
    Row('sort', cnp.sort, np.sort, [((5,),), ((3, 4),)], kwargs=[{}, {'axis': 0}],
        torch=lambda T, x, axis=-1: T.sort(x, dim=axis).values),
    Row('partition', cnp.partition, np.partition, [((6,),), ((3, 5),)],
        kwargs=[{'kth': 2}, {'kth': 1, 'axis': 0}, {'kth': (0, 3), 'axis': None}]),
    Row('at', lambda x, y: cnp.at(x)[1:3].set(y), _np_at_set, [((4,), ()), ((4, 2), (2, 2))],
        dispatch=False),
    Row('at_repeated_indices', lambda x, y: cnp.at(x)[[0, 2, 0]].set(y), _np_set_repeated,
        [((4,), (3,)), ((4, 2), (3, 2))], dispatch=False),
    Row('index_update', lambda x, y: cnp.index_update(x, slice(1, 3), y), _np_at_set,
        [((4,), (2,))], dispatch=False),
    Row('index_add', lambda x, y: cnp.index_add(x, [0, 2, 0], y), _np_at_add,
        [((4,), (3,)), ((4, 2), (3, 2))], dispatch=False),
    # --- products ------------------------------------------------------------------------------
    Row('matmul', cnp.matmul, np.matmul, [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 3), (3,)),
                                          ((2, 2, 3), (3, 4)), ((3,), (3,))],
        torch='matmul', complex=True),
    Row('dot', cnp.dot, np.dot, [((2, 3), (3, 4)), ((3,), (3,)), ((), (2,)),
                                 ((2, 2, 3), (3, 2))]),
    Row('vdot', cnp.vdot, np.vdot, [((3,), (3,)), ((2, 2), (4,))], complex=True),
    Row('inner', cnp.inner, np.inner, [((3,), (3,)), ((2, 3), (4, 3))], torch='inner'),
    Row('outer', cnp.outer, np.outer, [((3,), (4,)), ((2, 2), (3,))], torch='outer'),
    Row('tensordot', cnp.tensordot, np.tensordot, [((2, 3, 4), (3, 4, 2))],
        kwargs=[{}, {'axes': ([1], [0])}]),
    Row('tensordot_axes1', lambda a, b: cnp.tensordot(a, b, 1),
        lambda a, b: np.tensordot(a, b, 1), [((2, 3), (3, 4, 2))]),
    Row('kron', cnp.kron, np.kron, [((2, 2), (2, 3)), ((2,), (3,))], torch='kron'),
    Row('cross', cnp.cross, np.cross, [((3,), (3,)), ((2, 3), (3,))],
        torch=lambda T, x, y: T.linalg.cross(*T.broadcast_tensors(x, y))),
    # --- differences, polynomials, statistics ---------------------------------------------------
    Row('diff', cnp.diff, np.diff, [((5,),), ((3, 4),)], kwargs=[{}, {'n': 2}, {'axis': 0}],
        torch=lambda T, x, n=1, axis=-1: T.diff(x, n, axis)),
    Row('diff_prepend', lambda x: cnp.diff(x, prepend=0.5, append=x[:1]),
        lambda x: np.diff(x, prepend=0.5, append=x[:1]), [((4,),)], dispatch=False),
    Row('ediff1d', cnp.ediff1d, np.ediff1d, [((2, 3),)], kwargs=[{}, {'to_begin': [1.0]}]),
    Row('gradient', cnp.gradient, np.gradient, [((5,),), ((3, 4),)]),
    Row('gradient_spacing', lambda x: cnp.gradient(x, 0.5, axis=1),
        lambda x: np.gradient(x, 0.5, axis=1), [((3, 4),)]),
    Row('convolve', cnp.convolve, np.convolve, [((5,), (3,)), ((2,), (4,))],
        kwargs=[{}, {'mode': 'same'}, {'mode': 'valid'}]),
    Row('correlate', cnp.correlate, np.correlate, [((5,), (3,))],
        kwargs=[{}, {'mode': 'full'}]),
    Row('interp', lambda x, fp: cnp.interp(x, np.array([-2.0, 0.0, 1.0, 3.0]), fp),
        lambda x, fp: np.interp(x, np.array([-2.0, 0.0, 1.0, 3.0]), fp), [((5,), (4,))],
        [(-3.0, 4.0), (-1.0, 1.0)], dispatch=False),
    Row('polyval', cnp.polyval, np.polyval, [((3,), (4,)), ((4,), ())]),
    Row('cov', cnp.cov, np.cov, [((2, 5),), ((5,),)], kwargs=[{}, {'ddof': 0}]),
    Row('cov_rowvar', lambda x, y: cnp.cov(x, y, rowvar=False),
        lambda x, y: np.cov(x, y, rowvar=False), [((5, 2), (5, 1))]),
    Row('corrcoef', cnp.corrcoef, np.corrcoef, [((3, 5),)], torch='corrcoef'),
    # --- construction --------------------------------------------------------------------------
    Row('array', lambda x, y: cnp.array([x, 2 * y]), lambda x, y: np.array([x, 2 * y]),
        [((), ()), ((3,), (3,))], dispatch=False),
    Row('array_nested', lambda x, y: cnp.array([[x, y], [y, x]], dtype=None),
        lambda x, y: np.array([[x, y], [y, x]]), [((), ())], dispatch=False),
    Row('asarray', lambda x, y: cnp.asarray([x, y]), lambda x, y: np.asarray([x, y]),
        [((2,), (2,))], dispatch=False),
    Row('full', lambda v: cnp.full((2, 3), v), lambda v: np.full((2, 3), v), [((),), ((3,),)],
        dispatch=False),
    Row('linspace', lambda a, b: cnp.linspace(a, b, 5), lambda a, b: np.linspace(a, b, 5),
        [((), ()), ((2,), ())], dispatch=False),
    Row('linspace_kwargs', lambda a, b: cnp.linspace(a, b, 4, endpoint=False, axis=-1),
        lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=-1), [((2,), (3, 1))],
        dispatch=False),
    Row('linspace_retstep', lambda a, b: cnp.linspace(a, b, 6, retstep=True),
        lambda a, b: np.linspace(a, b, 6, retstep=True), [((), ())], dispatch=False),
    Row('full_like', lambda x, v: cnp.full_like(x, v), lambda x, v: np.full_like(x, v),
        [((2, 3), ())], dispatch=False),
    # --- not differentiable: integer or boolean results, or constants ------------------------
    nondiff('argmax', [((3, 4),)], kwargs=[{}, {'axis': 1}]),
    nondiff('argmin', [((3, 4),)], kwargs=[{}, {'axis': 0}]),
    nondiff('argsort', [((3, 4),)]),
    nondiff('argwhere', [((3, 4),)]),
    nondiff('nonzero', [((3, 4),)], domain=['int']),
    nondiff('flatnonzero', [((3, 4),)], domain=['int']),
    nondiff('count_nonzero', [((3, 4),)], domain=['int']),
    nondiff('all', [((3, 4),)], domain=['bool'], kwargs=[{}, {'axis': 0}]),
    nondiff('any', [((3, 4),)], domain=['bool']),
    nondiff('searchsorted', [((5,), (3,))], ref=lambda a, v: np.searchsorted(np.sort(a), v),
            dispatch=False),
    nondiff('unique', [((6,),)], domain=['int']),
    nondiff('digitize', [((5,), (3,))], ref=lambda x, b: np.digitize(x, np.sort(b)),
            dispatch=False),
    nondiff('bincount', [((6,),)], domain=['int']),
    nondiff('isin', [((6,), (3,))], domain=['int', 'int']),
    nondiff('isclose', BINARY[:2]),
    nondiff('allclose', [((3,), (3,))]),
    nondiff('array_equal', [((3,), (3,))]),
    nondiff('zeros_like', [((2, 3),)]), nondiff('ones_like', [((2, 3),)]),
    nondiff('histogram', [((10,),)], ref=lambda x: np.histogram(x, bins=3)),
    nondiff('shape', [((2, 3),)]), nondiff('ndim', [((2, 3),)]), nondiff('size', [((2, 3),)]),
    nondiff('result_type', [((2,),)]),
    nondiff('iscomplexobj', [((2,),)]), nondiff('isrealobj', [((2,),)]),
]

# searchsorted/digitize need a sorted first argument: sort inside the chainrule call too
for _r in ROWS:
    if _r.name == 'searchsorted':
        _r.fn = lambda a, v: cnp.searchsorted(cnp.sort(a), v)
    elif _r.name == 'digitize':
        _r.fn = lambda x, b: cnp.digitize(x, cnp.sort(b))
    elif _r.name == 'histogram':
        _r.fn = lambda x: cnp.histogram(x, bins=3)

# Public names of chainrule.numpy with no row here, each with the reason.
NOT_TESTED_HERE = {
    'linalg': 'tests/test_linalg.py', 'fft': 'tests/test_fft.py', 'einsum': 'tests/test_einsum.py',
    # NumPy's own functions, re-exported (constants: nothing to differentiate)
    **dict.fromkeys(['arange', 'empty', 'eye', 'geomspace', 'identity', 'indices',
                     'logspace', 'ones', 'tri', 'zeros', 'seterr', 'geterr', 'seterrcall',
                     'geterrcall'], 'numpy itself, re-exported'),
    'meshgrid': 'tests/test_review.py (returns a tuple of grids)',
    'empty_like': 'uninitialised contents in NumPy (values cannot be compared)',
    # internal helpers that happen to be public names
    'concrete': 'helper', 'dtype_of': 'helper', 'shape_of': 'helper',
}
