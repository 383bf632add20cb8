"""`chainrule.numpy.linalg`: differentiable `np.linalg` (UNFINISHED: being built; only `norm`)."""

import numpy as _np

import chainrule.numpy as cnp


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector 2-norm / Frobenius norm (other `ord`s: see the full version)."""
    if ord not in (None, 2, 'fro') or (axis is not None and not isinstance(axis, int)):
        raise NotImplementedError('norm: only the 2-norm is implemented yet')
    sq = cnp.real(x * cnp.conj(x)) if cnp.iscomplexobj(x) else x * x
    return cnp.sqrt(cnp.sum(sq, axis=axis, keepdims=keepdims))


LinAlgError = _np.linalg.LinAlgError
