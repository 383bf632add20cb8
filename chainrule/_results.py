"""Results are the caller's: the one place the functional transforms hand their results out.

What it lets you do: write into what `grad`, `value_and_grad`, `vjp` (and its `vjp_fn`), `jvp`,
`vmap`, `jacfwd`, `jacrev` or `hessian` returns, as into any NumPy result, without changing
your inputs, another result, or what a later call returns:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> x = np.ones(3)
    >>> g = cr.grad(lambda v: cnp.sum(v))(x)      # sum's rule broadcasts: a read-only view
    >>> g *= 0.5; g                               # here, a writable array of its own
    array([0.5, 0.5, 0.5])

A result is copied only when it has to be: when it is read-only (a broadcast), when it may
share memory with an input (the identity function, a reshape of an input) or with an earlier
result (the same array twice in a pytree), or when the transform says it must be (an output
a `vjp` keeps for its backward pass, a constant the function returned). Everything else is an
array made by this call and handed out as it is.

`jit` decides the same at compile time, in the generated code's `return`
(`chainrule.jit.numpy_codegen`), so a jitted call pays nothing for it.
"""

import numpy as np

__all__ = ['owned']


def _owner(a):
    """The object owning `a`'s memory (NumPy points a view's `base` at the owner)."""
    b = a.base
    while b is not None:
        a = b
        b = getattr(a, 'base', None)
    return a


def owned(results, given=(), copy=()):
    """`results` (a flat list), each an array the caller may write into.

    Args:
        results: the flat list of results; entries that are not arrays pass unchanged.
        given: the caller's arrays (inputs, cotangents, tangents) that no result may alias.
        copy: indices of results to copy whatever they look like (what the library keeps, or
            a constant of the function: the next call would hand it out again).

    Returns:
        A new list.
    """
    seen = {}                 # id(memory owner) -> the arrays on it (which keep it alive)
    for x in given:
        if isinstance(x, np.ndarray):
            k = id(_owner(x))
            if k in seen:
                seen[k].append(x)
            else:
                seen[k] = [x]
    out = []
    for i, r in enumerate(results):
        if isinstance(r, np.ndarray):
            k = id(_owner(r))
            on = seen.get(k)
            if (copy and i in copy) or not r.flags.writeable or (
                    on and any(r is o or np.may_share_memory(r, o) for o in on)):
                r = r.copy()
                k, on = id(r), None
            if on:
                on.append(r)
            else:
                seen[k] = [r]
        out.append(r)
    return out


def owned_copies(tree):
    """A pytree with every array leaf copied: what a function returned besides its result
    (`has_aux`), which may be its inputs, its constants or values the library keeps."""
    from chainrule.tree import tree_flatten, tree_unflatten
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, owned(leaves, copy=range(len(leaves))))
