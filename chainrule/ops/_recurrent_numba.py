"""Compiled time loops for `chainrule.ops.recurrent`, used when numba is installed.

What this module lets you do: run the per-step part of an LSTM or GRU layer (forward and
backward through time) as one compiled loop per layer instead of a dozen NumPy calls per step.
On small hidden sizes each NumPy call costs about a microsecond of overhead for a few hundred
multiply-adds, so the per-step calls, not the arithmetic, set the time; compiled, a step is one
`np.dot` (BLAS) and one pass over the gates. The matrix products over all steps (the input
term, the weight gradients) stay in `chainrule.ops.recurrent`, in NumPy.

The kernels (`chainrule.ops._recurrent_kernels`, imported only when needed) read and write the
same buffers as the NumPy loops there (the same residuals: the gates after their nonlinearity,
`c`, `tanh(c)`; for the GRU `r, z`, `n`, the hidden part of the candidate's pre-activation),
from the same pre-activations (sigmoid gates' rows halved). float64 uses libm's `tanh`;
float32 uses a rational approximation of `tanh` that the compiler vectorises (libm's scalar
`tanhf` costs more than the whole step otherwise), within a few float32 ulps (max absolute error
3.5e-7 on [-12, 12]; measured against float64 `tanh`), with the arithmetic in float32.

numba is an optional dependency (`pip install chainrule[jit]`); `kernels(dtype)` returns None
without it. The kernels are compiled on first use per dtype and cached on disk, so only the first
process on a machine pays the compilation (some seconds).
"""

import numpy as np

_compiled = {}      # dtype -> the kernels of that dtype, or None when numba is missing


# tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], saturating beyond: the float32 rational approximation
# also used by Eigen (coefficients from its `ptanh_float`)
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
           5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
           4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
           4.89352518554385e-03)


def blocks(gates, hidden):
    """How many column blocks the hidden product of a step is split into: whole gates, each
    block at most 384 columns where the gates allow."""
    for nb in range(1, gates + 1):
        if gates % nb == 0 and gates * hidden // nb <= 384:
            return nb
    return gates


def column_blocks(w_t, nb):
    """`w_t` (K, nb * C) as `nb` contiguous column blocks, an array (nb, K, C)."""
    k, n = w_t.shape
    return np.ascontiguousarray(w_t.reshape(k, nb, n // nb).transpose(1, 0, 2))


_tiles = {}


def tiled(scale, shift, n):
    """`scale` and `shift` repeated for `n` rows (cached: the same few shapes recur)."""
    key = (scale.tobytes(), scale.dtype, n)
    got = _tiles.get(key)
    if got is None:
        if len(_tiles) > 64:
            _tiles.clear()
        got = _tiles[key] = (np.tile(scale, n), np.tile(shift, n))
    return got


def kernels(dtype):
    """The compiled loops for `dtype` (float32 or float64) as a dict of functions taking the
    dtype's 1 as their last argument, or None when numba is not installed."""
    dtype = np.dtype(dtype)
    if dtype not in _compiled:
        try:
            from chainrule.ops import _recurrent_kernels as k
        except ImportError:
            _compiled[dtype] = None
        except RuntimeError:        # numba finds no writable place for its cache: NumPy loops
            _compiled[dtype] = None
        else:
            _compiled[dtype] = {name: getattr(k, name) for name in (
                'lstm_forward', 'lstm_backward', 'gru_forward', 'gru_backward', 'tanh_into')}
    return _compiled[dtype]
