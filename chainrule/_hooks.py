"""The order and ownership of a Tensor's gradient hooks, as PyTorch keeps them.

Hooks live on the tape node that made the Tensor's value (`Node.hooks`, run in order by the
backward pass on the node's cotangent). Two rules of PyTorch's need more than a list:
- `retain_grad()` stores the gradient after every other hook of the Tensor has run, whenever
  it was called, and calling it twice stores it once;
- it belongs to the Tensor, not to one value: after an in-place operation gives the Tensor a
  new node, `.grad` is the gradient of the new value (hooks registered with `register_hook`
  stay with the value they were registered on).
A retain-grad hook is marked by the attribute `retains`, a weak reference to its Tensor.
"""

__all__ = ['add_hook', 'add_retain_hook', 'retain_hook_of', 'move_retained']


def _is_retain(h):
    return getattr(h, 'retains', None) is not None


def add_hook(node, fn):
    """Add `fn` to `node`'s hooks, before its retain-grad hooks."""
    hooks = node.hooks
    if hooks is None:
        hooks = node.hooks = []
    i = len(hooks)
    while i and _is_retain(hooks[i - 1]):
        i -= 1
    hooks.insert(i, fn)


def retain_hook_of(node, t):
    """The retain-grad hook of Tensor `t` on `node`, or None."""
    for h in node.hooks or ():
        if _is_retain(h) and h.retains() is t:
            return h
    return None


def add_retain_hook(node, fn):
    """Add the retain-grad hook `fn` (marked with `fn.retains`) last."""
    if node.hooks is None:
        node.hooks = []
    node.hooks.append(fn)


def move_retained(t, old, new):
    """Tensor `t`'s value is now made by node `new` (an in-place operation), no longer by
    `old`: its retain-grad hook follows it."""
    if old is None or old is new or not old.hooks:
        return
    h = retain_hook_of(old, t)
    if h is None:
        return
    old.hooks.remove(h)
    if new is not None:
        add_retain_hook(new, h)
