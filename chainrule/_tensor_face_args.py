"""Traced values presented with `Tensor`'s PyTorch face inside a transform.

A transform calls the user's function with traced values, whose methods are NumPy's
(`chainrule/ops/methods.py`): `x.transpose(0, 1)` is the identity permutation, `x.std()` divides
by n, `x.repeat(2)` repeats elements. Code written against PyTorch's `Tensor` means something
else by the same names (swap dims 0 and 1; divide by n - 1; tile), so running it on traced
values gave other numbers, silently. `torch_faced(fun)` calls `fun` with each traced argument
leaf wrapped in a `Tensor` (no history of its own: its operations go to the traced value's
transform), so PyTorch's meanings hold, and hands the transform back the traced values inside
the Tensors `fun` returns. `chainrule.func` (torch.func's spellings) wraps every function it
transforms this way; the JAX-spelled transforms wrap where an argument was a `Tensor`.
"""

import functools

from chainrule.core import Tracer
from chainrule.tensor import Tensor
from chainrule.tree import tree_flatten, tree_map, tree_unflatten


def face(x):
    if isinstance(x, Tracer) and not isinstance(x, Tensor):
        return Tensor._wrap(x, None)
    return x


def traced_out(x):
    # a Tensor holding a traced value (made from the wrapped arguments): its value
    if isinstance(x, Tensor) and x._node is None and isinstance(x.data, Tracer):
        return x.data
    return x


def torch_faced(fun, mask=None):
    """`fun` called with its traced argument leaves as Tensors (only the leaves where `mask`,
    a list over the flattened positional arguments, is true; all when None), its Tensor
    results holding traced values unwrapped."""
    @functools.wraps(fun)
    def faced(*args, **kwargs):
        leaves, tdef = tree_flatten(args)
        if mask is None or len(mask) != len(leaves):
            leaves = [face(x) for x in leaves] if mask is None else leaves
        else:
            leaves = [face(x) if m else x for x, m in zip(leaves, mask)]
        return tree_map(traced_out, fun(*tree_unflatten(tdef, leaves), **kwargs))
    return faced


def tensor_leaves(leaves):
    """Which of the flat `leaves` are Tensors, as a tuple (None when none is)."""
    mask = tuple(isinstance(x, Tensor) for x in leaves)
    return mask if any(mask) else None


def tensor_mask(args):
    """Which flattened positional-argument leaves are Tensors (None when none is)."""
    return tensor_leaves(tree_flatten(tuple(args))[0])


def faced_for(fun, args):
    """`fun` for a call with `args`: Tensor-faced where an argument leaf is a `Tensor` (the
    caller writes PyTorch code), `fun` itself otherwise."""
    mask = tensor_mask(args)
    return fun if mask is None else torch_faced(fun, mask)
