"""Sample inputs for every public function: what `cr.coverage()` runs each function on.

Each entry says how to call one public function on small random arrays: the shapes of its array
arguments, where to sample them, and (when the function does not take its arrays positionally)
a `call` that builds the call. A function with no entry gets the default: as many arrays of
shape (2, 3) as it has required positional parameters, sampled in (0.2, 0.8) -- inside the
domain of `log`, `sqrt`, `arcsin`, `arctanh` and friends. The test suite has its own, larger
table (`tests/op_table.py`); this one lives in the library so `cr.coverage()` works anywhere.
Public names that are not differentiable functions of arrays (NumPy's error-state utilities,
SciPy's optimizer drivers, ...) are in `SKIP`, each with the reason, and get no row.
"""

import numpy as np

__all__ = ['Sample', 'sample_for', 'SKIP', 'TABLES', 'OPTIONAL_TABLES']


class Sample:
    """How to call one function.

    Args:
        shapes: one shape per array argument.
        domain: `(lo, hi)` for every argument, or a list with one entry per argument: `(lo, hi)`,
            `'int'` (integers 0..2), `'bool'`, `'spd'` (a symmetric positive definite matrix),
            `'sorted'` (increasing floats), or `'label'` (class labels 0..2).
        call: `call(fn, *arrays)` makes the call; by default `fn(*arrays, **kwargs)`.
        zero_grad: the function's gradient is zero by design (`stop_gradient`), whatever finite
            differences say.
        keep_real: the indices of the arguments that stay real when the others are sampled
            complex (an ODE's output times).
        kwargs: keyword arguments of the default call.
    """

    __slots__ = ('shapes', 'domain', 'call', 'kwargs', 'zero_grad', 'keep_real')

    def __init__(self, *shapes, domain=(0.2, 0.8), call=None, zero_grad=False, keep_real=(),
                 **kwargs):
        self.shapes = shapes
        self.domain = domain
        self.call = call
        self.kwargs = kwargs
        self.zero_grad = zero_grad      # its gradient is zero by design (`stop_gradient`)
        self.keep_real = keep_real

    def domains(self):
        d = self.domain
        return d if isinstance(d, list) else [d] * len(self.shapes)

    def arrays(self, rng, complex_=False):
        """The sampled arguments: floats in float64 (complex128 with `complex_`, except those
        in `keep_real`)."""
        out = []
        for i, (shape, dom) in enumerate(zip(self.shapes, self.domains())):
            if dom == 'int':
                out.append(rng.integers(0, 3, shape))
            elif dom == 'label':
                out.append(rng.integers(0, 3, shape))
            elif dom == 'bool':
                out.append(rng.random(shape) < 0.5)
            else:
                if dom == 'spd':
                    a = rng.uniform(-1, 1, shape)
                    x = a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])
                elif dom == 'sorted':
                    x = np.cumsum(rng.uniform(0.2, 1.0, shape), axis=-1)
                else:
                    x = rng.uniform(dom[0], dom[1], shape)
                if complex_ and i not in self.keep_real:
                    x = x + 1j * rng.uniform(-0.3, 0.3, shape)
                out.append(np.asarray(x))
        return out

    def direction(self, i, x, rng):
        """A random direction to perturb argument `i` (value `x`) along: symmetric for a
        symmetric matrix argument (the functions read one triangle)."""
        v = rng.standard_normal(np.shape(x))
        if np.iscomplexobj(x):
            v = v + 1j * rng.standard_normal(np.shape(x))
        if self.domains()[i] == 'spd':
            v = (v + np.conj(np.swapaxes(v, -1, -2))) / 2
        return v

    def __call__(self, fn, *arrays):
        if self.call is not None:
            return self.call(fn, *arrays)
        return fn(*arrays, **self.kwargs)


S = Sample
M = (3, 3)
POS = (0.2, 0.8)

# Public names that are not differentiable functions of arrays: NumPy's own constructors
# re-exported, helpers, and an exception class.
SKIP = {
    **dict.fromkeys(['arange', 'empty', 'eye', 'geomspace', 'identity', 'indices', 'logspace',
                     'ones', 'tri', 'zeros', 'fftfreq', 'rfftfreq'],
                    'makes a constant array from sizes (nothing to differentiate)'),
    **dict.fromkeys(['concrete', 'dtype_of', 'shape_of', 'result_type', 'shape', 'ndim', 'size',
                     'iscomplexobj', 'isrealobj'], 'inspects an array (no array result)'),
    **dict.fromkeys(['geterr', 'seterr', 'geterrcall', 'seterrcall'],
                    "NumPy's floating-point error state (no array argument or result)"),
    **dict.fromkeys(['minimize', 'least_squares', 'root'],
                    "drives SciPy's optimizer on concrete values (not a differentiable function "
                    'of arrays; to differentiate through a solution use cr.custom_root)'),
    'LinAlgError': 'an exception class',
}

_pair = lambda f, x, y: f([x, y])             # noqa: E731  (functions taking a sequence)

NUMPY = {
    'arccosh': S((2, 3), domain=(1.2, 3.0)),
    'all': S((2, 3), domain=['bool']), 'any': S((2, 3), domain=['bool']),
    'logical_and': S((3,), (3,), domain=['bool'] * 2),
    'logical_or': S((3,), (3,), domain=['bool'] * 2),
    'logical_xor': S((3,), (3,), domain=['bool'] * 2), 'logical_not': S((3,), domain=['bool']),
    'bitwise_and': S((3,), (3,), domain=['int'] * 2), 'bitwise_or': S((3,), (3,), domain=['int'] * 2),
    'bitwise_xor': S((3,), (3,), domain=['int'] * 2), 'bitwise_not': S((3,), domain=['int']),
    'bitwise_invert': S((3,), domain=['int']), 'invert': S((3,), domain=['int']),
    'bincount': S((6,), domain=['int']), 'unique': S((6,), domain=['int']),
    'nonzero': S((2, 3), domain=['int']), 'flatnonzero': S((2, 3), domain=['int']),
    'argwhere': S((2, 3), domain=['int']), 'count_nonzero': S((2, 3), domain=['int']),
    'isin': S((6,), (3,), domain=['int', 'int']),
    'histogram': S((8,), bins=3, range=(0.0, 1.0)),
    'append': S((2, 3), (2, 3)),
    'array': S((3,), (3,), call=lambda f, x, y: f([x, 2 * y])),
    'asarray': S((3,), (3,), call=lambda f, x, y: f([x, y])),
    'array_split': S((5,), call=lambda f, x: f(x, 3)),
    'split': S((2, 6), call=lambda f, x: f(x, 3, axis=1)),
    'hsplit': S((2, 4), call=lambda f, x: f(x, 2)),
    'vsplit': S((4, 2), call=lambda f, x: f(x, 2)),
    'dsplit': S((1, 2, 4), call=lambda f, x: f(x, 2)),
    'atleast_1d': S(()), 'atleast_2d': S((3,)), 'atleast_3d': S((2, 3)),
    'at': S((4,), (2,), call=lambda f, x, y: f(x)[1:3].set(y)),
    'index_add': S((4,), (3,), call=lambda f, x, y: f(x, [0, 2, 0], y)),
    'index_update': S((4,), (2,), call=lambda f, x, y: f(x, slice(1, 3), y)),
    'broadcast_arrays': S((3, 1), (1, 4)),
    'broadcast_to': S((3, 1), call=lambda f, x: f(x, (2, 3, 4))),
    'clip': S((2, 3), a_min=0.3, a_max=0.6),
    'concat': S((2, 3), (1, 3), call=_pair), 'concatenate': S((2, 3), (1, 3), call=_pair),
    'stack': S((2, 3), (2, 3), call=_pair), 'hstack': S((2, 3), (2, 1), call=_pair),
    'vstack': S((2, 3), (1, 3), call=_pair), 'row_stack': S((3,), (3,), call=_pair),
    'dstack': S((2, 3), (2, 3), call=_pair), 'column_stack': S((3,), (3, 2), call=_pair),
    'cross': S((3,), (3,)),
    'diag': S((3,)), 'diagflat': S((2, 2)), 'diagonal': S(M), 'trace': S(M),
    'tril': S(M), 'triu': S(M),
    'dot': S((2, 3), (3, 4)), 'matmul': S((2, 3), (3, 4)), 'inner': S((2, 3), (4, 3)),
    'vdot': S((3,), (3,)), 'outer': S((3,), (4,)), 'kron': S((2, 2), (2, 3)),
    'tensordot': S((2, 3, 4), (3, 4, 2)),
    'einsum': S((2, 3), (3, 4), call=lambda f, a, b: f('ij,jk->ik', a, b)),
    'convolve': S((5,), (3,)), 'correlate': S((5,), (3,)),
    'digitize': S((5,), (4,), domain=[(0.0, 3.0), 'sorted']),
    'searchsorted': S((4,), (5,), domain=['sorted', (0.0, 3.0)]),
    'expand_dims': S((2, 3), axis=0), 'squeeze': S((1, 3, 1)),
    'moveaxis': S((2, 3, 4), call=lambda f, x: f(x, 0, -1)),
    'rollaxis': S((2, 3, 4), axis=2),
    'swapaxes': S((2, 3, 4), call=lambda f, x: f(x, 0, 2)),
    'transpose': S((2, 3, 4)), 'permute_dims': S((2, 3, 4), axes=(2, 0, 1)),
    'reshape': S((2, 3), call=lambda f, x: f(x, (3, -1))),
    'repeat': S((2, 3), repeats=2, axis=1), 'tile': S((2, 3), reps=2),
    'roll': S((2, 3), shift=1), 'rot90': S((2, 3)),
    'pad': S((2, 3), pad_width=1), 'partition': S((6,), kth=2),
    'take': S((3, 4), indices=[0, 2, 2]),
    'take_along_axis': S((2, 3), call=lambda f, x: f(x, np.array([[0, 2], [1, 1]]), 1)),
    'full': S((), call=lambda f, v: f((2, 3), v)),
    'full_like': S((2, 3), ()),
    'linspace': S((), (), call=lambda f, a, b: f(a, b + 1.0, 5)),
    'meshgrid': S((3,), (2,)),
    'heaviside': S((2, 3), (2, 3)),
    'interp': S((5,), (4,), call=lambda f, x, fp: f(x, np.array([0.0, 0.3, 0.6, 1.0]), fp)),
    'polyval': S((3,), (4,)), 'gradient': S((5,)), 'ediff1d': S((2, 3)),
    'cov': S((2, 5)), 'corrcoef': S((3, 5)), 'trapezoid': S((3, 4)),
    'quantile': S((2, 3, 4), q=0.3), 'percentile': S((2, 3, 4), q=30),
    'median': S((2, 3, 4)), 'average': S((2, 3)),
    'where': S((2, 3), (2, 3), (2, 3), domain=['bool', POS, POS]),
    'mod': S((2, 3), (2, 3), domain=[(0.1, 3.0), (0.7, 1.3)]),
    'remainder': S((2, 3), (2, 3), domain=[(0.1, 3.0), (0.7, 1.3)]),
    'floor_divide': S((2, 3), (2, 3), domain=[(0.1, 3.0), (0.7, 1.3)]),
    'equal': S((3,), (3,), domain=['int', 'int']), 'not_equal': S((3,), (3,), domain=['int'] * 2),
    'real_if_close': S((2, 3)), 'stop_gradient': S((2, 3), zero_grad=True),
    'cumprod': S((2, 3), domain=(0.5, 1.5)), 'prod': S((2, 3), domain=(0.5, 1.5)),
    'select': S((2, 3), (2, 3), (2, 3), (2, 3), (2, 3), domain=['bool', 'bool', POS, POS, POS],
                call=lambda f, c1, c2, x, y, d: f([c1, c2], [x, y], d)),
}

def _gauge_free(f, a):
    """Eigenvectors and singular vectors are defined up to a sign (a phase, when complex):
    check them through |v|**2, which does not depend on that choice."""
    import chainrule.numpy as cnp
    return [cnp.abs(r) ** 2 if r.ndim == 2 else r for r in f(a)]


LINALG = {
    'eig': S(M, call=_gauge_free), 'svd': S(M, call=_gauge_free),
    'eigh': S(M, domain=['spd'], call=_gauge_free),
    **{n: S(M) for n in ['det', 'slogdet', 'inv', 'pinv', 'eigvals', 'svdvals',
                         'qr', 'norm', 'matrix_norm', 'cond', 'matrix_rank',
                         'matrix_transpose', 'diagonal', 'trace']},
    **{n: S(M, domain=['spd']) for n in ['cholesky', 'eigvalsh']},
    'solve': S(M, (3,), domain=['spd', POS]),
    'lstsq': S((4, 2), (4,)),
    'matrix_power': S(M, n=3),
    'multi_dot': S((2, 3), (3, 4), (4, 2), call=lambda f, a, b, c: f([a, b, c])),
    'vector_norm': S((3,)), 'outer': S((3,), (4,)), 'vecdot': S((2, 3), (2, 3)),
    'matmul': S((2, 3), (3, 4)), 'tensordot': S((2, 3, 4), (3, 4, 2)), 'cross': S((3,), (3,)),
    'tensorinv': S((4, 2, 2), call=lambda f, a: f(a + 3 * np.eye(4).reshape(4, 2, 2), ind=1)),
    'tensorsolve': S((2, 2, 4), (2, 2),
                     call=lambda f, a, b: f(a + 3 * np.eye(4).reshape(2, 2, 4), b)),
}

FFT = {
    **{n: S((2, 4)) for n in ['fft', 'ifft', 'fft2', 'ifft2', 'fftn', 'ifftn', 'rfft', 'irfft',
                              'rfft2', 'irfft2', 'rfftn', 'irfftn', 'hfft', 'ihfft',
                              'fftshift', 'ifftshift']},
}

FUNCTIONAL = {
    'linear': S((2, 3), (4, 3), (4,)),
    'softmax': S((2, 3)), 'log_softmax': S((2, 3)),
    'cross_entropy': S((4, 3), (4,), domain=[POS, 'label']),
    'nll_loss': S((4, 3), (4,), domain=[POS, 'label']),
    'mse_loss': S((2, 3), (2, 3)),
    'binary_cross_entropy_with_logits': S((2, 3), (2, 3)),
    'conv2d': S((1, 2, 5, 5), (3, 2, 3, 3), (3,), padding=1),
    'max_pool2d': S((1, 2, 4, 4), kernel_size=2),
    'conv1d': S((1, 2, 7), (4, 1, 3), (4,), padding=2, dilation=2, groups=2),
    'conv_transpose2d': S((1, 2, 3, 3), (2, 3, 2, 2), (3,), stride=2, output_padding=1),
    'avg_pool2d': S((1, 2, 5, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    'adaptive_avg_pool2d': S((1, 2, 5, 4), output_size=(2, 3)),
    'max_pool1d': S((1, 2, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    'max_pool3d': S((1, 1, 3, 4, 4), kernel_size=2, dilation=(1, 2, 1), ceil_mode=True),
    'max_pool1d_with_indices': S((1, 2, 6), call=lambda f, x: f(x, 2)[0]),
    'max_pool2d_with_indices': S((1, 2, 5, 5), call=lambda f, x: f(x, 3, 2, 1)[0]),
    'max_pool3d_with_indices': S((1, 1, 4, 4, 4), call=lambda f, x: f(x, 2)[0]),
    'avg_pool1d': S((1, 2, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    'avg_pool3d': S((1, 1, 3, 4, 5), kernel_size=2, ceil_mode=True, count_include_pad=False),
    'lp_pool1d': S((1, 2, 6), call=lambda f, x: f(x, 2, 3)),
    'lp_pool2d': S((1, 2, 5, 5), call=lambda f, x: f(x, 3, 2, ceil_mode=True)),
    'lp_pool3d': S((1, 1, 4, 4, 4), call=lambda f, x: f(x, 2, 2)),
    'adaptive_max_pool1d': S((1, 2, 7), output_size=3),
    'adaptive_max_pool2d': S((1, 2, 5, 4), output_size=(2, 3)),
    'adaptive_max_pool3d': S((1, 1, 3, 4, 5), output_size=2),
    'adaptive_avg_pool1d': S((1, 2, 7), output_size=3),
    'adaptive_avg_pool3d': S((1, 1, 3, 4, 5), output_size=(2, 3, 2)),
    'max_unpool1d': S((1, 2, 3), call=lambda f, x: f(x, np.array([[[1, 2, 5]] * 2]), 2)),
    'max_unpool2d': S((1, 1, 2, 2), call=lambda f, x: f(x, np.array([[[[0, 3], [9, 14]]]]), 2)),
    'max_unpool3d': S((1, 1, 1, 1, 2),
                      call=lambda f, x: f(x, np.array([[[[[0, 7]]]]]), 2)),
    'interpolate': S((1, 2, 3, 3), scale_factor=1.5),
    'dropout': S((2, 3), p=0.0),
    'layer_norm': S((2, 3), (3,), (3,), call=lambda f, x, w, b: f(x, (3,), w, b)),
    'group_norm': S((2, 4, 3), (4,), (4,), call=lambda f, x, w, b: f(x, 2, w, b)),
    'batch_norm': S((4, 3), (3,), (3,), (3,), (3,), training=True),
    'embedding': S((4,), (3, 2), domain=['label', POS]),
    'one_hot': S((4,), domain=['label'], num_classes=3),
    'cosine_embedding_loss': S((4, 3), (4, 3), (4,)),
    'glu': S((2, 4)),
    'pad': S((2, 3), call=lambda f, x: f(x, (1, 2))),
    'prelu': S((2, 3), (3,)),
    'rms_norm': S((2, 3), (3,), call=lambda f, x, w: f(x, (3,), w)),
    'scaled_dot_product_attention': S((2, 3, 4), (2, 5, 4), (2, 5, 4)),
    # sequence-first (L, N, E) query, (S, N, E) key and value, packed in/out projections
    'multi_head_attention_forward': S(
        (3, 2, 4), (5, 2, 4), (5, 2, 4), (12, 4), (12,), (4, 4), (4,),
        call=lambda f, q, k, v, w, b, ow, ob: f(q, k, v, 4, 2, w, b, None, None, False, 0.0,
                                                ow, ob)[0]),
}

# --- chainrule.scipy (covered only when SciPy is installed) -----------------------------------

def _well(a):
    """`a` (entries in (0.2, 0.8)) plus 3 on the diagonal: diagonally dominant, so well
    conditioned, with every eigenvalue's real part above 2 (away from logm's and sqrtm's branch
    cut on the negative real axis)."""
    return a + 3 * np.eye(np.shape(a)[-1])


# the orders of iv, ive, kv and the parameters a of betainc and gammainc: constants (their
# derivatives there are MissingRuleError by design), real and not all integers
_ORDERS = np.array([0.5, 1.0, 2.5])
_PARAMS = np.array([0.5, 1.5, 3.0])

SPECIAL = {
    'polygamma': S((2, 3), (2, 3), domain=['int', (0.5, 2.0)]),        # integer order n
    'multigammaln': S((2, 3), domain=[(1.5, 3.0)], call=lambda f, a: f(a, 3)),   # a > (d-1)/2
    'beta': S((2, 3), (2, 3), domain=(0.5, 2.0)), 'betaln': S((2, 3), (2, 3), domain=(0.5, 2.0)),
    # no derivative in a, b: they are constants, x is sampled
    'betainc': S((2, 3), call=lambda f, x: f(_PARAMS, 2.0, x)),
    'gammainc': S((2, 3), domain=[(0.2, 3.0)], call=lambda f, x: f(_PARAMS, x)),
    'gammaincc': S((2, 3), domain=[(0.2, 3.0)], call=lambda f, x: f(_PARAMS, x)),
    'jn': S((2, 3), (2, 3), domain=['int', (0.5, 3.0)]),                # integer order n
    'yn': S((2, 3), (2, 3), domain=['int', (0.5, 3.0)]),
    'iv': S((2, 3), domain=[(0.5, 3.0)], call=lambda f, z: f(_ORDERS, z)),
    'ive': S((2, 3), domain=[(0.5, 3.0)], call=lambda f, z: f(_ORDERS, z)),
    'kv': S((2, 3), domain=[(0.5, 3.0)], call=lambda f, z: f(_ORDERS, z)),
}

SCIPY_LINALG = {
    # reads the upper triangle: an SPD matrix's is a well-conditioned triangular matrix
    'solve_triangular': S(M, (3, 2), domain=['spd', POS]),
    'cho_factor': S(M, domain=['spd']),
    # cho_solve reads c's upper triangle, and any upper-triangular matrix with a positive
    # diagonal is a Cholesky factor (of c^H c)
    'cho_solve': S(M, (3,), domain=['spd', POS], call=lambda f, c, b: f((c, False), b)),
    'lu_factor': S(M, call=lambda f, a: f(_well(a))),
    # a packed L\U with a real row interchange (rows 0 and 1)
    'lu_solve': S(M, (3,), call=lambda f, lu, b: f((_well(lu), np.array([1, 1, 2])), b)),
    'expm': S(M), 'expm_frechet': S(M, M),
    'logm': S(M, call=lambda f, a: f(_well(a))), 'sqrtm': S(M, call=lambda f, a: f(_well(a))),
    # a and -b have no common eigenvalue (real parts above 2 and below -2)
    'solve_sylvester': S(M, (2, 2), (3, 2), call=lambda f, a, b, q: f(_well(a), _well(b), q)),
    # (l, u) = (1, 1): ab's rows are the super-, main and sub-diagonal; a dominant main one
    'solve_banded': S((3, 4), (4,),
                      call=lambda f, ab, b: f((1, 1), ab + np.array([[0.0], [3.0], [0.0]]), b)),
    'eigh': S(M, domain=['spd'], call=_gauge_free),
    'block_diag': S((2, 3), (1, 2)),
}


def _linear_ode(y, t, a):
    """dy/dt = a y + sin(t): a small linear system, depending on time too."""
    import chainrule.numpy as cnp
    return cnp.matmul(a, y) + cnp.sin(t)


# the ODE solvers take a function: they run on `_linear_ode`, differentiated in the initial
# state, the output times and the matrix a; tolerances far below the finite-difference steps;
# the times stay real when the state and a are complex
INTEGRATE = {
    'odeint': S((2,), (4,), (2, 2), domain=[POS, 'sorted', (-0.5, 0.5)], keep_real=(1,),
                call=lambda f, y0, t, a: f(_linear_ode, y0, t, args=(a,), rtol=1e-12, atol=1e-12)),
    'solve_ivp': S((2,), (4,), (2, 2), domain=[POS, 'sorted', (-0.5, 0.5)], keep_real=(1,),
                   call=lambda f, y0, t, a: f(lambda s, y, a: _linear_ode(y, s, a),
                                              (t[0], t[-1]), y0, t_eval=t, args=(a,),
                                              rtol=1e-12, atol=1e-12).y),
}

TABLES = {'chainrule.numpy': NUMPY, 'chainrule.numpy.linalg': LINALG,
          'chainrule.numpy.fft': FFT, 'chainrule.nn.functional': FUNCTIONAL}

# the optional modules' tables (`coverage_table.SCIPY` imports them only when SciPy is there)
OPTIONAL_TABLES = {'chainrule.scipy.special': SPECIAL, 'chainrule.scipy.linalg': SCIPY_LINALG,
                   'chainrule.scipy.integrate': INTEGRATE}


def sample_for(module, name, fn):
    """The `Sample` for `module.name`: its entry, or the default from `fn`'s signature (None
    when the signature cannot be read)."""
    s = TABLES.get(module, OPTIONAL_TABLES.get(module, {})).get(name)
    if s is not None:
        return s
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    n = sum(1 for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return S(*[(2, 3)] * max(n, 1))
