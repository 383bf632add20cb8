"""Gradient clipping, PyTorch's `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`
(complex gradients are rescaled by their modulus; clamping them is refused)."""

import math

import numpy as np

from chainrule.core import DTypeError
from chainrule.tensor import Tensor, no_grad


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale the gradients of `parameters` together so their joint norm is at most `max_norm`
    (PyTorch's rule: multiply by `min(1, max_norm / (norm + 1e-6))`).

    Args:
        parameters: an iterable of Tensors (or one Tensor); those without `.grad` are skipped.
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm (2 by default; `float('inf')` for the largest entry).

    Returns:
        The joint norm before clipping, a float.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    arrays = [np.asarray(g.data) for g in grads]
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    else:
        total = sum(float(np.sum(np.abs(a) ** norm_type)) for a in arrays) ** (1.0 / norm_type)
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        with no_grad():
            for g in grads:
                g.data = g.data * np.asarray(coef, g.dtype)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry of `parameters` into `[-clip_value, clip_value]`, in place
    (PyTorch's `clip_grad_value_`).

    Args:
        parameters: an iterable of Tensors (or one Tensor); those without `.grad` are skipped.
        clip_value: the largest allowed absolute value of a gradient entry.

    Raises:
        DTypeError: a complex gradient (a clamp has no meaning for complex numbers; PyTorch
            refuses too): clip the norm with `clip_grad_norm_` instead.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    c = float(clip_value)
    grads = [p.grad for p in parameters if p.grad is not None]
    for g in grads:
        if g.dtype.kind == 'c':
            raise DTypeError(f'clip_grad_value_: a gradient of dtype {g.dtype} cannot be clamped '
                             '(complex numbers have no order); use clip_grad_norm_, which '
                             'rescales complex gradients by their modulus')
    with no_grad():
        for g in grads:
            g.data = np.clip(g.data, -c, c).astype(g.dtype, copy=False)
