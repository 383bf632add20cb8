"""The table that drives tests/test_torch_api.py: for each PyTorch name chainrule's `Tensor`
method face and top-level functions define, the inputs to call it with (one or more cases).

An argument is a marker below (made into an array of the dtype under test, the same values for
chainrule and PyTorch) or a plain Python value passed as it is. Floating array arguments
require grad when the case is differentiable (`grad=True`, the default), and the gradients of
`sum(out * w)` (random `w`) are compared with PyTorch's.
"""

import numpy as np


class N:
    """A normal random float array of `shape`."""
    def __init__(self, *shape):
        self.shape = shape

    def make(self, rng, dtype):
        return rng.standard_normal(self.shape).astype(dtype)


class G(N):
    """Uniform in [lo, hi]."""
    def __init__(self, shape, lo, hi):
        self.shape, self.lo, self.hi = shape, lo, hi

    def make(self, rng, dtype):
        return rng.uniform(self.lo, self.hi, self.shape).astype(dtype)


def P(*shape):
    return G(shape, 0.5, 2.0)


def U(*shape):
    return G(shape, 0.05, 0.95)


class I(N):      # noqa: E742  (an integer array)
    def __init__(self, shape, lo, hi=None, values=None):
        self.shape, self.lo, self.hi, self.values = shape, lo, hi, values

    def make(self, rng, dtype):
        if self.values is not None:
            return np.asarray(self.values, np.int64)
        return rng.integers(self.lo, self.hi, self.shape).astype(np.int64)


def Ix(*values):
    """These integer values (an index)."""
    return I(None, 0, values=list(values))


class B(N):
    def make(self, rng, dtype):
        return rng.random(self.shape) < 0.5


class Mask(N):
    """A fixed boolean mask."""
    def __init__(self, values):
        self.values = values

    def make(self, rng, dtype):
        return np.asarray(self.values, bool)


class SPD(N):
    """A symmetric positive definite (batch of) matrix."""
    def __init__(self, *shape):
        self.shape = shape

    def make(self, rng, dtype):
        a = rng.standard_normal(self.shape)
        n = self.shape[-1]
        return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(dtype)


class W(N):
    """A well-conditioned square (batch of) matrix."""
    def make(self, rng, dtype):
        n = self.shape[-1]
        return (rng.standard_normal(self.shape) + 3 * np.eye(n)).astype(dtype)


class Tri(N):
    """A lower (upper) triangular matrix with a positive diagonal."""
    def __init__(self, n, upper=False):
        self.shape, self.upper = (n, n), upper

    def make(self, rng, dtype):
        a = np.tril(rng.standard_normal(self.shape)) + 2 * np.eye(self.shape[0])
        return (a.T if self.upper else a).astype(dtype)


class WithNan(N):
    """Normal values with a nan and infinities in them."""
    def make(self, rng, dtype):
        a = rng.standard_normal(self.shape).astype(dtype)
        a.flat[0], a.flat[-1] = np.nan, np.inf
        if a.size > 3:
            a.flat[2] = -np.inf
        return a


class Rep(N):
    """Small integers as floats, with repeats (for mode, unique)."""
    def make(self, rng, dtype):
        return rng.integers(0, 4, self.shape).astype(dtype)


class S:
    """One case: `args`, `kwargs`; `grad` whether to compare gradients; `outs` the indices of a
    tuple result to compare (others are sign- or order-ambiguous); `call` a function
    `call(lib, *args, **kwargs)` for the top-level spelling when its argument order is not the
    method's; `tol` (rtol for float64, rtol for float32)."""

    def __init__(self, *args, grad=True, outs=None, call=None, tol=None, f32=True,
                 method=True, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.grad, self.outs, self.call, self.tol = grad, outs, call, tol
        self.f32, self.method = f32, method


A, BATCH = (3, 4), (2, 3, 4)

_unary = lambda arg=N(*A), **kw: [S(arg, **kw), S(N(*BATCH) if isinstance(arg, N) and  # noqa
                                                      type(arg) is N else arg, **kw)]


def _binary(a=N(*A), b=N(*A), b2=N(4), scalar=0.7, **kw):
    return [S(a, b, **kw), S(a, b2, **kw), S(a, scalar, **kw)]


def _cmp():
    return [S(N(*A), N(*A), grad=False), S(N(*A), N(4), grad=False), S(N(*A), 0.1, grad=False)]


TABLE = {
    # --- elementwise, one argument
    'abs': _unary(), 'absolute': _unary(), 'neg': _unary(), 'negative': _unary(),
    'positive': _unary(),
    'acos': _unary(G(A, -0.9, 0.9)), 'arccos': _unary(G(A, -0.9, 0.9)),
    'asin': _unary(G(A, -0.9, 0.9)), 'arcsin': _unary(G(A, -0.9, 0.9)),
    'atan': _unary(), 'arctan': _unary(), 'acosh': _unary(G(A, 1.2, 3)),
    'arccosh': _unary(G(A, 1.2, 3)), 'asinh': _unary(), 'arcsinh': _unary(),
    'atanh': _unary(G(A, -0.9, 0.9)), 'arctanh': _unary(G(A, -0.9, 0.9)),
    'cos': _unary(), 'sin': _unary(), 'tan': _unary(G(A, -1.2, 1.2)), 'cosh': _unary(),
    'sinh': _unary(), 'tanh': _unary(), 'sigmoid': _unary(), 'relu': _unary(),
    'exp': _unary(), 'exp2': _unary(), 'expm1': _unary(), 'log': _unary(P(*A)),
    'log2': _unary(P(*A)), 'log10': _unary(P(*A)), 'log1p': _unary(P(*A)),
    'sqrt': _unary(P(*A)), 'rsqrt': _unary(P(*A)), 'reciprocal': _unary(P(*A)),
    'square': _unary(), 'erf': _unary(), 'erfc': _unary(), 'erfinv': _unary(G(A, -0.9, 0.9)),
    'lgamma': _unary(P(*A)), 'digamma': _unary(P(*A)), 'i0': _unary(),
    'sinc': _unary(), 'deg2rad': _unary(), 'rad2deg': _unary(),
    'floor': _unary(), 'ceil': _unary(), 'trunc': _unary(), 'fix': _unary(),
    'frac': _unary(), 'round': _unary() + [S(N(*A), decimals=1, grad=False)],
    'sign': _unary(), 'sgn': _unary(),
    'logit': _unary(U(*A)) + [S(G(A, 0.0, 1.0), eps=0.1)],
    'nan_to_num': [S(WithNan(*A), grad=False), S(WithNan(*A), nan=1.0, posinf=9.0,
                                                   neginf=-9.0, grad=False), S(N(*A))],
    'hardshrink': [S(N(*A)), S(N(*A), 0.3)],
    'conj_physical': _unary(), 'resolve_conj': _unary(), 'resolve_neg': _unary(),
    'conj': _unary(),
    'isnan': [S(WithNan(*A), grad=False)], 'isfinite': [S(WithNan(*A), grad=False)],
    'isinf': [S(WithNan(*A), grad=False)], 'isposinf': [S(WithNan(*A), grad=False)],
    'isneginf': [S(WithNan(*A), grad=False)], 'isreal': [S(N(*A), grad=False)],
    'signbit': [S(N(*A), grad=False)],
    'logical_not': [S(B(*A), grad=False), S(N(*A), grad=False)],
    'bitwise_not': [S(I(A, -5, 5), grad=False)],
    # --- elementwise, two arguments
    'add': _binary() + [S(N(*A), N(*A), alpha=2.0), S(N(2, 1, 4), N(*A))],
    'sub': _binary() + [S(N(*A), N(4), alpha=-0.5)], 'subtract': _binary(),
    'mul': _binary(), 'multiply': _binary(),
    'div': _binary(b=P(*A), b2=P(4)) + [S(N(*A), P(*A), rounding_mode='trunc', grad=False),
                                         S(N(*A), P(4), rounding_mode='floor', grad=False)],
    'divide': _binary(b=P(*A), b2=P(4)), 'true_divide': _binary(b=P(*A), b2=P(4)),
    'floor_divide': [S(N(*A), P(*A), grad=False), S(N(*A), 0.3, grad=False)],
    'remainder': _binary(b=P(*A), b2=P(4)) + [S(N(*A), -0.7)],
    'fmod': _binary(b=P(*A), b2=P(4)) + [S(N(*A), -0.7)],
    'eq': _cmp(), 'ne': _cmp(), 'not_equal': _cmp(), 'gt': _cmp(), 'greater': _cmp(),
    'ge': _cmp(), 'greater_equal': _cmp(), 'lt': _cmp(), 'less': _cmp(), 'le': _cmp(),
    'less_equal': _cmp(),
    'maximum': [S(N(*A), N(*A)), S(N(*A), N(4))], 'minimum': [S(N(*A), N(*A)), S(N(*A), N(4))],
    'fmax': [S(N(*A), N(*A)), S(WithNan(*A), N(*A), grad=False)],
    'fmin': [S(N(*A), N(*A)), S(WithNan(*A), N(*A), grad=False)],
    'atan2': [S(N(*A), N(*A)), S(N(*A), N(4))], 'arctan2': [S(N(*A), N(*A))],
    'hypot': [S(N(*A), N(*A)), S(N(*A), N(4))],
    'logaddexp': [S(N(*A), N(*A)), S(N(*A), N(4))], 'logaddexp2': [S(N(*A), N(*A))],
    'xlogy': [S(N(*A), P(*A)), S(N(*A), P(4)), S(N(*A), 2.0)],
    'copysign': [S(N(*A), N(*A)), S(N(*A), N(4)), S(N(*A), -1.0)],
    'heaviside': [S(N(*A), N(*A), grad=False)],
    'float_power': [S(P(*A), N(*A)), S(P(*A), 2.5), S(P(*A), 2)],
    # (PyTorch's gradient of ldexp is 0 where the exponent is negative, 2**e is right: the
    # gradient is compared for non-negative exponents)
    'ldexp': [S(N(*A), I(A, 0, 3)), S(N(*A), I(A, -3, 3), grad=False)],
    'igamma': [S(P(*A), P(*A), grad=False)], 'igammac': [S(P(*A), P(*A), grad=False)],
    'logical_and': [S(B(*A), B(*A), grad=False), S(N(*A), N(4), grad=False)],
    'logical_or': [S(B(*A), B(*A), grad=False)], 'logical_xor': [S(B(*A), B(*A), grad=False)],
    'bitwise_and': [S(I(A, 0, 16), I(A, 0, 16), grad=False), S(B(*A), B(*A), grad=False)],
    'bitwise_or': [S(I(A, 0, 16), I(A, 0, 16), grad=False)],
    'bitwise_xor': [S(I(A, 0, 16), I(A, 0, 16), grad=False)],
    'bitwise_left_shift': [S(I(A, 0, 16), I(A, 0, 3), grad=False)],
    'bitwise_right_shift': [S(I(A, 0, 16), I(A, 0, 3), grad=False)],
    'gcd': [S(I(A, 1, 30), I(A, 1, 30), grad=False)],
    'lcm': [S(I(A, 1, 30), I(A, 1, 30), grad=False)],
    'nextafter': [S(N(*A), N(*A), grad=False)],
    'pow': [S(P(*A), N(*A)), S(N(*A), 2.0), S(P(*A), N(4))],
    # --- several arguments
    'lerp': [S(N(*A), N(*A), 0.3), S(N(*A), N(4), U(*A)), S(N(*A), N(*A), U(4))],
    'addcmul': [S(N(*A), N(*A), N(4)), S(N(*A), N(*A), N(*A), value=0.5)],
    'addcdiv': [S(N(*A), N(*A), P(4)), S(N(*A), N(*A), P(*A), value=-2.0)],
    'addmm': [S(N(3, 5), N(3, 4), N(4, 5)), S(N(5), N(3, 4), N(4, 5), beta=0.5, alpha=2.0),
              S(N(3, 5), N(3, 4), N(4, 5), beta=0)],
    'addmv': [S(N(3), N(3, 4), N(4)), S(N(3), N(3, 4), N(4), beta=2.0, alpha=0.5)],
    'addr': [S(N(3, 4), N(3), N(4)), S(N(3, 4), N(3), N(4), beta=0.5, alpha=-1.0)],
    'baddbmm': [S(N(2, 3, 5), N(2, 3, 4), N(2, 4, 5), beta=0.5, alpha=2.0)],
    'addbmm': [S(N(3, 5), N(2, 3, 4), N(2, 4, 5)), S(N(3, 5), N(2, 3, 4), N(2, 4, 5),
                                                     beta=0.5, alpha=2.0)],
    'clamp': [S(N(*A), -0.5, 0.5), S(N(*A), min=0.0), S(N(*A), max=0.2)],
    'clip': [S(N(*A), -0.5, 0.5)],
    'clamp_min': [S(N(*A), 0.1)], 'clamp_max': [S(N(*A), -0.1)],
    # --- products
    'outer': [S(N(3), N(4))], 'ger': [S(N(3), N(4))], 'inner': [S(N(3, 4), N(5, 4)),
                                                              S(N(4), N(4))],
    'mv': [S(N(3, 4), N(4))], 'vdot': [S(N(4), N(4))], 'dot': [S(N(4), N(4))],
    'kron': [S(N(2, 3), N(2, 2))], 'matmul': [S(N(3, 4), N(4, 2)), S(N(2, 3, 4), N(4))],
    'mm': [S(N(3, 4), N(4, 2))], 'bmm': [S(N(2, 3, 4), N(2, 4, 5))],
    'cross': [S(N(4, 3), N(4, 3), dim=1), S(N(3, 4), N(3, 4), dim=0),
              S(N(4, 3), N(1, 3), dim=-1)],
    'dist': [S(N(*A), N(*A)), S(N(*A), N(4), 1), S(N(*A), N(*A), 3)],
    # --- shape
    'broadcast_to': [S(N(3, 1), (2, 3, 4)), S(N(4), (3, -1))],
    'movedim': [S(N(*BATCH), 0, -1), S(N(*BATCH), (0, 1), (2, 0))],
    'moveaxis': [S(N(*BATCH), 0, -1)], 'swapdims': [S(N(*BATCH), 0, 2)],
    'swapaxes': [S(N(*BATCH), 0, 2)], 'transpose': [S(N(*BATCH), 0, 2)], 't': [S(N(*A))],
    'adjoint': [S(N(*BATCH))],
    'tril': [S(N(*A)), S(N(*BATCH), 1), S(N(4, 3), -1)],
    'triu': [S(N(*A)), S(N(*BATCH), -1), S(N(4, 3), 1)],
    'diag': [S(N(4)), S(N(4), 1), S(N(*A)), S(N(*A), -1)],
    'diag_embed': [S(N(2, 3)), S(N(2, 3), 1), S(N(2, 3), -1, 0, 2)],
    'diagflat': [S(N(2, 2)), S(N(3), 1)],
    'diagonal': [S(N(*A)), S(N(*BATCH), 1, 1, 2)],
    'rot90': [S(N(*A)), S(N(*BATCH), 2, [1, 2]), S(N(*A), -1, [0, 1])],
    'fliplr': [S(N(*A))], 'flipud': [S(N(*A))], 'flip': [S(N(*BATCH), (0, 2))],
    'roll': [S(N(*A), 1, 1), S(N(*A), (1, -1), (0, 1))],
    'tensor_split': [S(N(5, 4), 3), S(N(5, 4), [1, 3], dim=0), S(N(5, 4), 3, dim=1)],
    'hsplit': [S(N(3, 4), 2), S(N(3, 4), [1, 3])], 'vsplit': [S(N(4, 3), 2)],
    'dsplit': [S(N(2, 2, 4), 2)], 'split_with_sizes': [S(N(5, 4), [2, 3])],
    'split': [S(N(5, 4), 2), S(N(5, 4), [1, 3], 1)], 'chunk': [S(N(5, 4), 2, 1)],
    'unbind': [S(N(*A), 1)], 'narrow': [S(N(5, 4), 0, 1, 3)],
    'take_along_dim': [S(N(*A), I((3, 2), 0, 4), 1), S(N(*A), I((6,), 0, 12)),
                       S(N(*A), I((1, 4), 0, 3), 0)],
    'select': [S(N(*BATCH), 1, 2), S(N(*BATCH), -1, -1)],
    'msort': [S(N(*A))], 'flatten': [S(N(*BATCH)), S(N(*BATCH), 1)],
    'unflatten': [S(N(3, 4), 1, (2, 2))], 'reshape': [S(N(*A), (2, 6))],
    'ravel': [S(N(*A))], 'permute': [S(N(*BATCH), (2, 0, 1))], 'squeeze': [S(N(3, 1, 4), 1)],
    'unsqueeze': [S(N(*A), 1)], 'tile': [S(N(*A), (2, 1))],
    'repeat_interleave': [S(N(*A), 2, 1)], 'trace': [S(N(4, 4))],
    'take': [S(N(*A), I((5,), 0, 12))],
    # --- indexing
    'gather': [S(N(*A), 1, I((3, 2), 0, 4))],
    'scatter': [S(N(*A), 1, Ix([0, 2], [1, 3], [2, 0]), N(3, 2))],
    'scatter_add': [S(N(*A), 1, Ix([0, 0], [1, 3], [2, 2]), N(3, 2))],
    'scatter_reduce': [S(N(*A), 1, Ix([0, 0], [1, 3], [2, 2]), N(3, 2), 'sum'),
                       S(N(*A), 1, Ix([0, 0], [1, 3], [2, 2]), N(3, 2), 'mean'),
                       S(N(*A), 1, Ix([0, 0], [1, 3], [2, 2]), N(3, 2), 'sum',
                         include_self=False),
                       S(N(*A), 1, Ix([0, 0], [1, 3], [2, 2]), N(3, 2), 'mean',
                         include_self=False)],
    'index_select': [S(N(*A), 1, Ix(0, 2, 2))],
    'index_add': [S(N(5, 3), 0, Ix(0, 2, 0), N(3, 3)), S(N(5, 3), 1, Ix(2, 1), N(5, 2),
                                                         alpha=2.0)],
    'index_copy': [S(N(5, 3), 0, Ix(4, 0), N(2, 3)), S(N(5, 3), 1, Ix(2,), N(5, 1))],
    'index_fill': [S(N(5, 3), 1, Ix(0, 2), -1.0), S(N(5, 3), 0, Ix(1,), 2.5)],
    'index_put': [S(N(5, 3), (Ix(0, 3),), N(2, 3)),
                  S(N(5, 3), (Ix(0, 0, 1), Ix(1, 1, 2)), N(3), accumulate=True),
                  S(N(5, 3), (Ix(4,),), N())],
    'masked_fill': [S(N(*A), Mask([[True, False, False, True]] * 3), 0.5)],
    'masked_select': [S(N(*A), Mask([True, False, False, True]))],
    'masked_scatter': [S(N(*A), Mask([[True, False, False, True], [False] * 4,
                                      [True, True, False, False]]), N(5, 2)),
                       S(N(*A), Mask([True, False, True, False]), N(7))],
    'where': [S(N(*A), Mask([True, False, False, True]), N(*A))],
    'nonzero': [S(Mask([[True, False], [False, True]]), grad=False)],
    'argwhere': [S(Mask([[True, False], [False, True]]), grad=False)],
    # --- reductions and order statistics
    'sum': [S(N(*BATCH)), S(N(*BATCH), 1), S(N(*BATCH), (0, 2), keepdim=True)],
    'mean': [S(N(*BATCH)), S(N(*BATCH), 1, keepdim=True)], 'prod': [S(N(*A), 1)],
    'std': [S(N(*BATCH)), S(N(*BATCH), 1), S(N(*BATCH), 2, correction=0, keepdim=True)],
    'var': [S(N(*BATCH)), S(N(*BATCH), 1), S(N(*BATCH), (0, 2), correction=0)],
    'amax': [S(N(*BATCH), 1)], 'amin': [S(N(*BATCH), (0, 1))],
    'max': [S(N(*A)), S(N(*A), 1), S(N(*A), 0, keepdim=True), S(N(*A), N(*A))],
    'min': [S(N(*A)), S(N(*A), 1), S(N(*A), N(4))],
    'argmax': [S(N(*A), grad=False), S(N(*A), 1, grad=False)],
    'argmin': [S(N(*A), 0, grad=False)], 'argsort': [S(N(*A), 1, grad=False),
                                                     S(N(*A), 0, True, grad=False)],
    'sort': [S(N(*A)), S(N(*A), 0, True)],
    'all': [S(B(*A), grad=False), S(B(*A), 1, grad=False)],
    'any': [S(B(*A), grad=False), S(B(*A), 0, grad=False)],
    'logsumexp': [S(N(*BATCH), 1), S(N(*BATCH), (0, 2), True)],
    'norm': [S(N(*A)), S(N(*A), 1, 1), S(N(*A), 3, 0, True), S(N(*A), float('inf'), 1)],
    'cumsum': [S(N(*A), 1)], 'cumprod': [S(N(*A), 0)],
    'softmax': [S(N(*A), 1)], 'log_softmax': [S(N(*A), 0)],
    'median': [S(N(5, 4)), S(N(4, 4)), S(N(5, 4), 0), S(N(4, 6), 1, True)],
    'nanmedian': [S(N(5, 4)), S(N(5, 4), 0), S(WithNan(4, 5), 1, grad=False),
                  S(WithNan(4, 5), grad=False)],
    'kthvalue': [S(N(*A), 2), S(N(*A), 1, 0), S(N(*A), 3, 1, True)],
    'topk': [S(N(*A), 2), S(N(*A), 2, 0), S(N(*A), 3, 1, False)],
    'mode': [S(Rep(4, 7), grad=False), S(Rep(5, 3), 0, grad=False)],
    'quantile': [S(N(5, 4), 0.3), S(N(5, 4), 0.3, 0), S(N(5, 4), 0.75, 1, True),
                 S(N(5, 4), G((3,), 0.0, 1.0), 1, grad=False),
                 S(N(5, 4), 0.4, 1, interpolation='nearest'),
                 S(N(5, 4), 0.3, 0, True, interpolation='lower'),
                 S(N(5, 4), G((2,), 0.0, 1.0), 1, interpolation='higher', grad=False),
                 S(N(5, 4), 0.3, interpolation='midpoint')],
    'nanquantile': [S(N(5, 4), 0.3, 0), S(WithNan(4, 5), 0.6, 1, grad=False)],
    'count_nonzero': [S(Mask([[True, False], [True, True]]), grad=False),
                      S(I((3, 4), 0, 2), 1, grad=False)],
    'nansum': [S(N(*A)), S(WithNan(*A), 1, grad=False)],
    'nanmean': [S(N(*A), 0), S(G((3, 4), 0, 1), grad=False)],
    'aminmax': [S(N(*A), grad=False), S(N(*A), dim=1, grad=False)],
    'cummax': [S(N(*A), 1), S(Rep(3, 6), 1, grad=False)],
    'cummin': [S(N(*A), 0), S(Rep(3, 6), 1, grad=False)],
    'logcumsumexp': [S(N(*A), 1), S(N(*BATCH), 0)],
    'diff': [S(N(*A)), S(N(*A), 2, 0), S(N(*A), 1, 1, N(3, 1), N(3, 2))],
    'renorm': [S(N(4, 3), 2, 0, 1.0), S(N(4, 3), 1, 1, 0.5)],
    'cov': [S(N(3, 6)), S(N(3, 6), correction=0), S(N(6)),
            S(N(3, 6), fweights=Ix(1, 2, 1, 3, 1, 1), aweights=P(6))],
    'corrcoef': [S(N(3, 6))],
    'isclose': [S(N(*A), N(*A), grad=False)], 'allclose': [S(N(*A), N(*A), grad=False)],
    'equal': [S(N(*A), N(*A), grad=False)],
    'unique': [S(Rep(3, 5), grad=False), S(Rep(3, 5), return_inverse=True,
                                           return_counts=True, grad=False)],
    'unique_consecutive': [S(Rep(9), grad=False), S(Rep(9), return_counts=True,
                                                     return_inverse=True, grad=False)],
    'bincount': [S(I((9,), 0, 5), grad=False), S(I((9,), 0, 5), P(9), 7, grad=False)],
    'histc': [S(N(20), grad=False), S(N(20), 5, -1, 1, grad=False)],
    'frexp': [S(N(*A), grad=False)],
    # --- linear algebra
    'inverse': [S(W(3, 3)), S(W(2, 3, 3))], 'det': [S(W(3, 3)), S(W(2, 3, 3))],
    'logdet': [S(SPD(3, 3))], 'slogdet': [S(W(3, 3)), S(W(2, 3, 3))],
    'cholesky': [S(SPD(3, 3)), S(SPD(3, 3), True)],
    'cholesky_inverse': [S(Tri(3)), S(Tri(3, upper=True), True)],
    'cholesky_solve': [S(N(3, 2), Tri(3)), S(N(3, 2), Tri(3, upper=True), True)],
    'qr': [S(N(4, 3), tol=(1e-7, 1e-3)), S(N(4, 3), False, grad=False)],
    'svd': [S(N(4, 3), outs=[1]), S(N(3, 3), outs=[1])],
    'pinverse': [S(N(4, 3))], 'matrix_power': [S(W(3, 3), 3), S(W(3, 3), 0), S(W(3, 3), -2)],
    'matrix_exp': [S(G((3, 3), -0.5, 0.5))],
    'triangular_solve': [S(N(3, 2), Tri(3, upper=True)), S(N(3, 2), Tri(3), upper=False),
                         S(N(3, 2), Tri(3, upper=True), transpose=True)],
    # --- special functions with extra arguments
    'polygamma': [S(P(*A), 1, call=lambda lib, x, n: lib.polygamma(n, x)),
                  S(P(*A), 2, call=lambda lib, x, n: lib.polygamma(n, x))],
    'mvlgamma': [S(G(A, 2.0, 4.0), 2), S(G(A, 2.0, 4.0), p=3)],
    # --- predicates on the Tensor
    'is_floating_point': [S(N(*A), grad=False), S(I(A, 0, 3), grad=False)],
    'is_complex': [S(N(*A), grad=False)], 'is_signed': [S(N(*A), grad=False)],
    'is_nonzero': [S(N(1), grad=False)], 'is_same_size': [S(N(*A), N(*A), grad=False)],
    'is_inference': [S(N(*A), grad=False)], 'is_conj': [S(N(*A), grad=False)],
    'is_neg': [S(N(*A), grad=False)], 'numel': [S(N(*A), grad=False)],
    'get_device': [S(N(*A), grad=False)],
    'select_scatter': [S(N(*BATCH), N(2, 4), 1, 2), S(N(*BATCH), N(3, 4), 0, -1)],
    'slice_scatter': [S(N(5, 4), N(2, 4), 0, 1, 3), S(N(5, 4), N(5, 2), 1, 0, 4, 2),
                      S(N(5, 4), N(5, 4))],
    'diagonal_scatter': [S(N(3, 4), N(3)), S(N(3, 4), N(3), 1), S(N(4, 3), N(2), -2),
                         S(N(2, 3, 4), N(3, 2), 0, 0, 2), S(N(3, 4, 2), N(2, 3), 0, 0, 1)],
    'put': [S(N(*A), Ix(0, 5, 11), N(3)), S(N(*A), Ix(1, 1, -1), N(3), True)],
    'narrow_copy': [S(N(5, 4), 1, 1, 2)], 'nonzero_static': [],
    'unsafe_chunk': [S(N(5, 4), 2, 1)], 'unsafe_split': [S(N(5, 4), 2)],
    'unsafe_split_with_sizes': [S(N(5, 4), [2, 3])],
    'prelu': [S(N(2, 3, 4), P(3)), S(N(2, 3), P(1))],
    'histogram': [S(N(20), 5, grad=False), S(N(20), 4, range=(-1.0, 1.0), grad=False)],
    'angle': [S(N(*A), grad=False)], 'is_distributed': [S(N(*A), grad=False)],
    # --- identity-like
    'clone': [S(N(*A))], 'detach': [S(N(*A), grad=False)],
    'sum_to_size': [S(N(2, 3, 4), 3, 1), S(N(2, 3, 4), (1, 4)), S(N(2, 3, 4), 2, 3, 4),
                    S(N(2, 3, 4), [4])],
    'real': [S(N(*A))], 'imag': [],
}

# names in the tables that have no value comparison, and why (each is tested elsewhere)
NOT_COMPARED = {
    'bernoulli': 'random (tests/test_torch_api.py: test_random_methods)',
    'multinomial': 'random (tests/test_torch_api.py: test_random_methods)',
    'imag': 'PyTorch refuses imag of a real tensor; ours is zeros (NumPy)',
    'cpu': 'returns self (test_devices)', 'device': 'a property (test_devices)',
    'is_cuda': 'a property (test_devices)',
    'nonzero_static': 'keyword-only size (test_torch_api.py: test_nonzero_static)',
    'fill_': 'in-place only (test_inplace_functions)', 'zero_': 'in-place only',
}
