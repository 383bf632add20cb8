"""`scipy.integrate`'s ODE solvers on chainrule: `odeint` and `solve_ivp`, differentiable in the
initial state, the time points and every parameter passed through `args`, by the adjoint method.

What this module lets you do: fit the parameters of an ODE model to data with `grad`, with
memory that does not grow with the number of solver steps.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> from chainrule.scipy.integrate import odeint
    >>> decay = lambda y, t, k: -k * y
    >>> t = np.array([0.0, 1.0])
    >>> loss = lambda k: odeint(decay, np.array([1.0]), t, args=(k,))[-1, 0]   # = exp(-k)
    >>> round(float(cr.grad(loss)(0.5)), 6)                                     # -exp(-0.5)
    -0.606531

The solver (`chainrule.scipy._rk`). An adaptive explicit Runge-Kutta method in NumPy:
Dormand-Prince 5(4) ('RK45', the default) or Dormand-Prince 8(5,3) ('DOP853'), with Hairer's
error norm, step-size control and starting step. It steps to each requested time exactly (no
interpolation), carrying the step size across.

Derivatives. One primitive, `odeint`, solves `dy/dt = f(y, t, *args)` at the times `t`:
- its VJP is the adjoint method. Between consecutive output times the adjoint `a = dL/dy`
  obeys `da/dt = -a df/dy`, and `dL/dargs = integral a df/dargs dt`; both are integrated
  backwards in time together with `y` itself, as one augmented ODE -- by binding the same
  primitive on the augmented right-hand side (its vector-Jacobian products come from
  `chainrule.vjp` of `f`). At each output time the cotangent of that output is added to `a`.
  The time points: `dL/dt_i = g_i . f(y_i, t_i)`, and `dL/dt_0 = -a(t_0) . f(y_0, t_0)` (moving
  the start time with the start value fixed shifts the whole trajectory). Memory holds one
  state per output time, never per step.
- its JVP is forward sensitivity analysis: the tangent `d` of the trajectory obeys
  `dd/dt = df/dy d + df/dargs dargs`, integrated with `y` as one augmented ODE (again the same
  primitive), starting from `d(t_0) = dy_0 - f(y_0, t_0) dt_0`, plus `f(y_i, t_i) dt_i` at each
  output.
Because both rules bind the primitive again, derivatives of derivatives (`hessian`, `jvp` of
`grad`) follow by composition; each level is accurate to the solver's tolerance (the adjoint
gradient is that of the exact ODE solution, not of the discrete steps). `vmap` integrates the
stacked systems as one (a vectorised right-hand side, one step-size sequence for the batch).

`func` must be written with `chainrule.numpy` (it is differentiated) and take differentiable
parameters through `args`, not by closing over them: the solver calls it on plain arrays.
"""

import numpy as np

from chainrule import ops
from chainrule.core import (ChainruleError, DTypeError, PerArg, Primitive, ShapeError, Tracer,
                            bind, concrete)
from chainrule.interpreters.batching import moveaxis, vmap_flat
from chainrule.interpreters.forward import jvp_flat
from chainrule.interpreters.reverse import vjp_flat
from chainrule.scipy._rk import (_METHODS, ODEIntegrationError, _as_rhs_value,  # noqa: F401
                                 _integrate, _replay)
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['odeint', 'solve_ivp', 'OdeResult', 'ODEIntegrationError']


# --- the primitive ----------------------------------------------------------------------------

class _Ode:
    """The static parameters of one `odeint` primitive: the right-hand side `rhs(y, t, *dyn)`
    and the solver settings. Derived systems (adjoint, tangent, batched) are cached on it, so
    repeated rules reuse one object."""

    __slots__ = ('rhs', 'rtol', 'atol', 'mxstep', 'hmax', 'method', 'name', '_derived',
                 '_last')

    def __init__(self, rhs, rtol, atol, mxstep, hmax, method, name='func'):
        self.rhs, self.rtol, self.atol = rhs, rtol, atol
        self.mxstep, self.hmax, self.method, self.name = mxstep, hmax, method, name
        self._derived = {}
        self._last = None

    def __repr__(self):
        return f'ode({self.name}, {self.method}, rtol={self.rtol}, atol={self.atol})'

    def derived(self, key, make_rhs):
        d = self._derived.get(key)
        if d is None:
            d = self._derived[key] = _Ode(make_rhs(), self.rtol, self.atol, self.mxstep,
                                          self.hmax, self.method, f'{key}({self.name})')
        return d

    def f(self, y, t, dyn):
        return _as_rhs_value(self.rhs(y, t, *dyn), y)


def _odeint_impl(y0, t, *dyn, ode):
    def f(y, s):
        out = ode.f(y, s, dyn)
        if isinstance(out, Tracer):
            raise ChainruleError(
                f'odeint: {ode.name} uses a traced value that is not one of its arguments: it '
                'closes over a value being differentiated. Pass such values through args=, '
                'e.g. odeint(lambda y, t, k: -k * y, y0, t, args=(k,)).')
        return out
    ys, _ = _integrate(f, y0, np.asarray(t), _METHODS[ode.method], ode.rtol, ode.atol,
                       ode.mxstep, ode.hmax)
    return ys


def _odeint_shape(y0, t, *dyn, ode):
    return (t.shape[0],) + tuple(y0.shape), y0.dtype


def _is_float(x):
    return np.dtype(ops.dtype_of(x)).kind in 'fc'


def _zeros(x):
    return np.zeros(ops.shape_of(x), ops.dtype_of(x))


def _pack(parts):
    return ops.concatenate([ops.reshape(p, (-1,)) if isinstance(p, Tracer) else
                            np.reshape(np.asarray(p), (-1,)) for p in parts], 0)


def _unpack(v, shapes):
    out, i = [], 0
    lead = tuple(ops.shape_of(v))[:-1]
    for s in shapes:
        n = int(np.prod(s, dtype=int))
        out.append(ops.reshape(ops.getitem(v, (Ellipsis, slice(i, i + n))), lead + tuple(s)))
        i += n
    return out


def _adjoint_rhs(ode, y_shape, dyn_shapes, diff):
    """The augmented system integrated backwards, in reversed time s = -t, on the packed state
    (y, a, args_bar): dy/ds = -f, da/ds = a df/dy, dargs_bar/ds = a df/dargs."""
    shapes = [y_shape, y_shape] + [dyn_shapes[i] for i in diff]

    def rhs(state, s, *dyn):
        y, a = _unpack(state, shapes)[:2]
        t = -s

        def f(y_, *p):
            full = list(dyn)
            for i, v in zip(diff, p):
                full[i] = v
            return [ode.f(y_, t, full)]
        (dy,), pull = vjp_flat(f, [y] + [dyn[i] for i in diff])
        cts = pull([a])
        cts = [_zeros(x) if c is None else c for c, x in zip(cts, [y] + [dyn[i] for i in diff])]
        return _pack([-dy] + cts)
    return rhs


def _odeint_all_cts(g, ys, y0, t, dyn, ode):
    n = ops.shape_of(t)[0]
    diff = [i for i, d in enumerate(dyn) if _is_float(d)]
    y_shape = tuple(ops.shape_of(y0))
    adj = ode.derived(('adjoint', tuple(diff)), lambda: _adjoint_rhs(
        ode, y_shape, [tuple(ops.shape_of(d)) for d in dyn], diff))
    shapes = [y_shape, y_shape] + [tuple(ops.shape_of(dyn[i])) for i in diff]
    gi = [ops.getitem(g, i) for i in range(n)]
    a = gi[n - 1]
    p_bar = [_zeros(dyn[i]) for i in diff]
    t_bar = [None] * n
    for i in range(n - 1, 0, -1):
        ti, tp = ops.getitem(t, i), ops.getitem(t, i - 1)
        yi = ops.getitem(ys, i)
        t_bar[i] = ops.sum(ops.mul(ode.f(yi, ti, dyn), gi[i]))
        seg = ops.concatenate([ops.reshape(ops.neg(ti), (1,)), ops.reshape(ops.neg(tp), (1,))], 0)
        out = bind(odeint_p, _pack([yi, a] + p_bar), seg, *dyn, ode=adj)
        _, a, *p_bar = _unpack(ops.getitem(out, 1), shapes)
        if i > 1:
            a = ops.add(a, gi[i - 1])
    t0 = ops.getitem(t, 0)
    if n > 1:
        t_bar[0] = ops.neg(ops.sum(ops.mul(ode.f(y0, t0, dyn), a)))
        a = ops.add(a, gi[0])
    else:
        t_bar[0] = np.zeros((), ops.dtype_of(t))
    t_bar = ops.concatenate([ops.reshape(ops.astype(v, ops.dtype_of(t)), (1,)) for v in t_bar], 0)
    dyn_bar = [None] * len(dyn)
    for i, pb in zip(diff, p_bar):
        dyn_bar[i] = pb
    return [a, t_bar] + dyn_bar


def _odeint_vjp(i, g, ys, y0, t, *dyn, ode):
    # every cotangent comes from one backward solve: computed for the first rule called on
    # this node and kept (keyed by the node's g and output) for the others
    last = ode._last
    if last is None or last[0] is not g or last[1] is not ys:
        last = ode._last = (g, ys, _odeint_all_cts(g, ys, y0, t, dyn, ode))
    ct = last[2][i]
    return _zeros(((y0, t) + dyn)[i]) if ct is None else ct


def _tangent_rhs(ode, y_shape, diff):
    """The system with its forward sensitivity: d/dt (y, d) = (f, df/dy d + df/dargs dargs); the
    tangents of the differentiable args follow the args as extra arguments."""
    def rhs(state, t, *dyn_and_tangents):
        nd = len(dyn_and_tangents) - len(diff)
        dyn, tdyn = list(dyn_and_tangents[:nd]), list(dyn_and_tangents[nd:])
        y, d = _unpack(state, [y_shape, y_shape])

        def f(y_, *p):
            full = list(dyn)
            for i, v in zip(diff, p):
                full[i] = v
            return [ode.f(y_, t, full)]
        (dy,), (ddy,) = jvp_flat(f, [y] + [dyn[i] for i in diff], [d] + tdyn)
        return _pack([dy, ddy])
    return rhs


def _odeint_jvp(tangents, ys, y0, t, *dyn, ode):
    ty0, tt, *tdyn = tangents
    diff = [i for i, d in enumerate(dyn) if _is_float(d)]
    y_shape = tuple(ops.shape_of(y0))
    n = ops.shape_of(t)[0]
    moves_t = isinstance(tt, Tracer) or bool(np.any(tt))
    d0 = ty0
    if moves_t:
        d0 = ops.sub(d0, ops.mul(ode.f(y0, ops.getitem(t, 0), dyn), ops.getitem(tt, 0)))
    tan = ode.derived(('tangent', tuple(diff)), lambda: _tangent_rhs(ode, y_shape, diff))
    out = bind(odeint_p, _pack([y0, d0]), t, *dyn, *[tdyn[i] for i in diff], ode=tan)
    dys = _unpack(out, [y_shape, y_shape])[1]
    if moves_t:
        moved = [ops.reshape(ops.mul(ode.f(ops.getitem(ys, i), ops.getitem(t, i), dyn),
                                     ops.getitem(tt, i)), (1,) + y_shape) for i in range(n)]
        dys = ops.add(dys, ops.concatenate(moved, 0))
    return dys


def _batched_rhs(ode, dims):
    """The right-hand side of a stack of systems: `ode.rhs` under vmap (state batched; the
    args batched where `dims` says so)."""
    def rhs(state, t, *dyn):
        outs, out_dims, _ = vmap_flat(lambda y, *p: [ode.f(y, t, p)], [state] + list(dyn),
                                      [0] + list(dims))
        o, d = outs[0], out_dims[0]
        if d is None:
            return ops.broadcast_to(o, tuple(ops.shape_of(state)))
        return moveaxis(o, d, 0)
    return rhs


def _odeint_batch(args, dims, *, ode):
    y0, t, *dyn = args
    d_y0, d_t, *d_dyn = dims
    size = next(ops.shape_of(a)[0] for a, d in zip(args, dims) if d is not None)
    if d_t is not None:
        # each example has its own output times: solve them one at a time
        outs = []
        for b in range(size):
            one = [ops.getitem(a, b) if d is not None else a for a, d in zip(args, dims)]
            o = bind(odeint_p, *one, ode=ode)
            outs.append(ops.reshape(o, (1,) + tuple(ops.shape_of(o))))
        return ops.concatenate(outs, 0), 0
    if d_y0 is None:
        y0 = ops.broadcast_to(y0, (size,) + tuple(ops.shape_of(y0)))
    key = ('vmap', tuple(d is not None for d in d_dyn))
    bat = ode.derived(key, lambda: _batched_rhs(ode, [0 if d is not None else None
                                                      for d in d_dyn]))
    return bind(odeint_p, y0, t, *dyn, ode=bat), 1


odeint_p = Primitive('odeint', _odeint_impl, shape=_odeint_shape, vjp=PerArg(_odeint_vjp),
                     jvp=_odeint_jvp, batch=_odeint_batch)


# --- SciPy's functions ------------------------------------------------------------------------

def _split_args(args):
    """args -> (dynamic leaves: numbers and arrays, rebuild(dynamic) -> args)."""
    leaves, tree = tree_flatten(tuple(args))
    dyn_pos = [k for k, v in enumerate(leaves)
               if isinstance(v, (Tracer, np.ndarray, np.generic, int, float, complex))
               and not isinstance(v, bool)]
    dyn = [leaves[k] if isinstance(leaves[k], Tracer) else np.asarray(leaves[k])
           for k in dyn_pos]

    def rebuild(values):
        full = list(leaves)
        for k, v in zip(dyn_pos, values):
            full[k] = v
        return tree_unflatten(tree, full)
    return dyn, rebuild


def _solve(name, func, y0, t, args, rtol, atol, mxstep, hmax, method):
    if method not in _METHODS:
        raise ValueError(f'{name}: method must be one of {sorted(_METHODS)}, got {method!r}')
    y0 = y0 if isinstance(y0, Tracer) else np.asarray(y0)
    if np.dtype(ops.dtype_of(y0)).kind not in 'fc':
        y0 = ops.astype(y0, np.float64) if isinstance(y0, Tracer) else y0.astype(np.float64)
    t = t if isinstance(t, Tracer) else np.asarray(t)
    if len(ops.shape_of(t)) != 1 or ops.shape_of(t)[0] < 1:
        raise ShapeError(f'{name}: t must be a 1-d array of at least one time, got shape '
                         f'{tuple(ops.shape_of(t))}')
    if np.dtype(ops.dtype_of(t)).kind == 'c':
        raise DTypeError(f'{name}: the times t must be real, got dtype {ops.dtype_of(t)} (their '
                         'imaginary part would be dropped)')
    real = np.zeros(0, ops.dtype_of(y0)).real.dtype      # times in y0's real precision
    t = ops.astype(t, real) if isinstance(t, Tracer) else t.astype(real)
    if not isinstance(t, Tracer) and ops.shape_of(t)[0] > 1:
        d = np.diff(t)
        if not (np.all(d >= 0) or np.all(d <= 0)):
            raise ValueError(f'{name}: the times t must be monotonic (all increasing or all '
                             'decreasing)')
    dyn, rebuild = _split_args(args)
    rhs = (lambda y, s, *p: func(y, s, *rebuild(p)))
    ode = _Ode(rhs, float(rtol), float(atol), int(mxstep), float(hmax), method,
               getattr(func, '__name__', 'func'))
    return bind(odeint_p, y0, t, *dyn, ode=ode)


def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, ml=None, mu=None,
           rtol=None, atol=None, tcrit=None, h0=0.0, hmax=0.0, hmin=0.0, ixpr=0, mxstep=0,
           mxhnil=0, mxordn=12, mxords=5, printmessg=0, tfirst=False, *, method='RK45'):
    """Integrate `dy/dt = func(y, t, *args)` from `y(t[0]) = y0`, as SciPy's `odeint`.

    Differentiable (to any order) in `y0`, `t` and every array or number in `args`, by the
    adjoint method (see the module docstring).

    Args:
        func: `func(y, t, *args)` (or `func(t, y, *args)` with `tfirst=True`) returning dy/dt
            with y's shape (a list of components is stacked), written with `chainrule.numpy`.
        y0: the initial state, any shape. t: the output times (monotonic; t[0] is the start).
        args: extra arguments of func (any pytree; its arrays and numbers are differentiable).
        rtol, atol: tolerances (SciPy's default 1.49012e-8 each).
        hmax: the largest step (0: unbounded). mxstep: the most steps between two output times
            (0: 5000).
        method: chainrule's extension: 'RK45' (Dormand-Prince 5(4), default) or 'DOP853'.
            SciPy's LSODA-specific options (Dfun, ml, mu, tcrit, hmin, ...) are accepted and
            ignored.

    Returns:
        y at each time, shape (len(t),) + y0.shape.
    """
    if full_output:
        raise NotImplementedError('odeint: full_output is not supported (the solver is an '
                                  'adaptive Runge-Kutta method, not LSODA)')
    fn = (lambda y, s, *a: func(s, y, *a)) if tfirst else func
    if tfirst:
        fn.__name__ = getattr(func, '__name__', 'func')
    return _solve('odeint', fn, y0, t, args, 1.49012e-8 if rtol is None else rtol,
                  1.49012e-8 if atol is None else atol, mxstep or 5000, hmax or np.inf, method)


class OdeResult(dict):
    """The result of `solve_ivp`, as SciPy's: attributes `t` (n_points,), `y` (n, n_points),
    `success`, `status`, `message`, `sol` (None) and `t_events`/`y_events` (None)."""

    __getattr__ = dict.get

    def __repr__(self):
        return f'OdeResult(t={self["t"]!r}, y=..., success={self["success"]})'


def solve_ivp(fun, t_span, y0, method='RK45', t_eval=None, dense_output=False, events=None,
              vectorized=False, args=None, **options):
    """Solve `dy/dt = fun(t, y, *args)` on `t_span`, as SciPy's `solve_ivp`, differentiably in
    `y0`, `t_eval` (or `t_span`) and `args`.

    Args:
        fun: `fun(t, y, *args)` returning dy/dt of y's shape (n,).
        t_span: (t0, tf). y0: (n,).
        method: 'RK45' or 'DOP853'.
        t_eval: the output times; without it, the times of the solver's accepted steps (found
            by a first solve on concrete values, so not under `jit`; the result is then
            differentiable in y0, args, t0 and tf, the inner times being constants).
        args: a tuple of extra arguments.
        options: `rtol` (1e-3), `atol` (1e-6), `max_step` (inf), as SciPy's.

    Returns:
        `OdeResult` with `.t` and `.y` (n, len(t)).
    """
    if dense_output or events is not None:
        raise NotImplementedError('solve_ivp: dense_output and events are not supported')
    unknown = set(options) - {'rtol', 'atol', 'max_step', 'first_step'}
    if unknown:
        raise TypeError(f'solve_ivp: unsupported options {sorted(unknown)}')
    if method not in _METHODS:
        raise ValueError(f'solve_ivp: method must be one of {sorted(_METHODS)} (chainrule '
                         f'implements these), got {method!r}')
    rtol, atol = options.get('rtol', 1e-3), options.get('atol', 1e-6)
    hmax = options.get('max_step', np.inf)
    args = () if args is None else tuple(args)
    t0, tf = t_span
    if t_eval is None:
        # the accepted step times of a first solve become the output times
        dyn, rebuild = _split_args(args)
        cdyn = [concrete(d) for d in dyn]
        rec = []
        f = (lambda y, s: _as_rhs_value(fun(s, y, *rebuild(cdyn)), y))
        y0c = np.asarray(concrete(y0), dtype=np.float64)
        _integrate(f, y0c, np.array([float(concrete(t0)), float(concrete(tf))]),
                   _METHODS[method], rtol, atol, 10 ** 6, hmax, record=rec)
        inner = [t for t, _ in rec[0]][1:]
        pts = ops.concatenate([ops.reshape(t0, (1,)), np.asarray(inner, np.float64),
                               ops.reshape(tf, (1,))], 0) if inner else \
            ops.concatenate([ops.reshape(t0, (1,)), ops.reshape(tf, (1,))], 0)
        t_out = ops.astype(pts, np.float64)
    else:
        t_out = t_eval
    ys = _solve('solve_ivp', lambda y, s, *a: fun(s, y, *a), y0, t_out, args, rtol, atol,
                10 ** 6, hmax, method)
    nd = len(ops.shape_of(ys))
    y = ops.transpose(ys, tuple(range(1, nd)) + (0,))
    return OdeResult(t=t_out, y=y, success=True, status=0, message='The solver successfully '
                     'reached the end of the integration interval.', sol=None, t_events=None,
                     y_events=None)
