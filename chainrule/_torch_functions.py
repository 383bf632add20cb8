"""PyTorch's top-level functions on `chainrule`: `cr.exp(t)`, `cr.sum(t, dim=1)`,
`cr.softmax(t, dim=-1)`, `cr.where(c, x, y)`, `cr.topk(t, 2)`, `cr.einsum(...)`, ...

Most of PyTorch's top-level functions are its Tensor methods under another spelling:
`torch.NAME(input, *args, **kwargs)` is `input.NAME(*args, **kwargs)`. `METHOD_FUNCTIONS` lists
those names, and each becomes a function here that calls the method of `Tensor` (PyTorch's
face, `chainrule/_torch_face.py` and `chainrule/_torch_methods.py`), so the two spellings can
never disagree. A function also takes what is not a Tensor:

- a traced value (inside `cr.grad`, `cr.vmap`, `cr.jit`, where the inputs are tracers): it is
  wrapped in a Tensor for the call and the result handed back as traced values, so the same
  PyTorch-style code runs eagerly and under the transforms;
- a NumPy array or a number: it becomes a Tensor (PyTorch would refuse; `torch.as_tensor`).

PyTorch's `out=` argument (write into a preallocated tensor) is refused with an error that says
to assign the result. The remaining functions, which are not methods (`einsum`, `meshgrid`,
`from_numpy`, `randn_like`, `get_default_dtype`, `inference_mode`, ...), are written out below.
"""

import builtins
import contextvars

import numpy as np

from chainrule._args import ArgumentError
from chainrule.core import DTypeError, ShapeError, Tracer
from chainrule.tensor import Tensor, set_grad_enabled
from chainrule import _torch_methods  # noqa: F401  (installs the methods)
from chainrule._torch_methods import device

# torch.NAME(input, ...) == input.NAME(...): PyTorch's top-level functions that are Tensor
# methods with the same meaning (checked against PyTorch in tests/test_torch_api.py)
METHOD_FUNCTIONS = (
    'abs abs_ absolute acos acos_ acosh acosh_ add addbmm addcdiv addcmul addmm addmv addmv_ '
    'addr adjoint all allclose amax amin aminmax any arccos arccos_ arccosh arccosh_ arcsin '
    'arcsin_ arcsinh arcsinh_ arctan arctan2 arctan_ arctanh arctanh_ argmax argmin argsort '
    'argwhere asin asin_ asinh asinh_ atan atan2 atan_ atanh atanh_ baddbmm bernoulli bincount '
    'bitwise_and bitwise_left_shift bitwise_not bitwise_or bitwise_right_shift bitwise_xor bmm '
    'broadcast_to ceil ceil_ cholesky cholesky_inverse cholesky_solve chunk clamp clamp_ '
    'clamp_max clamp_max_ clamp_min clamp_min_ clip clip_ clone conj conj_physical '
    'conj_physical_ copysign corrcoef cos cos_ cosh cosh_ count_nonzero cov cross cummax cummin '
    'cumprod cumsum deg2rad deg2rad_ det detach diag diag_embed diagflat diagonal diff digamma '
    'dist div divide dot dsplit eq equal erf erfc erfc_ erfinv exp exp2 exp2_ exp_ expm1 expm1_ '
    'fill_ fix fix_ flatten flip fliplr flipud float_power floor floor_ floor_divide fmax fmin '
    'fmod frac frac_ frexp gather gcd gcd_ ge ger greater greater_equal gt hardshrink '
    'heaviside histc hsplit hypot i0 i0_ igamma igammac imag index_add index_copy index_fill '
    'index_put index_put_ index_select inner inverse is_complex is_conj is_floating_point '
    'is_inference is_neg is_nonzero is_same_size is_signed isclose isfinite isinf isnan '
    'isneginf isposinf isreal kron kthvalue lcm lcm_ ldexp ldexp_ le lerp less less_equal '
    'lgamma log log10 log10_ log1p log1p_ log2 log2_ log_ log_softmax logaddexp logaddexp2 '
    'logcumsumexp logdet logical_and logical_not logical_or logical_xor logit logit_ logsumexp '
    'lt masked_fill masked_scatter masked_select matmul matrix_exp matrix_power max maximum '
    'mean median min minimum mm mode moveaxis movedim msort mul multinomial multiply mv '
    'mvlgamma nan_to_num nan_to_num_ nanmean nanmedian nanquantile nansum narrow ne neg neg_ '
    'negative nextafter nonzero norm not_equal numel outer permute pinverse positive pow prod '
    'qr quantile rad2deg rad2deg_ ravel real reciprocal reciprocal_ relu relu_ remainder renorm '
    'repeat_interleave reshape resolve_conj resolve_neg roll rot90 round rsqrt rsqrt_ scatter '
    'scatter_add scatter_reduce select sgn sigmoid sigmoid_ sign signbit sin sin_ sinc sinc_ '
    'sinh sinh_ slogdet softmax sort split split_with_sizes sqrt sqrt_ square square_ squeeze '
    'std sub subtract sum svd swapaxes swapdims t take take_along_dim tan tan_ tanh tanh_ '
    'tensor_split tile topk trace transpose triangular_solve tril triu true_divide trunc '
    'trunc_ unbind unflatten unique unique_consecutive unsqueeze var vdot vsplit xlogy xlogy_ '
    'zero_ angle erf_ negative_ round_ narrow_copy unsafe_chunk unsafe_split '
    'unsafe_split_with_sizes select_scatter slice_scatter diagonal_scatter prelu histogram '
    'get_device nonzero_static').split()

# attributes, not methods, on Tensor (torch.real(t) is t.real)
_PROPERTIES = {'real', 'imag'}


def _as_tensor(x, op):
    """(Tensor, whether to hand traced values back)."""
    if isinstance(x, Tensor):
        return x, False
    if isinstance(x, Tracer):
        return Tensor._wrap(x, None), True
    if isinstance(x, (list, tuple)):
        raise ArgumentError(f'{op}(): input must be a Tensor, got a {type(x).__name__} (make one '
                        f'with cr.tensor(...); for several tensors see cr.stack / cr.cat)')
    return Tensor(np.asarray(x)), False


def _unwrap(r):
    if isinstance(r, Tensor):
        return r.data
    if isinstance(r, tuple):
        vals = [_unwrap(v) for v in r]
        return type(r)(*vals) if hasattr(r, '_fields') else tuple(vals)
    if isinstance(r, list):
        return [_unwrap(v) for v in r]
    return r


def refuse_out(op, out):
    if out is not None:
        raise ArgumentError(f'{op}(): out= is not supported (chainrule does not write into '
                            f'preallocated tensors); assign the result instead: '
                            f'`y = cr.{op}(...)`')


def _method_function(name):
    def fn(input, *args, out=None, **kwargs):
        refuse_out(name, out)
        t, traced = _as_tensor(input, name)
        if name in _PROPERTIES:
            if args or kwargs:
                raise ArgumentError(f'{name}(): takes only the input, got {len(args)} more '
                                    f'argument(s) {", ".join(map(repr, kwargs))}')
            r = getattr(t, name)
        else:
            r = getattr(t, name)(*args, **kwargs)
        return _unwrap(r) if traced else r
    fn.__name__ = fn.__qualname__ = name
    meth = getattr(Tensor, name, None)
    doc = (getattr(meth, '__doc__', None) or '').strip().split('\n\n')[0]
    if not doc or doc.startswith(('Built-in', 'Return ', 'str(')) or isinstance(meth, property):
        doc = ''
    call = f'input.{name}' if name in _PROPERTIES else f'input.{name}(...)'
    fn.__doc__ = f'`{call}`' + (f': {" ".join(doc.split())}' if doc else '.')
    return fn


def _traced_call(op, fn, *arrays):
    """`fn(*tensors)` with any traced (non-Tensor) argument wrapped for the call, and the
    result handed back traced when some argument was."""
    ts, traced = [], False
    for a in arrays:
        if isinstance(a, Tracer) and not isinstance(a, Tensor):
            ts.append(Tensor._wrap(a, None))
            traced = True
        else:
            ts.append(a)
    r = fn(*ts)
    return _unwrap(r) if traced else r


# --- functions whose top-level spelling differs from the method's ---------------------------

def where(condition, input=None, other=None, *, out=None):
    """`where(condition, input, other)`: input where condition holds, else other;
    `where(condition)`: `nonzero(condition, as_tuple=True)`."""
    refuse_out('where', out)
    import chainrule.numpy as cnp
    if input is None and other is None:
        c, traced = _as_tensor(condition, 'where')
        return c.nonzero(as_tuple=True)
    if input is None or other is None:
        raise ArgumentError('where(): give both input and other (or neither)')
    c = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(c, Tracer) and np.asarray(c).dtype != np.bool_:
        raise DTypeError(f'where(): condition must be a bool Tensor, got dtype '
                        f'{np.asarray(c).dtype}')
    return cnp.where(c, input, other)


def polygamma(n, input, *, out=None):
    refuse_out('polygamma', out)
    return _traced_call('polygamma', lambda t: t.polygamma(n), input)


def einsum(equation, *operands):
    """`einsum('ij,jk->ik', a, b)` (operands also as one list, as PyTorch allows)."""
    import chainrule.numpy as cnp
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return cnp.einsum(equation, *operands)


def tensordot(a, b, dims=2, out=None):
    refuse_out('tensordot', out)
    import chainrule.numpy as cnp
    if isinstance(dims, (list, tuple)) and len(dims) == 2 and \
            builtins.all(isinstance(d, (list, tuple)) for d in dims):
        dims = (list(dims[0]), list(dims[1]))
    return cnp.tensordot(a, b, axes=dims)


def meshgrid(*tensors, indexing='ij'):
    """PyTorch's `meshgrid`: `indexing='ij'` by default (NumPy's is 'xy')."""
    import chainrule.numpy as cnp
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ('ij', 'xy'):
        raise ArgumentError(f"meshgrid(): indexing must be 'ij' or 'xy', got {indexing!r}")
    return tuple(cnp.meshgrid(*tensors, indexing=indexing))


def _broadcast_shape(op, shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(f'{op}(): shapes {", ".join(map(str, shapes))} do not broadcast (each '
                         'trailing dimension equal, or 1 in one of them): reshape or unsqueeze '
                         'one of them') from None


def broadcast_tensors(*tensors):
    shape = _broadcast_shape('broadcast_tensors', [tuple(t.shape) for t in tensors])
    return tuple(t if tuple(t.shape) == shape else t.broadcast_to(shape)
                 if isinstance(t, Tensor) else _traced_call('broadcast_tensors',
                                                             lambda x: x.broadcast_to(shape), t)
                 for t in tensors)


def broadcast_shapes(*shapes):
    return tuple(_broadcast_shape('broadcast_shapes', [
        tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in shapes]))


def block_diag(*tensors):
    """The tensors (0-, 1- or 2-D) as the blocks of a block-diagonal matrix."""
    import chainrule.numpy as cnp
    from chainrule import ops
    mats = []
    for t in tensors:
        nd = len(t.shape)
        if nd > 2:
            raise ShapeError(f'block_diag(): inputs must have at most 2 dimensions, got shape '
                             f'{tuple(t.shape)}')
        mats.append(ops.reshape(t, (1, -1) if nd == 1 else (1, 1)) if nd < 2 else t)
    cols = builtins.sum(m.shape[1] for m in mats)
    dtype = np.result_type(*(m.dtype for m in mats)) if mats else np.float64
    rows, left = [], 0
    for m in mats:
        r, c = m.shape
        parts = [np.zeros((r, left), dtype), ops.astype(m, dtype) if m.dtype != dtype else m,
                 np.zeros((r, cols - left - c), dtype)]
        rows.append(cnp.concatenate(parts, axis=1))
        left += c
    return cnp.concatenate(rows, axis=0) if rows else Tensor(np.zeros((0, 0)))


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise p-norm distances between the rows of x1 `(..., P, M)` and x2 `(..., R, M)`."""
    from chainrule import ops
    import chainrule.numpy as cnp
    if len(x1.shape) < 2 or len(x2.shape) < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f'cdist(): x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must be '
                         '(..., P, M) and (..., R, M)')
    d = ops.abs(cnp.expand_dims(x1, -2) - cnp.expand_dims(x2, -3))
    if p == 2:
        return ops.sqrt(cnp.sum(d * d, axis=-1))
    if p == float('inf'):
        return cnp.amax(d, axis=-1)
    if p == 0:
        return cnp.sum(ops.astype(ops.not_equal(d, 0), d.dtype), axis=-1)
    if p == 1:
        return cnp.sum(d, axis=-1)
    return cnp.sum(d ** p, axis=-1) ** (1.0 / p)


def _numpy_stack(name):
    def fn(tensors, *, out=None):
        refuse_out(name, out)
        import chainrule.numpy as cnp
        return getattr(cnp, name)(list(tensors))
    fn.__name__ = fn.__qualname__ = name
    return fn


hstack, vstack, dstack, column_stack = (_numpy_stack(n) for n in
                                        ('hstack', 'vstack', 'dstack', 'column_stack'))
row_stack = vstack


def _atleast(n):
    def fn(*tensors):
        import chainrule.numpy as cnp
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            tensors = tuple(tensors[0])
        f = getattr(cnp, f'atleast_{n}d')
        out = tuple(f(t) for t in tensors)
        return out[0] if len(out) == 1 else out
    fn.__name__ = fn.__qualname__ = f'atleast_{n}d'
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def cartesian_prod(*tensors):
    import chainrule.numpy as cnp
    grids = meshgrid(*tensors, indexing='ij')
    if len(grids) == 1:
        return tensors[0]
    return cnp.stack([g.reshape(-1) for g in grids], axis=1)


def _tri_indices(fn):
    def indices(row, col, offset=0, *, dtype=np.int64):
        r, c = fn(row, offset, col)
        return Tensor(np.stack([r, c]).astype(dtype))
    indices.__name__ = fn.__name__
    return indices


tril_indices, triu_indices = _tri_indices(np.tril_indices), _tri_indices(np.triu_indices)


def trapezoid(y, x=None, *, dx=None, dim=-1):
    """PyTorch's `trapezoid(y, x=None, *, dx=None, dim=-1)`."""
    import chainrule.numpy as cnp
    return cnp.trapezoid(y, x=x, dx=1.0 if dx is None else dx, axis=dim)


trapz = trapezoid


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    import chainrule.numpy as cnp
    n = len(y.shape)
    d = dim % n
    sl = lambda a, b: (slice(None),) * d + (slice(a, b),)    # noqa: E731
    mids = (y[sl(1, None)] + y[sl(None, -1)]) / 2
    if x is None:
        return cnp.cumsum(mids * (1.0 if dx is None else dx), axis=d)
    dxs = cnp.diff(x, axis=-1 if len(x.shape) == 1 else d)
    if len(x.shape) == 1 and n > 1:
        dxs = dxs.reshape((-1,) + (1,) * (n - 1 - d))
    return cnp.cumsum(mids * dxs, axis=d)


def searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None,
                 sorter=None, out=None):
    refuse_out('searchsorted', out)
    s = np.asarray(sorted_sequence.data if isinstance(sorted_sequence, Tensor)
                   else sorted_sequence)
    v = np.asarray(values.data if isinstance(values, Tensor) else values)
    side = side or ('right' if right else 'left')
    if s.ndim <= 1:
        r = np.searchsorted(s, v, side=side, sorter=sorter)
    else:
        r = np.stack([np.searchsorted(a, b, side=side) for a, b in
                      zip(s.reshape(-1, s.shape[-1]), v.reshape(-1, v.shape[-1]))]
                     ).reshape(v.shape)
    return Tensor(np.asarray(r).astype(np.int32 if out_int32 else np.int64))


def bucketize(input, boundaries, *, out_int32=False, right=False, out=None):
    return searchsorted(boundaries, input, out_int32=out_int32, right=right, out=out)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def from_numpy(ndarray):
    """A Tensor sharing memory with `ndarray` (writes through either are seen by the other)."""
    if not isinstance(ndarray, np.ndarray):
        raise ArgumentError(f'from_numpy(): expected a numpy.ndarray, got '
                        f'{type(ndarray).__name__}')
    return Tensor(ndarray)


def as_tensor(data, dtype=None, device=None):
    _torch_methods.check_device(device, 'as_tensor()')
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else data.to(dtype)
    if isinstance(data, np.ndarray):
        return Tensor(data, dtype=dtype)
    from chainrule.factories import _default_for
    return Tensor(np.asarray(data, dtype=dtype if dtype is not None else _default_for(data)))


def scalar_tensor(s, *, dtype=None, requires_grad=False):
    from chainrule.factories import get_default_dtype
    return Tensor(np.asarray(s, dtype or get_default_dtype()), requires_grad=requires_grad)


def complex(real, imag, *, out=None):
    refuse_out('complex', out)
    return real + 1j * imag


def polar(abs, angle, *, out=None):
    refuse_out('polar', out)
    return abs * angle.cos() + 1j * (abs * angle.sin())


def std_mean(input, dim=None, *, correction=1, keepdim=False):
    return input.std(dim, correction=correction, keepdim=keepdim), \
        input.mean(dim, keepdim=keepdim) if dim is not None else input.mean()


def var_mean(input, dim=None, *, correction=1, keepdim=False):
    return input.var(dim, correction=correction, keepdim=keepdim), \
        input.mean(dim, keepdim=keepdim) if dim is not None else input.mean()


def chain_matmul(*matrices):
    import chainrule.numpy as cnp
    return cnp.linalg.multi_dot(list(matrices))


def result_type(tensor1, tensor2):
    return np.result_type(getattr(tensor1, 'dtype', tensor1), getattr(tensor2, 'dtype', tensor2))


def promote_types(type1, type2):
    return np.promote_types(type1, type2)


def can_cast(from_, to):
    return np.can_cast(from_, to)


# --- inference_mode -------------------------------------------------------------------------------

_inference = contextvars.ContextVar('chainrule_inference_mode', default=False)


class inference_mode(set_grad_enabled):
    """PyTorch's `inference_mode(mode=True)`: here the same as `no_grad()` (nothing recorded)
    while it is on; a context manager and a decorator (`@cr.inference_mode()`)."""

    def __init__(self, mode=True):
        super().__init__(not mode)
        self._inf = bool(mode)
        self._itokens = []

    def __enter__(self):
        self._itokens.append(_inference.set(self._inf))
        return super().__enter__()

    def __exit__(self, *exc):
        _inference.reset(self._itokens.pop())
        return super().__exit__(*exc)

    def __call__(self, fn):
        import functools
        mode = self._inf

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper


def is_inference_mode_enabled():
    return _inference.get()


# --- the namespace --------------------------------------------------------------------------------

_SPECIAL = {
    'where': where, 'polygamma': polygamma, 'einsum': einsum, 'tensordot': tensordot,
    'meshgrid': meshgrid, 'broadcast_tensors': broadcast_tensors,
    'broadcast_shapes': broadcast_shapes, 'block_diag': block_diag, 'cdist': cdist,
    'hstack': hstack, 'vstack': vstack, 'dstack': dstack, 'column_stack': column_stack,
    'row_stack': row_stack, 'atleast_1d': atleast_1d, 'atleast_2d': atleast_2d,
    'atleast_3d': atleast_3d, 'cartesian_prod': cartesian_prod, 'tril_indices': tril_indices,
    'triu_indices': triu_indices, 'trapezoid': trapezoid, 'trapz': trapz,
    'cumulative_trapezoid': cumulative_trapezoid, 'searchsorted': searchsorted,
    'bucketize': bucketize, 'is_tensor': is_tensor, 'from_numpy': from_numpy,
    'as_tensor': as_tensor, 'scalar_tensor': scalar_tensor, 'complex': complex, 'polar': polar,
    'std_mean': std_mean, 'var_mean': var_mean, 'chain_matmul': chain_matmul,
    'result_type': result_type, 'promote_types': promote_types, 'can_cast': can_cast,
    'inference_mode': inference_mode, 'is_inference_mode_enabled': is_inference_mode_enabled,
    'device': device,
}

FUNCTIONS = {name: _method_function(name) for name in METHOD_FUNCTIONS}
FUNCTIONS.update(_SPECIAL)
globals().update({k: v for k, v in FUNCTIONS.items() if k not in globals()})

__all__ = sorted(FUNCTIONS)
