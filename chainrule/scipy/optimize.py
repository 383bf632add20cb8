"""`scipy.optimize` with exact derivatives supplied: `minimize`, `least_squares`, `root`.

What this module lets you do: hand a function written with `chainrule.numpy` to SciPy's
optimizers and get its gradient, Hessian(-vector products), constraint Jacobians and
least-squares Jacobians supplied automatically -- with parameters that are any pytree of
arrays (a dict of weights, a tuple of a matrix and a vector), not just one flat vector:

    >>> import numpy as np, chainrule.numpy as cnp
    >>> from chainrule.scipy import optimize
    >>> def rosen(p):
    ...     return (1 - p['a']) ** 2 + 100 * cnp.sum((p['b'] - p['a'] ** 2) ** 2)
    >>> res = optimize.minimize(rosen, {'a': 0.0, 'b': np.zeros(1)}, method='trust-ncg')
    >>> bool(res.success), round(float(res.x['a']), 3), res.x['b'].round(3)
    (True, 1.0, array([1.]))

SciPy's names, arguments and defaults, with these differences: `jac=True` by default (the
function's value and gradient come from one `value_and_grad`); for `Newton-CG`, `trust-ncg`,
`trust-krylov` and `trust-constr` a Hessian-vector product (forward over reverse) is passed
as `hessp`, for `dogleg` and `trust-exact` the Hessian; constraints given as dicts or
`NonlinearConstraint`s without a Jacobian get one; `jit=True` compiles each derivative
function once. SciPy always sees float64 NumPy vectors (complex parameters as pairs of real
ones, so SciPy descends along the conjugate gradient, as every chainrule optimiser does) and
the result's `x` (and `jac`) come back in `x0`'s structure. `args` are passed to the function
unchanged and are not differentiated.
"""

import numpy as np

import chainrule as cr
from chainrule.tree import ravel_pytree

__all__ = ['minimize', 'least_squares', 'root']

_HESSP_METHODS = {'newton-cg', 'trust-ncg', 'trust-krylov', 'trust-constr'}
_HESS_METHODS = {'dogleg', 'trust-exact'}
_NO_GRADIENT_METHODS = {'nelder-mead', 'powell', 'cobyla', 'cobyqa'}


def _scipy_optimize():
    try:
        import scipy.optimize
    except ImportError as e:       # pragma: no cover - SciPy is a test dependency
        raise ImportError('chainrule.scipy.optimize drives SciPy\'s optimizers, and SciPy is not '
                          'installed: pip install "chainrule[scipy]"') from e
    return scipy.optimize


class _Flat:
    """`x0`'s pytree as a float64 vector for SciPy, and back (complex leaves as (re, im))."""

    def __init__(self, x0, op):
        flat, self.unravel_tree = ravel_pytree(x0)
        flat = np.asarray(flat)
        if flat.dtype.kind not in 'fc':
            flat = flat.astype(np.float64)
        self.complex = flat.dtype.kind == 'c'
        if self.complex:
            self.x0 = np.stack([flat.real, flat.imag], -1).ravel().astype(np.float64)
        else:
            self.x0 = flat.astype(np.float64)
        self.dtype = flat.dtype if flat.dtype.kind in 'fc' else np.dtype(np.float64)
        if self.x0.size == 0:
            raise ValueError(f'{op}: x0 has no parameters')

    def tree(self, v):
        """The pytree for SciPy's vector `v` (a NumPy array or a traced value)."""
        import chainrule.numpy as cnp
        if self.complex:
            v = v[0::2] + 1j * v[1::2]
        if cnp.result_type(v) != self.dtype:
            v = cnp.asarray(v).astype(self.dtype)
        return self.unravel_tree(v)

    def vector(self, tree):
        """A pytree of `x0`'s structure as SciPy's vector (gradients come back this way)."""
        flat = np.asarray(ravel_pytree(tree)[0])
        if self.complex:
            return np.stack([flat.real, flat.imag], -1).ravel().astype(np.float64)
        return flat.real.astype(np.float64)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _maybe_jit(f, jit):
    return cr.jit(f) if jit else f


def _scalar_fun(fun, flat, args, op):
    import chainrule.numpy as cnp

    def f(v):
        out = fun(flat.tree(v), *args)
        if np.ndim(out) != 0 and np.size(out) != 1:
            raise ValueError(f'{op}: the objective must return a scalar, got shape '
                             f'{np.shape(out)}')
        return cnp.reshape(out, ())
    return f


def _vector_fun(fun, flat, args):
    def f(v):
        return ravel_pytree(fun(flat.tree(v), *args))[0]
    return f


def _residual_problem(fun, x0, args, jit, op):
    """SciPy's module, the flattening of `x0`, the flat residual function and its jitted form."""
    flat = _Flat(x0, op)
    r = _vector_fun(fun, flat, args)
    return _scipy_optimize(), flat, r, _maybe_jit(r, jit)


def _constraints(constraints, flat, jit):
    """SciPy's constraints with Jacobians supplied (dicts and NonlinearConstraint)."""
    so = _scipy_optimize()
    single = isinstance(constraints, (dict, so.NonlinearConstraint, so.LinearConstraint))
    out = []
    for c in ([constraints] if single else list(constraints)):
        if isinstance(c, dict):
            c = dict(c)
            g = _vector_fun(c['fun'], flat, tuple(c.get('args', ())))
            c['fun'] = lambda v, *a, g=_maybe_jit(g, jit): _f64(g(v))
            if 'jac' not in c:
                jac = _maybe_jit(cr.jacrev(g), jit)
                c['jac'] = lambda v, *a, jac=jac: _f64(jac(v))
            c['args'] = ()
            out.append(c)
        elif isinstance(c, so.NonlinearConstraint):
            g = _maybe_jit(_vector_fun(c.fun, flat, ()), jit)
            jac = c.jac
            if isinstance(jac, str) or jac is None:
                jf = _maybe_jit(cr.jacrev(_vector_fun(c.fun, flat, ())), jit)
                jac = lambda v, jf=jf: _f64(jf(v))          # noqa: E731
            out.append(so.NonlinearConstraint(lambda v, g=g: _f64(g(v)), c.lb, c.ub, jac=jac,
                                              hess=c.hess, keep_feasible=c.keep_feasible))
        else:
            out.append(c)
    return out[0] if single else out


def _result(res, flat):
    res.x = flat.tree(_f64(res.x))
    if isinstance(getattr(res, 'jac', None), np.ndarray) and res.jac.shape == flat.x0.shape:
        res.jac = flat.tree(_f64(res.jac))
    return res


def minimize(fun, x0, args=(), method=None, jac=True, hess=None, hessp=None, bounds=None,
             constraints=(), tol=None, callback=None, options=None, *, jit=False):
    """`scipy.optimize.minimize` with the derivatives supplied by chainrule.

    Args:
        fun: `fun(x, *args) -> scalar`, written with `chainrule.numpy`.
        x0: the starting point, any pytree of arrays and numbers.
        args: extra arguments for `fun` (not differentiated).
        method: as SciPy (`'BFGS'`, `'L-BFGS-B'`, `'trust-ncg'`, `'SLSQP'`, ...).
        jac: True (default): the gradient from `value_and_grad`; or SciPy's own choices
            (a callable on the flat vector, `'2-point'`, False).
        hess, hessp: None (default): supplied where the method uses them (see the module
            docstring); or SciPy's own choices.
        bounds: as SciPy, on the flattened parameters.
        constraints: as SciPy; a dict or `NonlinearConstraint` without a Jacobian gets one
            (their functions take `x` in `x0`'s structure).
        tol, callback, options: as SciPy; `callback` receives `x` in `x0`'s structure.
        jit: compile the objective's derivative functions with `cr.jit`.

    Returns:
        SciPy's `OptimizeResult`, with `x` (and `jac`) in `x0`'s structure.
    """
    so = _scipy_optimize()
    flat = _Flat(x0, 'minimize')
    f = _scalar_fun(fun, flat, args, 'minimize')
    m = (method or '').lower()
    kw = {}
    if jac is True and m not in _NO_GRADIENT_METHODS:
        vg = _maybe_jit(cr.value_and_grad(f), jit)

        def objective(v):
            val, g = vg(v)
            return float(np.real(val)), _f64(g)
        kw['jac'] = True
    else:
        fj = _maybe_jit(f, jit)

        def objective(v):
            return float(np.real(fj(v)))
        if jac is not True:
            kw['jac'] = jac
    if hess is None and hessp is None:
        if m in _HESSP_METHODS:
            hvp = _maybe_jit(lambda v, t: cr.jvp(cr.grad(f), (v,), (t,))[1], jit)
            kw['hessp'] = lambda v, t: _f64(hvp(v, _f64(t)))
        elif m in _HESS_METHODS:
            h = _maybe_jit(cr.hessian(f), jit)
            kw['hess'] = lambda v: _f64(h(v))
    else:
        kw['hess'], kw['hessp'] = hess, hessp
    if constraints is not None and not (isinstance(constraints, (list, tuple))
                                        and len(constraints) == 0):
        kw['constraints'] = _constraints(constraints, flat, jit)
    if callback is not None:
        kw['callback'] = lambda xk, *a: callback(flat.tree(_f64(xk)), *a)
    res = so.minimize(objective, flat.x0, method=method, bounds=bounds, tol=tol,
                      options=options, **kw)
    return _result(res, flat)


def least_squares(fun, x0, jac=True, *, args=(), jac_sparsity='auto', jit=False, **kwargs):
    """`scipy.optimize.least_squares` with the residuals' Jacobian supplied by chainrule.

    Args:
        fun: `fun(x, *args) -> residuals` (any shape; flattened for SciPy).
        x0: the starting point, any pytree of arrays and numbers.
        jac: True (default): the exact Jacobian, as a `scipy.sparse` matrix (`cr.sparse`)
            when it is sparse (at most 10% nonzeros, 50 or more parameters, and a method
            other than 'lm'), else dense (`jacfwd` or `jacrev`, whichever is cheaper); or
            SciPy's own choices ('2-point', a callable).
        args: extra arguments for `fun` (not differentiated).
        jac_sparsity: 'auto' (above), True (always sparse), False (always dense), or a
            pattern to use for the sparse Jacobian.
        jit: compile the residual and Jacobian functions with `cr.jit`.
        **kwargs: SciPy's other arguments (`method`, `bounds`, `loss`, `x_scale`, ...).

    Returns:
        SciPy's `OptimizeResult`, with `x` in `x0`'s structure.
    """
    so, flat, r, rj = _residual_problem(fun, x0, args, jit, 'least_squares')
    m = int(np.size(r(flat.x0)))
    n = flat.x0.size
    if jac is True:
        sparse = jac_sparsity
        if isinstance(sparse, str):
            if sparse != 'auto':
                raise ValueError(f"least_squares: jac_sparsity must be 'auto', True, False or "
                                 f"a pattern, got {sparse!r}")
            sparse = False
            if kwargs.get('method', 'trf') != 'lm' and n >= 50:
                pattern = cr.sparse.jacobian_sparsity(r)(flat.x0)
                sparse = pattern.nnz <= 0.1 * m * n
        if sparse is not False:
            pattern = None if sparse is True else sparse
            sj = cr.sparse.jacobian(r, sparsity=pattern)
            jac = lambda v, *a: sj(_f64(v))          # noqa: E731
        else:
            dj = _maybe_jit(cr.jacfwd(r) if n <= m else cr.jacrev(r), jit)
            jac = lambda v, *a: _f64(dj(v)).reshape(m, n)          # noqa: E731
    res = so.least_squares(lambda v: _f64(rj(v)), flat.x0, jac=jac, **kwargs)
    return _result(res, flat)


def root(fun, x0, args=(), method='hybr', jac=True, tol=None, callback=None, options=None, *,
         jit=False):
    """`scipy.optimize.root` with the Jacobian supplied by chainrule (for the methods that use
    one: 'hybr', 'lm'; the quasi-Newton methods get the residual alone).

    Args:
        fun: `fun(x, *args) -> residual`, of as many elements as `x` has.
        x0: the starting point, any pytree of arrays and numbers.
        method, tol, callback, options: as SciPy; `callback` gets `x` in `x0`'s structure.
        jac: True (default): the exact Jacobian (`jacfwd`); or SciPy's own choices.
        jit: compile the residual and its Jacobian with `cr.jit`.

    Returns:
        SciPy's `OptimizeResult`, with `x` in `x0`'s structure.
    """
    so, flat, r, rj = _residual_problem(fun, x0, args, jit, 'root')
    kw = {}
    if jac is True and method in ('hybr', 'lm'):
        J = _maybe_jit(cr.jacfwd(r), jit)

        def residual(v):
            return _f64(rj(v)), _f64(J(v))
        kw['jac'] = True
    else:
        def residual(v):
            return _f64(rj(v))
        if jac is not True:
            kw['jac'] = jac
    if callback is not None:
        kw['callback'] = lambda xk, *a: callback(flat.tree(_f64(xk)), *a)
    res = so.root(residual, flat.x0, method=method, tol=tol, options=options, **kw)
    return _result(res, flat)
