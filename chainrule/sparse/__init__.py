"""Sparse Jacobians and Hessians: `cr.sparse.jacobian(f)(x)`, `cr.sparse.hessian(f)(x)`.

What this module lets you do: get the Jacobian of a function whose outputs each depend on a
few inputs (a discretised PDE residual, a chain of local interactions) as a `scipy.sparse`
matrix, for the price of a handful of Jacobian-vector products instead of one per input:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> def residual(u):                      # -u'' + u**3 on a grid, zero boundary values
    ...     p = cnp.concatenate([np.zeros(1), u, np.zeros(1)])
    ...     return 2 * u - p[:-2] - p[2:] + u ** 3
    >>> J = cr.sparse.jacobian(residual)(np.linspace(0, 1, 1000))
    >>> J.shape, J.nnz, cr.sparse.jacobian(residual).colours(np.zeros(1000))[1]
    ((1000, 1000), 2998, 3)

Three steps, each replaceable:

1. **Pattern** (`jacobian_sparsity`): `f` is staged once per input shape (as `jit` does) and
   each primitive's dependency rule is applied in order (`chainrule.sparse.patterns`): exact
   structure, no sampling, no evaluation of `f`. A primitive without a rule makes its output
   depend on everything its inputs depend on (dense, never wrong). Or pass `sparsity=`.
2. **Colouring** (`chainrule.sparse.colouring`): columns that share no row get one colour.
3. **Compressed evaluation**: one `jvp` per column colour (`mode='fwd'`), batched with `vmap`,
   or one `vjp` per row colour (`mode='rev'`); `'auto'` picks the fewer. Entries are read
   off the compressed products at the pattern's positions.

The pattern and colouring are computed once per input shape and dtype and reused. SciPy is
needed for the `scipy.sparse` result (`pip install chainrule[scipy]`).
"""

import numpy as np

from chainrule.sparse.colouring import colour_columns, colour_rows

__all__ = ['jacobian', 'hessian', 'jacobian_sparsity', 'hessian_sparsity', 'colour_columns',
           'colour_rows']


def _scipy_sparse():
    try:
        import scipy.sparse
    except ImportError:     # pragma: no cover - SciPy is a test dependency
        raise ImportError('chainrule.sparse returns scipy.sparse matrices: SciPy is needed '
                          '(pip install "chainrule[scipy]")') from None
    return scipy.sparse


def _flat_fun(f, x):
    """`f` as a function of the flattened `x`, returning a flat array, and `x` flattened."""
    import chainrule.numpy as cnp
    x = np.asarray(x)
    if x.dtype.kind not in 'fc':
        x = x.astype(np.float64)
    shape = x.shape

    def flat(v):
        return cnp.ravel(f(cnp.reshape(v, shape)))
    return flat, x.ravel()


def _staged_pattern(flat, v):
    from chainrule.jit import make_graph
    from chainrule.sparse.patterns import jacobian_pattern
    graph = make_graph(flat)(v)
    if len(graph.outvars) != 1:
        raise ValueError(f'sparse.jacobian: the function must return one array, got '
                         f'{len(graph.outvars)} outputs')
    return jacobian_pattern(graph)


def _user_pattern(sparsity, m, n):
    sp = _scipy_sparse()
    p = sp.csr_matrix(sparsity, dtype=np.int32)
    if p.shape != (m, n):
        raise ValueError(f'sparse.jacobian: sparsity has shape {p.shape}, but the Jacobian of '
                         f'f at x is ({m}, {n}) (outputs, inputs; both flattened)')
    p.data[:] = 1
    p.eliminate_zeros()
    return p


class _Sparse:
    """The callable `cr.sparse.jacobian(f)` returns; caches pattern and colouring by shape."""

    def __init__(self, f, sparsity, mode, kind):
        if mode not in ('auto', 'fwd', 'rev'):
            raise ValueError(f"sparse.{kind}: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
        self.f, self.sparsity, self.mode, self.kind = f, sparsity, mode, kind
        self._cache = {}

    def _plan(self, x):
        flat, v = _flat_fun(self.f, x)
        key = (v.shape, v.dtype)
        if key not in self._cache:
            if self.sparsity is not None:
                from chainrule.jit import make_graph
                m = int(np.prod(make_graph(flat)(v).outvars[0].aval.shape))
                pattern = _user_pattern(self.sparsity, m, v.size)
            else:
                pattern = _staged_pattern(flat, v)
            cols, ncols = colour_columns(pattern)
            rows, nrows = colour_rows(pattern)
            mode = self.mode
            if mode == 'auto':
                mode = 'rev' if nrows < ncols else 'fwd'
            plan = (pattern, mode, (cols, ncols) if mode == 'fwd' else (rows, nrows))
            self._cache[key] = plan
        return flat, v, self._cache[key]

    def sparsity_pattern(self, x):
        """The pattern used at `x` (a `scipy.sparse.csr_matrix` of ones)."""
        return self._plan(x)[2][0]

    def colours(self, x):
        """`(colours, count)`: the colouring used at `x` (of columns in 'fwd' mode, of rows
        in 'rev')."""
        return self._plan(x)[2][2]

    def __call__(self, x):
        import chainrule as cr
        sp = _scipy_sparse()
        flat, v, (pattern, mode, (colours, count)) = self._plan(x)
        coo = pattern.tocoo()
        r, c = coo.row, coo.col
        if mode == 'fwd':
            seeds = np.zeros((count, v.size), dtype=v.dtype)
            seeds[colours, np.arange(v.size)] = 1
            comp = cr.vmap(lambda s: cr.jvp(flat, (v,), (s,))[1])(seeds)     # (count, m)
            vals = np.asarray(comp)[colours[c], r]
        else:
            m = pattern.shape[0]
            _, pull = cr.vjp(flat, v)
            seeds = np.zeros((count, m), dtype=v.dtype)
            seeds[colours, np.arange(m)] = 1
            comp = cr.vmap(lambda w: pull(w)[0])(seeds)                        # (count, n)
            vals = np.asarray(comp)[colours[r], c]
        return sp.csr_matrix((vals, (r, c)), shape=pattern.shape)


def jacobian(f, *, sparsity=None, mode='auto'):
    """The Jacobian of `f` as a `scipy.sparse.csr_matrix`, by compressed differentiation.

    Args:
        f: a function of one array (any shape) returning one array; the Jacobian has a row per
            output element and a column per input element (both flattened in C order), as
            `jacfwd(f)(x).reshape(m, n)`.
        sparsity: optional pattern (anything `scipy.sparse.csr_matrix` accepts, shape (m, n));
            by default it is detected from the program.
        mode: 'fwd' (one `jvp` per column colour), 'rev' (one `vjp` per row colour) or 'auto'.

    Returns:
        `jac(x) -> scipy.sparse.csr_matrix`; `jac.sparsity_pattern(x)` and `jac.colours(x)`
        show the pattern and colouring used.
    """
    return _Sparse(f, sparsity, mode, 'jacobian')


def hessian(f, *, sparsity=None):
    """The Hessian of the scalar function `f` as a `scipy.sparse.csr_matrix`: the sparse
    Jacobian (forward over reverse) of its gradient, whose pattern is detected by propagating
    dependencies through the gradient program itself.

    Args:
        f: a function of one array returning a scalar.
        sparsity: optional pattern of the Hessian, shape (n, n).

    Returns:
        `hess(x) -> scipy.sparse.csr_matrix` of shape (x.size, x.size).
    """
    import chainrule as cr
    return _Sparse(cr.grad(f), sparsity, 'fwd', 'hessian')


def jacobian_sparsity(f):
    """`pattern(x)`: the detected sparsity pattern of `f`'s Jacobian at inputs shaped as `x`."""
    jac = jacobian(f)
    return jac.sparsity_pattern


def hessian_sparsity(f):
    """`pattern(x)`: the detected sparsity pattern of the Hessian of scalar `f`."""
    return hessian(f).sparsity_pattern
