"""Implicit differentiation: derivatives of solutions of equations, without unrolling solvers.

What this module lets you do: differentiate the root of `f(x, params) = 0`
(`cr.custom_root`) or the fixed point of `x = f(x, params)` (`cr.fixed_point`) with respect to
`params`, at the cost of one linear solve at the solution -- however many iterations the
solver took, and whatever solver it was (its iterations are never recorded):

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> def babylonian(x, a):                  # the fixed point is sqrt(a)
    ...     return (x + a / x) / 2
    >>> round(float(cr.fixed_point(babylonian, 1.0, 2.0)), 12)
    1.414213562373
    >>> round(float(cr.grad(lambda a: cr.fixed_point(babylonian, 1.0, a))(2.0)), 12)
    0.353553390593

The mathematics (the implicit function theorem). At a root x*(p) of f(x, p) = 0 with an
invertible `A = df/dx`, dx*/dp = -A^{-1} df/dp. So reverse mode maps a cotangent g of x* to
`-(df/dp)^T w` with `A^T w = g` (one transposed linear solve, then one VJP of f in `p`), and
forward mode is the transpose of that (`custom_vjp` provides it). A fixed point of F is a root
of `F(x, p) - x`. The solution is computed on concrete values by any solver; the derivative
rules are written with `chainrule.numpy`. First derivatives (`grad`, `jvp`, Jacobians) are
exact; the solver runs on concrete values, so not inside `jit` or `vmap`.

`x` and `params` may be pytrees of arrays; the dense linear solve works on them flattened
(`ravel_pytree`), which suits up to a few thousand unknowns. Pass `tangent_solve` for larger or
structured systems.
"""

import numpy as np

from chainrule.core import concrete
from chainrule.custom import custom_vjp
from chainrule.tree import ravel_pytree, tree_map

__all__ = ['custom_root', 'fixed_point']


def _as_float(x):
    return tree_map(lambda v: v if np.asarray(v).dtype.kind in 'fc'
                    else np.asarray(v, dtype=np.float64), x)


def newton_solve(f, x0, *, tol=1e-12, max_iter=100):
    """Newton's method on `f(x) = 0` with the dense Jacobian (chainrule's `jacfwd`), from x0
    (a pytree); stops when the residual's largest entry is below `tol`."""
    import chainrule as cr
    flat0, unravel = ravel_pytree(x0)

    def g(v):
        return ravel_pytree(f(unravel(v)))[0]
    v = np.asarray(flat0, dtype=np.result_type(flat0, np.float64))
    r = np.asarray(g(v))
    for _ in range(max_iter):
        norm = np.max(np.abs(r), initial=0.0)
        if norm < tol:
            break
        try:
            step = np.linalg.solve(np.atleast_2d(np.asarray(cr.jacfwd(g)(v))), r)
        except np.linalg.LinAlgError:
            break                   # a singular Jacobian: reported below
        t = 1.0                     # backtracking: halve the step until the residual shrinks
        while t > 1e-4:
            r_new = np.asarray(g(v - t * step))
            if np.max(np.abs(r_new), initial=0.0) < norm:
                break
            t /= 2
        v, r = v - t * step, r_new
    if not np.max(np.abs(r), initial=0.0) < tol:
        raise RuntimeError(f'custom_root: Newton did not converge in {max_iter} iterations '
                           f'(residual {np.max(np.abs(r)):.3g} > tol {tol}); pass solve=')
    return unravel(v)


def dense_tangent_solve(f_x, x, g, transpose=True):
    """`w` with `A^T w = g` (or `A w = g`), `A` the Jacobian of `f_x` at `x`, densely; all
    pytrees of `x`'s structure. Written with `chainrule.numpy`, so it can be differentiated."""
    import chainrule as cr
    import chainrule.numpy as cnp
    flat_x, unravel = ravel_pytree(x)
    flat_g, _ = ravel_pytree(g)

    def h(v):
        return ravel_pytree(f_x(unravel(v)))[0]
    A = cr.jacfwd(h)(flat_x)
    return unravel(cnp.linalg.solve(cnp.transpose(A) if transpose else A, flat_g))


def _root_impl(f, solve, tangent_solve, x0, params):
    # the solver sees plain arrays: its iterations are never recorded by any transform (the
    # derivative comes from `_root_bwd`), and it may test convergence on the values
    p = tree_map(concrete, params)
    return solve(lambda x: f(x, p), tree_map(concrete, x0))


def _root_fwd(f, solve, tangent_solve, x0, params):
    x = _root_impl(f, solve, tangent_solve, x0, params)
    return x, (x, params)


def _root_bwd(f, solve, tangent_solve, res, g):
    import chainrule as cr
    x, params = res
    w = tangent_solve(lambda v: f(v, params), x, g)
    _, pull = cr.vjp(lambda p: f(x, p), params)
    (ct,) = pull(tree_map(lambda v: -v, w))
    return None, ct


_root = custom_vjp(_root_impl, nondiff_argnums=(0, 1, 2))
_root.defvjp(_root_fwd, _root_bwd)


def custom_root(f, x0, params, *, solve=None, tangent_solve=None, tol=1e-12, max_iter=100):
    """The root `x*` of `f(x, params) = 0` near `x0`, differentiable in `params` by the
    implicit function theorem (JAX's `lax.custom_root`, with `params` explicit).

    Args:
        f: `f(x, params) -> residual`, the residual of `x`'s structure.
        x0: the initial guess (a pytree of arrays); it gets no gradient.
        params: a pytree of arrays; gradients flow to it.
        solve: optional `solve(g, x0) -> x` finding a root of the one-argument function `g`
            (on concrete values; any algorithm). Default: Newton with the dense Jacobian.
        tangent_solve: optional `tangent_solve(g, x, ct) -> w` solving `A^T w = ct`, `A` the
            Jacobian of the one-argument `g` at `x`. Default: a dense solve.
        tol, max_iter: for the default Newton solver.

    Returns:
        `x*`, of `x0`'s structure.
    """
    if solve is None:
        def solve(g, x):
            return newton_solve(g, x, tol=tol, max_iter=max_iter)
    return _root(f, solve, tangent_solve or dense_tangent_solve, _as_float(x0), params)


def _iterate(F, x0, tol, max_iter):
    """Iterate `x <- F(x)` until successive iterates differ by less than `tol` (relative)."""
    x = x0
    for _ in range(max_iter):
        new = F(x)
        a, _ = ravel_pytree(new)
        b, _ = ravel_pytree(x)
        a, b = np.asarray(a), np.asarray(b)
        if np.max(np.abs(a - b), initial=0.0) <= tol * (1 + np.max(np.abs(a), initial=0.0)):
            return new
        x = new
    raise RuntimeError(f'fixed_point: no convergence in {max_iter} iterations (last change '
                       f'{np.max(np.abs(a - b)):.3g}); raise max_iter or check that f is a '
                       'contraction near the fixed point')


def fixed_point(f, x0, params, *, tol=1e-12, max_iter=1000, tangent_solve=None):
    """The fixed point `x* = f(x*, params)` reached by iterating `f` from `x0`, differentiable
    in `params` by the implicit function theorem (HIPS autograd's `fixed_point`): the
    gradient solves `(I - df/dx)^T w = g` at `x*` instead of unrolling the iterations.

    Args:
        f: `f(x, params) -> x`, a contraction near the fixed point.
        x0: the starting point (a pytree of arrays); it gets no gradient.
        params: a pytree of arrays; gradients flow to it.
        tol: iteration stops when successive iterates differ by at most
            `tol * (1 + max|x|)`.
        max_iter: the most iterations before a RuntimeError.
        tangent_solve: as for `custom_root` (for the residual `f(x, params) - x`).

    Returns:
        `x*`, of `x0`'s structure.
    """
    def residual(x, p):
        return tree_map(lambda a, b: a - b, f(x, p), x)

    def solve(g, x):
        return _iterate(lambda v: tree_map(lambda a, b: a + b, g(v), v), x, tol, max_iter)
    return custom_root(residual, x0, params, solve=solve, tangent_solve=tangent_solve)
