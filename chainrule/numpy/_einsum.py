"""`einsum`: NumPy's Einstein summation, differentiable to any order.

What you can do with it: write any contraction NumPy's `einsum` accepts -- explicit ('ij,jk->ik')
or implicit ('ij,jk') output, ellipsis broadcasting ('...ij,...jk->...ik'), repeated letters
within an operand (diagonals 'ii->i', traces 'ii'), any number of operands, or NumPy's
interleaved form `einsum(a, [0, 1], b, [1, 2], [0, 2])` -- and differentiate it in reverse or
forward mode, or `vmap` it.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> a = np.arange(4.0).reshape(2, 2)
    >>> cr.grad(lambda a: cnp.einsum('ii', a))(a)        # d trace / da = identity
    array([[1., 0.],
           [0., 1.]])

It is one primitive (`chainrule.ops.linalg_einsum.einsum_p`, where the derivative rules are
explained) whose implementation is `np.einsum`, with NumPy's contraction-order optimisation
(BLAS) for large or many operands.
"""

import string

from chainrule.ops import linalg as _la

__all__ = ['einsum']


def _sublist_letters(sub):
    out = []
    for s in sub:
        if s is Ellipsis:
            out.append('...')
        else:
            i = int(s)
            if not 0 <= i < 52:
                raise ValueError(f'einsum: subscript index {s} is not in [0, 52)')
            out.append(string.ascii_letters[i])
    return ''.join(out)


def _from_interleaved(args):
    """`(a, [0, 1], b, [1, 2], [0, 2])` -> ('ab,bc->ac', [a, b])."""
    args = list(args)
    out = None
    if len(args) % 2:
        out = args.pop()
    operands = args[0::2]
    subs = [_sublist_letters(s) for s in args[1::2]]
    spec = ','.join(subs) + ('' if out is None else '->' + _sublist_letters(out))
    return spec, operands


def einsum(*args, optimize=False):
    """`np.einsum`.

    Args:
        *args: `(subscripts, *operands)`, or NumPy's interleaved
            `(op0, sublist0, op1, sublist1, ..., [sublist_out])`.
        optimize: accepted for NumPy compatibility; the contraction order is always optimised
            when it pays (three or more operands, or large ones).

    Returns:
        The contraction; NumPy's result for plain arrays.
    """
    if not args:
        raise TypeError('einsum: needs subscripts and operands')
    if isinstance(args[0], str):
        return _la.einsum(args[0], *args[1:])
    spec, operands = _from_interleaved(args)
    return _la.einsum(spec, *operands)
