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

Where the caller passed a `Tensor`, the function sees a `Tensor` whatever value reaches that
position when it runs: a call primitive (`custom_vjp`'s `fwd`, `checkpoint`) also runs its
functions on concrete NumPy arrays, and those are wrapped too. The rules of `custom_vjp` and
`custom_jvp` (`bwd(residuals, g)`, `jvp(primals, tangents)`) are PyTorch code when the function
was called with Tensors: `rule_faced` wraps every array among their arguments.
"""

import contextvars
import functools

import numpy as np

from chainrule.core import Tracer
from chainrule.tensor import Tensor
from chainrule.tree import tree_flatten, tree_map, tree_unflatten


_ARRAYS = (np.ndarray, np.generic)

# True while a function runs on concrete arrays presented as Tensors (a call primitive's impl):
# a custom function it calls on them runs directly, as it would on the arrays (see
# chainrule.custom)
concrete_face = contextvars.ContextVar('chainrule_concrete_face', default=False)


def face(x, arrays=False):
    """`x` as a history-free Tensor if it is a traced value (or, with `arrays`, a NumPy
    array)."""
    if isinstance(x, Tracer) and not isinstance(x, Tensor):
        return Tensor._wrap(x, None)
    if arrays and isinstance(x, _ARRAYS):
        return Tensor._wrap(x if isinstance(x, np.ndarray) else np.asarray(x), None)
    return x


def traced_out(x, arrays=False):
    # a Tensor holding a traced value (made from the wrapped arguments): its value; with
    # `arrays`, a history-free Tensor holding an array too
    if isinstance(x, Tensor) and x._node is None and (
            isinstance(x.data, Tracer) or (arrays and isinstance(x.data, _ARRAYS))):
        return x.data
    return x


def _arrays_out(x):
    return traced_out(x, True)


def torch_faced(fun, mask=None, arrays=None):
    """`fun` called with its traced argument leaves as Tensors (only the leaves where `mask`,
    a list over the flattened positional arguments, is true; all when None), its Tensor
    results holding traced values unwrapped. With `arrays` (the default where `mask` is
    given: the caller passed Tensors there), NumPy arrays at those positions are wrapped too
    and history-free Tensor results unwrapped to their arrays."""
    if arrays is None:
        arrays = mask is not None
    out = _arrays_out if arrays else traced_out

    @functools.wraps(fun)
    def faced(*args, **kwargs):
        leaves0, tdef = tree_flatten(args)
        leaves = leaves0
        if mask is None or len(mask) != len(leaves):
            leaves = [face(x, arrays) for x in leaves] if mask is None else leaves
        else:
            leaves = [face(x, arrays) if m else x for x, m in zip(leaves, mask)]
        if not arrays or not any(isinstance(x, _ARRAYS) for x in leaves0):
            return tree_map(out, fun(*tree_unflatten(tdef, leaves), **kwargs))
        token = concrete_face.set(True)
        try:
            return tree_map(out, fun(*tree_unflatten(tdef, leaves), **kwargs))
        finally:
            concrete_face.reset(token)
    return faced


def rule_faced(rule, args):
    """A custom derivative `rule` for a function called with `args`: when an argument leaf is
    a Tensor (the caller writes PyTorch code), every array and traced value among the rule's
    arguments (residuals and cotangents, or primals and tangents) reaches it as a Tensor, and
    its Tensor results go back as values; `rule` itself otherwise."""
    return rule if tensor_mask(args) is None else torch_faced(rule, arrays=True)


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
