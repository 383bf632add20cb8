"""Where `backward()` delivers gradients: leaves' `.grad`, hooks, and `create_graph`.

What it holds: `_accumulate` (adds a leaf's cotangent into its `.grad`, under a lock, then runs
its post-accumulate hooks), `_owned` (a gradient Tensor of its own), `_wrap_differentiable`
(the saved values as Tensors connected to the graph, for `create_graph=True`) and the handle
that removes a hook. Names used elsewhere are re-exported by `chainrule.tensor`.
"""

import threading

import numpy as np

from chainrule import ops
from chainrule.core import Tracer
from chainrule.interpreters.reverse import _projection_node
from chainrule.tensor import Tensor

class _HookHandle:
    def __init__(self, hooks, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


_grad_lock = threading.Lock()


# id(leaf Tensor) -> hooks run once backward() has accumulated its gradient (see
# Tensor.register_post_accumulate_grad_hook); entries go when their Tensor does
_post_accumulate_hooks = {}


def _accumulate(node, g):
    """Add `g` to the `.grad` of the leaf of `node`. Under a lock: two threads running
    `backward()` into one leaf would otherwise both read the old `.grad` and one contribution
    would be lost."""
    t = node.leaf() if node.leaf is not None else None
    if t is None:
        return
    with _grad_lock:
        _accumulate_locked(t, g)
    if _post_accumulate_hooks:          # outside the lock: a hook may communicate (DDP)
        for hook in tuple(_post_accumulate_hooks.get(id(t), ())):
            hook(t)


def _accumulate_locked(t, g):
    if isinstance(g, Tensor):
        if g.dtype != t.dtype:
            g = ops.astype(ops.real(g) if g.dtype.kind == 'c' and t.dtype.kind != 'c' else g,
                           t.dtype)
        t.grad = _owned(g) if t.grad is None else t.grad + g
        return
    if isinstance(g, Tracer):
        # the data is traced by an enclosing transform (backward() inside cr.grad, vmap, jit):
        # keep the gradient traced, so that transform differentiates through it too
        if g.dtype != t.dtype:
            g = ops.astype(ops.real(g) if g.dtype.kind == 'c' and t.dtype.kind != 'c' else g,
                           t.dtype)
        t.grad = Tensor._wrap(g if t.grad is None else ops.add(t.grad.data, g), None, t._trace)
        return
    g = np.asarray(g)
    if g.dtype != t.dtype:
        g = (g.real if g.dtype.kind == 'c' and t.dtype.kind != 'c' else g).astype(t.dtype)
    if t.grad is None:
        t.grad = Tensor._wrap(np.array(g, copy=True), None, t._trace)
    else:
        t.grad = Tensor._wrap(t.grad.data + g, None, t._trace)


def _owned(g):
    """A gradient Tensor of its own: the cotangent `g` may be shared (add's rule hands the same
    one to both arguments), and writing into one tensor's `.grad` must not change another's
    (PyTorch clones it too). Tracers and NumPy scalars are immutable: kept as they are."""
    if not isinstance(g.data, np.ndarray):
        return g
    return g + 0 if g.requires_grad else Tensor._wrap(g.data.copy(), None, g._trace)


def _wrap_differentiable(trace, node, g):
    """For `create_graph=True`: the node's saved values as Tensors (of the graph's eager
    `trace`) connected to the graph, so the rules' own operations are recorded."""
    args = tuple(Tensor._wrap(a, p, trace) if p is not None else a
                 for a, p in zip(node.args, node.parents))
    out = node.out
    if node.prim.multiple_results:
        # each result connected through its projection, so rules that use the outputs (eigh's
        # eigenvectors, a custom_vjp's residuals) are differentiated through them too
        out = tuple(Tensor._wrap(o, _projection_node(node, i, len(out)), trace)
                    for i, o in enumerate(out))
    else:
        out = Tensor._wrap(out, node, trace)
    if isinstance(g, tuple):
        g = tuple(x if isinstance(x, Tensor) else Tensor._wrap(x, None, trace) for x in g)
    elif not isinstance(g, Tensor):
        g = Tensor._wrap(g, None, trace)
    return g, args, out
