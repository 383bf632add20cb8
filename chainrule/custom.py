"""Custom derivative rules: `custom_vjp`, `custom_jvp`, and primitives of your own.

What this module lets you do: give a Python function a derivative of your choosing -- a
numerically stable one (`log1pexp`), a deliberately modified one (gradient clipping, a
straight-through estimator), or a cheaper one (an implicit-function gradient) -- with JAX's
decorators, and register a brand-new primitive operation with its own rules.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> @cr.custom_jvp
    ... def log1pexp(x):
    ...     return cnp.log1p(cnp.exp(x))
    >>> @log1pexp.defjvp
    ... def _(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t * (1 - 1 / (1 + cnp.exp(x)))   # d/dx = sigmoid(x), stably
    >>> float(cr.grad(log1pexp)(100.0))        # the plain composite gives nan here
    1.0

    >>> @cr.custom_vjp
    ... def clip_gradient(x, lo, hi):
    ...     return x                               # identity forward ...
    >>> clip_gradient.defvjp(lambda x, lo, hi: (x, (lo, hi)),
    ...                      lambda res, g: (cnp.clip(g, *res), None, None))  # ... clipped back
    >>> cr.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 1.0))(2.0)
    1.0

How it works. Calling a decorated function with traced arguments binds one *call primitive*
(`custom_vjp_call`, `custom_jvp_call`) whose parameters carry the user's functions; every
interpreter then treats it like any other primitive, through the rules declared here:

- `custom_jvp_call`: `impl` calls the function; the JVP rule is the user's rule; the VJP is the
  user's rule *transposed* -- the rule is linear in the tangents, so the gradient of
  `t -> <g, jvp(x, t)>` (taken by the reverse-mode interpreter) is `J^T g`. (JAX does the
  same by linearising and transposing.)
- `custom_vjp_call`: `impl` calls `fwd` and returns the outputs followed by the residuals, so
  reverse mode saves the residuals with the node instead of recomputing them; the VJP sends
  the outputs' cotangent through the user's `bwd`. A residual that is itself differentiated
  (the outer derivative in `grad(grad(f))`) is differentiated exactly, by running `fwd` under a
  reverse trace -- so higher derivatives of a `custom_vjp` function differentiate `fwd` and
  `bwd`, as in JAX. Forward mode uses the transpose of the custom VJP (JAX refuses it).

`vmap` binds the same primitive again with the user's functions vectorised, so a batched call
keeps its custom rules (per-example gradients through a `custom_vjp` use `bwd`); `jit` records
the call as one equation and keeps the rules too. With no traced argument the decorated
function is just called: no primitive, no overhead beyond flattening the arguments.

Rules are written with `chainrule.numpy` (never raw NumPy on the arguments), so they can be
differentiated again. A decorated function must not close over values being differentiated
(pass them as arguments); closed-over constants are fine.

A new primitive from user code: see `primitive` below -- one call declares the NumPy
implementation and the derivative rules, and the result is a function usable under every
transform.
"""

import contextvars
import inspect
import warnings

import numpy as np

from chainrule._tensor_face_args import faced_for
from chainrule.core import (AllArgs, ChainruleError, DTypeError, MissingRuleError, PerArg,
                            Primitive, Tracer, bind, dtype_of, innermost_trace, registry,
                            shape_of)
from chainrule.tree import tree_flatten, tree_structure, tree_unflatten

__all__ = ['custom_vjp', 'custom_jvp', 'primitive', 'CallBypassedWarning']


# --- the machinery shared by every call primitive (also used by chainrule.checkpoint) -----------

class CallParams:
    """The static parameter of a call primitive: the user's functions, the input structure
    and the output structure (found when the function first runs).

    A user's `bwd` or a re-run of `fun` gives every argument's cotangent at once, so the call
    primitives' VJP rules are `AllArgs` (`per_arg_vjp`): one call per backward-pass node, and
    nothing of one call (its arguments, its cotangents) is kept for the next.
    """

    __slots__ = ('kind', 'name', 'in_tree', 'out_tree', 'n_out', 'fns', 'tensor_mode')

    def __init__(self, kind, name, in_tree, fns, tensor_mode=False):
        self.tensor_mode = tensor_mode   # called with Tensors: a Tensor result must be refused
        self.kind = kind
        self.name = name
        self.in_tree = in_tree
        self.out_tree = None
        self.n_out = None
        self.fns = fns

    def __repr__(self):
        return f'{self.kind}({self.name})'

    def call_flat(self, fn, leaves):
        """Run `fn` on the argument tree rebuilt from `leaves`; returns the flat outputs and
        records their structure."""
        out = fn(*tree_unflatten(self.in_tree, leaves))
        out_leaves, out_tree = tree_flatten(out)
        self._set_out(out_tree)
        return self.check_closure(leaves, out_leaves)

    def check_closure(self, leaves, outs):
        """`outs` with `Tensor`s that have no history unwrapped to their data (module code
        returns Tensors even on plain arrays); refuses results traced at a level above every
        input: `fn` closed over a value being differentiated, which a primitive cannot see."""
        top = max([x._trace.level for x in leaves if isinstance(x, Tracer)], default=-1)
        outs = [o.data if getattr(o, '_is_tensor', False) and not o.requires_grad
                and not self.tensor_mode else o for o in outs]
        for o in outs:
            if isinstance(o, Tracer) and o._trace.level > top:
                hint = (' A module passed whole flattens to its parameters\' data, which '
                        'backward() does not track: pass the parameters themselves.'
                        if getattr(o, '_is_tensor', False) else '')
                raise ChainruleError(
                    f'{self.kind} function {self.name} uses a traced value (a {type(o).__name__}'
                    ') that is not one of its arguments: it closes over a value being '
                    'differentiated. Pass that value as an argument instead, e.g. '
                    f'{self.kind}(lambda x, w: ...)(x, w).' + hint)
        return outs

    def _set_out(self, out_tree):
        if self.out_tree is None:
            self.out_tree, self.n_out = out_tree, out_tree.num_leaves
        elif out_tree != self.out_tree:
            raise ChainruleError(f'{self.name}: the output structure changed between calls '
                                 f'({self.out_tree} and {out_tree})')


def per_arg_vjp(all_cts):
    """The VJP rules of a call primitive from `all_cts(g, out, args, call)`, which returns
    every argument's cotangent at once (`None` for zero)."""
    def rule(needed, g, out, *args, call):
        cts = all_cts(g, out, args, call)
        return [(_zeros(args[i]) if c is None else c) if k else None
                for i, (c, k) in enumerate(zip(cts, needed))]
    return AllArgs(rule)


def _zeros(x):
    return np.zeros(shape_of(x), dtype_of(x))


def _is_float(x):
    return np.dtype(dtype_of(x)).kind in 'fc'


def any_traced(leaves):
    for x in leaves:
        if isinstance(x, Tracer):
            return True
    return False


def _resolve(fun, args, kwargs):
    """Keyword arguments resolved to positional ones through `fun`'s signature (as JAX does)."""
    if not kwargs:
        return args
    bound = inspect.signature(fun).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.args


class CallBypassedWarning(UserWarning):
    """A `custom_vjp`/`custom_jvp`/`checkpoint` function was differentiated through values it
    closes over rather than its arguments, so its rule (or the checkpointing) did not apply."""


_converting = contextvars.ContextVar('chainrule_converting_closures', default=frozenset())


def _aval(x):
    from chainrule.interpreters.staging import ShapedArray
    return ShapedArray(shape_of(x), dtype_of(x))


def _stage(flat_fun, avals):
    """`flat_fun` (a function of flat values returning a pytree) staged on `avals`:
    `(graph, closure, out_tree)` with the traced values it closes over lifted to trailing
    inputs of `graph`, or None if it cannot be staged."""
    from chainrule.interpreters.staging import lift_closure, trace_to_graph
    box = []

    def flat(*xs):
        o, t = tree_flatten(flat_fun(*xs))
        box.append(t)
        return o
    try:
        graph = trace_to_graph(flat, avals)
    except Exception:       # not stageable (Python control flow on values, ...)
        return None
    graph, closure = lift_closure(graph)
    return graph, closure, box[0]


def _union(*closures):
    """The distinct values of several closures, in order of first appearance."""
    seen, out = set(), []
    for c in closures:
        for v in c:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def _positions(part, whole):
    ids = [id(v) for v in whole]
    return [ids.index(id(v)) for v in part]


def _flat_tree(n):
    return tree_structure(tuple(range(n)))


def _graph_fun(graph, out_tree, where, n, name):
    """A function of `n` argument leaves plus the whole closure, evaluating `graph` (whose
    trailing inputs are the closure values at positions `where`)."""
    from chainrule.interpreters.staging import eval_graph

    def fun(*xs):
        xs = list(xs)
        return tree_unflatten(out_tree, eval_graph(graph, xs[:n] + [xs[n + i] for i in where]))
    fun.__name__ = name
    return fun


class CallWrapper:
    """What `custom_jvp`, `custom_vjp` and `checkpoint` share: keyword arguments resolved to
    positional ones, static arguments split off, the pytree of the others flattened, and a plain
    call of the function when none of them is traced.

    Subclasses set `kind`, `prim` (the call primitive) and `params` (a `CallParams` class), and
    define `_fns(full, static)`: the functions the primitive carries, where `full(f)` turns a
    function of all arguments into one of the differentiable ones.
    """

    kind = prim = None
    params = CallParams
    bypassed = 'its custom rule is not used'

    def __init__(self, fun, nondiff_argnums=()):
        if isinstance(nondiff_argnums, int):
            nondiff_argnums = (nondiff_argnums,)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.__name__ = getattr(fun, '__name__', 'fun')
        self.__doc__ = getattr(fun, '__doc__', None)
        self.__wrapped__ = fun

    def _check_ready(self):
        """Raise if rules the primitive needs have not been given yet."""

    def _direct(self, leaves):
        """Whether to call the function directly instead of binding the primitive."""
        return not any_traced(leaves)

    def _call_direct(self, args, leaves):
        out = self.fun(*args)           # nothing is being transformed: just call it
        if any_traced(tree_flatten(out)[0]):
            self._warn_bypassed()
        return out

    def _warn_bypassed(self):
        warnings.warn(
            f'{self.kind} function {self.__name__} got no traced argument but returned a traced '
            'value: it closes over a value being differentiated (or takes a module, whose '
            f"pytree leaves are its parameters' data), so {self.bypassed}. Pass the "
            'differentiated values (Tensors, parameters) as arguments.', CallBypassedWarning,
            stacklevel=4)

    def _fns(self, full, static):   # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self._check_ready()
        if id(self) in _converting.get():
            # called by its own rules while they are being staged (fwd's `out = f(x)`): the
            # primal function is what is meant there
            return self.fun(*args, **kwargs)
        args = _resolve(self.fun, args, kwargs)
        nd = self.nondiff_argnums
        diff = tuple(a for i, a in enumerate(args) if i not in nd)
        static = tuple(args[i] for i in nd)
        if any_traced(tree_flatten(static)[0]):
            raise ChainruleError(
                f'{self.__name__}: a static argument (nondiff_argnums/static_argnums) is being '
                'traced (differentiated or batched); those positions are for static values '
                '(functions, flags, sizes). Pass it as an ordinary argument instead.')
        leaves, in_tree = tree_flatten(diff)
        for i, x in enumerate(leaves):
            if not isinstance(x, (np.ndarray, np.generic, Tracer, bool, int, float, complex)):
                raise DTypeError(
                    f'{self.__name__}: an argument holds a {type(x).__name__} ({x!r:.40}); a '
                    f'{self.kind} function takes arrays, numbers and Tensors (or tuples, lists '
                    'and dicts of them). Pass other values through nondiff_argnums / '
                    'static_argnums, or close over them.')
        direct = self._direct(leaves)
        # (inside a transform, a function of untraced arguments may still close over traced
        # values: a closure-converting call looks before calling it directly)
        if direct and not (self.converts and innermost_trace() is not None):
            return self._call_direct(args, leaves)

        def full(f):
            if not nd:
                return faced_for(f, diff)    # PyTorch code given Tensors sees Tensors

            def merged(*d):
                it_d, it_s = iter(d), iter(static)
                return f(*[next(it_s) if i in nd else next(it_d) for i in range(len(args))])
            return faced_for(merged, diff)

        fns = self._fns(full, static)
        converted = self._convert_closure(leaves, in_tree, fns) if self.converts else None
        if converted is not None:
            leaves, in_tree, fns = converted
        elif direct:
            return self._call_direct(args, leaves)
        call = self.params(self.kind, self.__name__, in_tree, fns,
                           any(getattr(x, '_is_tensor', False) for x in leaves))
        outs = bind(self.prim, *leaves, call=call)
        return tree_unflatten(call.out_tree, outs[:call.n_out])

    converts = False    # whether closures are converted (see _convert_closure)

    def _convert_closure(self, leaves, in_tree, fns):
        """Closure conversion (what `jax.closure_convert` does): stage `fun` once on abstract
        values of its arguments; if it closes over traced values (a parameter `Tensor`, a
        tracer of an enclosing `grad` or `vmap`), return `(leaves + closed-over values, their
        tree, fns)` with the functions replaced by staged programs taking those values as
        trailing arguments, so the transforms see them as inputs of the call and differentiate
        through them. Returns None when there is nothing to convert, or when a function cannot
        be staged (Python control flow on values): then it is called as it is, and a closure
        is refused with a clear error when the call runs."""
        from chainrule.random._staged import RngStates
        token = _converting.set(_converting.get() | {id(self)})
        rng = RngStates()
        try:
            with rng.watching():
                staged = _stage(lambda *xs: fns[0](*tree_unflatten(in_tree, list(xs))),
                                [_aval(x) for x in leaves])
            if staged is None or not staged[1]:
                rng.rewind()    # `fun` itself runs next: its draws must be the first ones
                return None
            return self._converted(leaves, in_tree, fns, staged)
        finally:
            _converting.reset(token)

    def _converted(self, leaves, in_tree, fns, staged):
        """`_convert_closure`'s result from `fun` staged as `(graph, closure, out_tree)`."""
        graph, closure, out_tree = staged
        fun = _graph_fun(graph, out_tree, _positions(closure, closure), len(leaves), self.__name__)
        return list(leaves) + closure, _flat_tree(len(leaves) + len(closure)), (fun,)

    def __get__(self, obj, objtype=None):   # usable as a method
        if obj is None:
            return self
        return lambda *a, **k: self(obj, *a, **k)

    def __repr__(self):
        return f'{self.kind}({self.__name__})'


# --- custom_jvp ------------------------------------------------------------------------------

def _custom_jvp_impl(*leaves, call):
    return tuple(call.call_flat(call.fns[0], leaves))


def _custom_jvp_rule_flat(call, leaves, tangents):
    """The user's JVP rule on flat lists: returns (primal out leaves, tangent out leaves)."""
    fun, rule = call.fns
    primals = tree_unflatten(call.in_tree, leaves)
    ts = tree_unflatten(call.in_tree, tangents)
    res = rule(primals, ts)
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        raise ChainruleError(f'the JVP rule of {call.name} must return a pair '
                             '(primal_out, tangent_out)')
    p_leaves, p_tree = tree_flatten(res[0])
    t_leaves, t_tree = tree_flatten(res[1])
    call._set_out(p_tree)
    if t_tree != p_tree:
        raise ChainruleError(f'the JVP rule of {call.name} returned a tangent of structure '
                             f'{t_tree} for a primal output of structure {p_tree}')
    for p, t in zip(p_leaves, t_leaves):
        if shape_of(t) != shape_of(p):
            raise ChainruleError(f'the JVP rule of {call.name} returned a tangent of shape '
                                 f'{shape_of(t)} for a primal output of shape {shape_of(p)}')
    return p_leaves, t_leaves


def _custom_jvp_jvp(tangents, out, *leaves, call):
    return tuple(_custom_jvp_rule_flat(call, leaves, list(tangents))[1])


def _custom_jvp_all_cts(g, out, leaves, call):
    # The rule is linear in the tangents, so J^T g is the gradient of t -> <g, J t>: one reverse
    # pass through the rule, taken at zero tangents (any point would do).
    return pull_back(lambda ts, xs: _custom_jvp_rule_flat(call, xs, ts)[1],
                     [_zeros(x) for x in leaves], list(g), consts=leaves)


def pull_back(fn, points, cts, consts=None):
    """The cotangents of `points` for output cotangents `cts` of `fn(points) -> list`, by one
    reverse pass; entries of `points` that are not floating stay constant (cotangent None).

    With `consts`, `fn(points, consts)` also receives those values, held constant. They are
    lifted onto the new reverse level when they belong to a higher one (a `Tensor` during
    `backward(create_graph=True)`): otherwise that level would process the operations first
    and the reverse pass would see their values as plain constants, losing the dependence.
    """
    from chainrule.interpreters.reverse import ReverseTracer, vjp_flat
    idx = [i for i, x in enumerate(points) if _is_float(x)]
    if not idx:
        return [None] * len(points)

    def part(*xs):
        full = list(points)
        for i, x in zip(idx, xs):
            full[i] = x
        if consts is None:
            return fn(full)
        trace = xs[0]._trace
        return fn(full, [ReverseTracer(trace, c, None)
                         if isinstance(c, Tracer) and c._trace.level > trace.level else c
                         for c in consts])

    _, pullback = vjp_flat(part, [points[i] for i in idx])
    got = pullback(cts)
    full = [None] * len(points)
    for i, c in zip(idx, got):
        full[i] = c
    return full


custom_jvp_call_p = Primitive(
    'custom_jvp_call', _custom_jvp_impl, multiple_results=True, jvp=_custom_jvp_jvp,
    vjp=per_arg_vjp(_custom_jvp_all_cts),
    doc='A function with a user-supplied JVP rule (see chainrule.custom.custom_jvp).')


class custom_jvp(CallWrapper):
    """Decorator: a function whose forward-mode derivative is given by a rule you write.

    Args:
        fun: the function. Its arguments and results may be pytrees of arrays.
        nondiff_argnums: positions of arguments that are static (not arrays to
            differentiate: functions, flags); they are passed to the rule first.

    Use `f.defjvp(rule)` with `rule(primals, tangents) -> (primal_out, tangent_out)` (with
    `nondiff_argnums`, `rule(*nondiff_args, primals, tangents)`), where `primals` and `tangents`
    are tuples of the differentiable arguments and their tangents. The rule must be linear in
    the tangents and written with `chainrule.numpy`; reverse mode uses its transpose, and
    higher derivatives differentiate the rule itself. `f.defjvps(*rules)` gives one rule per
    argument instead, `rule(t, primal_out, *primals) -> tangent_out contribution`.
    """

    kind = 'custom_jvp'
    prim = custom_jvp_call_p

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp_rule = None

    def defjvp(self, jvp):
        """Set the JVP rule (see the class docstring); returns it, so it can decorate."""
        self.jvp_rule = jvp
        return jvp

    def defjvps(self, *rules):
        """One tangent rule per differentiable argument, `rule(t, primal_out, *primals)`
        (`None` for an argument with zero derivative); their contributions are summed."""
        def jvp(primals, tangents):
            out = self.fun(*primals) if not self.nondiff_argnums else None
            total = None
            for rule, t in zip(rules, tangents):
                if rule is None:
                    continue
                c = rule(t, out, *primals)
                total = c if total is None else total + c
            if total is None:
                total = _zeros(out)
            return out, total
        if self.nondiff_argnums:
            raise ChainruleError('defjvps with nondiff_argnums is not supported; use defjvp')
        self.jvp_rule = jvp
        return jvp

    def _check_ready(self):
        if self.jvp_rule is None:
            raise ChainruleError(f'{self.__name__} is a custom_jvp function without a rule: '
                                 f'call {self.__name__}.defjvp(rule) first')

    converts = True     # values `fun` and the rule close over become inputs of the call

    def _converted(self, leaves, in_tree, fns, staged):
        # the user's rule gives the tangent along the arguments; along the closed-over values
        # it is the derivative of what `fun` computes (forward mode through its staged program)
        from chainrule.interpreters.forward import jvp_flat
        from chainrule.interpreters.staging import eval_graph
        graph, closure, out_tree = staged
        rule = fns[1]
        n = len(leaves)
        avals = [_aval(x) for x in leaves]
        r = _stage(lambda *xs: rule(tree_unflatten(in_tree, list(xs[:n])),
                                    tree_unflatten(in_tree, list(xs[n:]))), avals + avals)
        if r is None:
            return None
        r_graph, r_closure, r_tree = r
        allc = _union(closure, r_closure)
        f_where, r_where = _positions(closure, allc), _positions(r_closure, allc)

        def rule_converted(p, t):
            p, t = list(p), list(t)
            p_out, t_out = tree_unflatten(r_tree, eval_graph(
                r_graph, p[:n] + t[:n] + [p[n + i] for i in r_where]))
            _, t_c = jvp_flat(lambda *c: eval_graph(graph, p[:n] + list(c)),
                              [p[n + i] for i in f_where],
                              [t[n + i] if _is_float(p[n + i]) else None for i in f_where])
            t_user = out_tree.flatten_up_to(t_out)
            return p_out, tree_unflatten(out_tree, [a + b for a, b in zip(t_user, t_c)])

        fun = _graph_fun(graph, out_tree, f_where, n, self.__name__)
        return list(leaves) + allc, _flat_tree(n + len(allc)), (fun, rule_converted)

    def _fns(self, full, static):
        return full(self.fun), lambda p, t: self.jvp_rule(*static, p, t)


# --- custom_vjp ------------------------------------------------------------------------------

class VJPCallParams(CallParams):
    """`CallParams` plus the structure of the residuals `fwd` returns."""

    __slots__ = ('res_tree', 'res_static')

    def __init__(self, *args):
        super().__init__(*args)
        self.res_tree = None
        self.res_static = None

    def residuals(self, dynamic):
        """The residual pytree from the primitive's residual results and the static parts."""
        dynamic = iter(dynamic)
        return tree_unflatten(self.res_tree, [next(dynamic) if r is _DYNAMIC else r
                                              for r in self.res_static])


_ARRAY_TYPES = (np.ndarray, np.generic, Tracer)
_DYNAMIC = object()   # marks a residual slot filled by a result of the primitive


def _fwd_flat(call, leaves):
    """The user's `fwd` on flat lists: the output leaves followed by the residual leaves."""
    res = call.fns[1](*tree_unflatten(call.in_tree, leaves))
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        raise ChainruleError(f'the fwd function of {call.name} must return a pair '
                             '(output, residuals)')
    out_leaves, out_tree = tree_flatten(res[0])
    call._set_out(out_tree)
    res_leaves, res_tree = tree_flatten(res[1])
    both = call.check_closure(leaves, out_leaves + res_leaves)
    out_leaves, res_leaves = both[:len(out_leaves)], both[len(out_leaves):]
    # Arrays (and tracers) among the residuals become results of the primitive, saved with its
    # node; anything else (a shape, a string, a flag) is static and kept on the parameters.
    dynamic = [r for r in res_leaves if isinstance(r, _ARRAY_TYPES)]
    if call.res_tree is None:
        call.res_tree = res_tree
        call.res_static = [_DYNAMIC if isinstance(r, _ARRAY_TYPES) else r for r in res_leaves]
    return out_leaves + dynamic


def _custom_vjp_impl(*leaves, call):
    return tuple(_fwd_flat(call, leaves))


def _bwd_flat(call, leaves, res_leaves, g_leaves):
    """The user's `bwd` on flat lists: one cotangent per argument leaf (None for zero)."""
    res = call.residuals(res_leaves)
    cts = call.fns[2](res, tree_unflatten(call.out_tree, g_leaves))
    diff_args = tree_unflatten(call.in_tree, leaves)
    if not isinstance(cts, (tuple, list)) or len(cts) != len(diff_args):
        raise ChainruleError(f'the bwd function of {call.name} must return a tuple with one '
                             f'cotangent per differentiable argument ({len(diff_args)}), got '
                             f'{type(cts).__name__}'
                             + (f' of length {len(cts)}' if isinstance(cts, (tuple, list))
                                else ''))
    flat = []
    for k, (c, a) in enumerate(zip(cts, diff_args)):
        a_leaves, a_tree = tree_flatten(a)
        if c is None:
            flat.extend([None] * len(a_leaves))
            continue
        try:
            c_leaves = a_tree.flatten_up_to(c)
        except ValueError:
            raise ChainruleError(f'the bwd function of {call.name} returned a cotangent of '
                                 f'structure {tree_structure(c)} for argument {k}, whose '
                                 f'structure is {a_tree}') from None
        for cl, al in zip(c_leaves, a_leaves):
            if cl is not None and shape_of(cl) != shape_of(al):
                raise ChainruleError(f'the bwd function of {call.name} returned a cotangent of '
                                     f'shape {shape_of(cl)} for an argument of shape '
                                     f'{shape_of(al)} (argument {k})')
        flat.extend(c_leaves)
    return flat


def _custom_vjp_all_cts(g, out, leaves, call):
    n = call.n_out
    flat = _bwd_flat(call, leaves, out[n:], g[:n])
    # Residuals are outputs of the primitive too. Their cotangent is zero unless an enclosing
    # derivative differentiates bwd (grad of grad); then it is pulled back exactly through
    # fwd, re-run under a reverse trace.
    g_res = list(g[n:])
    if any(_maybe_nonzero(c) for c in g_res):
        flat = _add_residual_cts(flat, leaves, g_res, call)
    return flat


def _maybe_nonzero(c):
    if isinstance(c, np.ndarray):
        return bool(c.any())
    return isinstance(c, Tracer) or bool(np.any(c))


def _add_residual_cts(flat, leaves, g_res, call):
    fwd = call.fns[1]
    res_cts = pull_back(
        lambda xs: [r for r in tree_flatten(fwd(*tree_unflatten(call.in_tree, xs))[1])[0]
                    if isinstance(r, _ARRAY_TYPES)], leaves, g_res)
    return [a if b is None else b if a is None else a + b for a, b in zip(flat, res_cts)]


custom_vjp_call_p = Primitive(
    'custom_vjp_call', _custom_vjp_impl, multiple_results=True,
    vjp=per_arg_vjp(_custom_vjp_all_cts),
    doc='A function with a user-supplied VJP (see chainrule.custom.custom_vjp); its results '
        'are the outputs followed by the residuals of fwd.')


# --- vmap of a call primitive ------------------------------------------------------------------
#
# `vmap` processes a call primitive by binding it again with the user's functions vectorised
# (each one run under `vmap_flat`), so the rules still apply to the batched call: `grad` of a
# vmapped custom_vjp function still uses `bwd`, `vmap` of a checkpoint still recomputes.

def _vectorised(fn, in_dims, size, out_dims=None):
    """`fn(*xs) -> list` on a batch: `in_dims` per argument (0 or None); each output batched at
    axis 0 (broadcast if it does not depend on the batch), or, where `out_dims` says None,
    summed over the batch (the cotangent of an argument shared by every example)."""
    from chainrule.interpreters.batching import vmap_flat

    def f(*xs):
        outs, dims, _ = vmap_flat(lambda *ys: list(fn(*ys)), list(xs), list(in_dims))
        want = out_dims if out_dims is not None else [0] * len(outs)
        return [_to_dim(o, d, t, size) for o, d, t in zip(outs, dims, want)]
    return f


def _to_dim(x, d, want, size):
    from chainrule import ops
    if d == want:
        return x
    if want is None:
        return ops.sum(x, axis=0)
    shape = tuple(shape_of(x))
    return ops.broadcast_to(ops.reshape(x, (1,) + shape), (size,) + shape)


def batch_call_rule(prim, make_fns):
    """The `vmap` rule of call primitive `prim`: `make_fns(call, vals, dims, size)` gives the
    vectorised functions of the new call."""
    def rule(vals, dims, *, call):
        size = next(shape_of(v)[0] for v, d in zip(vals, dims) if d is not None)
        new = type(call)(call.kind, call.name, tree_structure(tuple(vals)),
                         make_fns(call, vals, list(dims), size), call.tensor_mode)
        if hasattr(call, 'rng'):
            new.rng = call.rng     # a checkpoint's re-runs replay the batched run's draws
        return bind(prim, *vals, call=new), 0
    return rule


def vectorised_fun(call, dims, size):
    """The call's function (`call.fns[0]`) on a batch."""
    return _vectorised(lambda *ys: call.call_flat(call.fns[0], ys), dims, size)


def _split_at(n, fn):
    return lambda *xs: (lambda r: (r[:n()], r[n():]))(fn(*xs))


def _batch_custom_jvp_fns(call, vals, dims, size):
    n = len(dims)
    both = _vectorised(lambda *ys: (lambda p, t: p + t)(
        *_custom_jvp_rule_flat(call, ys[:n], list(ys[n:]))), dims + dims, size)
    rule = _split_at(lambda: call.n_out, both)
    return vectorised_fun(call, dims, size), lambda p, t: rule(*p, *t)


def _batch_custom_vjp_fns(call, vals, dims, size):
    n = len(dims)
    fwd = _split_at(lambda: call.n_out, _vectorised(lambda *ys: _fwd_flat(call, ys), dims, size))

    def bwd(res, g):
        nr = len(res)

        def one(*ys):
            cts = _bwd_flat(call, ys[:n], ys[n:n + nr], ys[n + nr:])
            return [_zeros(y) if c is None else c for c, y in zip(cts, ys[:n])]
        return tuple(_vectorised(one, dims + [0] * (nr + len(g)), size, dims)(*vals, *res, *g))
    return vectorised_fun(call, dims, size), fwd, bwd


custom_jvp_call_p.batch = batch_call_rule(custom_jvp_call_p, _batch_custom_jvp_fns)
custom_vjp_call_p.batch = batch_call_rule(custom_vjp_call_p, _batch_custom_vjp_fns)


class custom_vjp(CallWrapper):
    """Decorator: a function whose reverse-mode derivative is given by functions you write.

    Args:
        fun: the function. Its arguments and results may be pytrees of arrays.
        nondiff_argnums: positions of static arguments (functions, flags); they are passed
            to `fwd` in place and to `bwd` first, and get no cotangent.

    Use `f.defvjp(fwd, bwd)`:
        - `fwd(*args) -> (out, residuals)`: the output (as `fun` computes it) and any pytree
          of arrays `bwd` will need;
        - `bwd(residuals, g) -> tuple` with one cotangent per differentiable argument, each of
          that argument's structure and shapes (`None` for a zero cotangent). With
          `nondiff_argnums`, `bwd(*nondiff_args, residuals, g)`.

    Without a traced argument, `fun` itself is called. Under `grad`, `fwd` runs instead and
    its residuals are saved for `bwd`. Derivatives of derivatives differentiate `fwd` and
    `bwd` (written with `chainrule.numpy`); `jvp` uses the transpose of `bwd`.
    """

    kind = 'custom_vjp'
    prim = custom_vjp_call_p
    params = VJPCallParams

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        """Set the forward function and backward rule (see the class docstring)."""
        self.fwd, self.bwd = fwd, bwd

    def _check_ready(self):
        if self.fwd is None:
            raise ChainruleError(f'{self.__name__} is a custom_vjp function without rules: '
                                 f'call {self.__name__}.defvjp(fwd, bwd) first')

    converts = True     # values `fun`, `fwd` and `bwd` close over become inputs of the call

    def _converted(self, leaves, in_tree, fns, staged):
        # the user's bwd gives the cotangents of the arguments; the closed-over values get the
        # derivative of what `fun` computes (reverse mode through its staged program, re-run
        # on the inputs, which become residuals)
        from chainrule.interpreters.staging import eval_graph
        graph, closure, out_tree = staged
        fwd, bwd = fns[1], fns[2]
        n, n_out = len(leaves), out_tree.num_leaves
        avals = [_aval(x) for x in leaves]
        info = []

        def fwd_flat(*xs):
            res = fwd(*tree_unflatten(in_tree, list(xs)))
            r_leaves, r_tree = tree_flatten(res[1])
            info.append((r_tree, [isinstance(r, _ARRAY_TYPES) for r in r_leaves], r_leaves))
            return res[0], [r for r in r_leaves if isinstance(r, _ARRAY_TYPES)]
        fs = _stage(fwd_flat, avals)
        if fs is None:
            return None
        fwd_graph, fwd_closure, _ = fs
        r_tree, r_is_array, r_leaves = info[0]
        out_avals = [v.aval for v in fwd_graph.outvars[:n_out]]
        res_avals = [v.aval for v in fwd_graph.outvars[n_out:]]
        n_res = len(res_avals)

        def bwd_flat(*ys):
            arrays = iter(ys[:n_res])
            res = tree_unflatten(r_tree, [next(arrays) if a else r
                                          for a, r in zip(r_is_array, r_leaves)])
            cts = bwd(res, tree_unflatten(out_tree, list(ys[n_res:])))
            flat = []
            for c, sub in zip(cts, tree_unflatten(in_tree, avals)):
                sub_leaves, sub_tree = tree_flatten(sub, is_leaf=lambda a: hasattr(a, 'dtype'))
                cs = [None] * len(sub_leaves) if c is None else sub_tree.flatten_up_to(c)
                flat.extend(np.zeros(a.shape, a.dtype) if x is None else x
                            for x, a in zip(cs, sub_leaves))
            return flat
        bs = _stage(bwd_flat, res_avals + out_avals)
        if bs is None:
            return None
        bwd_graph, bwd_closure, _ = bs
        allc = _union(closure, fwd_closure, bwd_closure)
        f_where = _positions(closure, allc)
        fw_where, bw_where = _positions(fwd_closure, allc), _positions(bwd_closure, allc)

        def fwd_converted(*xs):
            xs = list(xs)
            outs = eval_graph(fwd_graph, xs[:n] + [xs[n + i] for i in fw_where])
            return tree_unflatten(out_tree, outs[:n_out]), (list(outs[n_out:]), xs)

        def bwd_converted(res, g):
            arrays, xs = res
            g_leaves = out_tree.flatten_up_to(g)
            cts = eval_graph(bwd_graph, list(arrays) + g_leaves + [xs[n + i] for i in bw_where])
            closed = [None] * len(allc)
            got = pull_back(lambda c, consts: eval_graph(graph, consts + list(c)),
                            [xs[n + i] for i in f_where], g_leaves, consts=xs[:n])
            for i, c in zip(f_where, got):
                closed[i] = c
            return tuple(cts) + tuple(closed)

        fun = _graph_fun(graph, out_tree, f_where, n, self.__name__)
        return list(leaves) + allc, _flat_tree(n + len(allc)), (fun, fwd_converted,
                                                               bwd_converted)

    def _fns(self, full, static):
        return full(self.fun), full(self.fwd), lambda res, g: self.bwd(*static, res, g)


# --- primitives from user code ---------------------------------------------------------------

_NO_VJP = object()   # `vjp` not given (unlike vjp=None, which declares the op not differentiable)


def _missing_vjp(name):
    def rule(i, g, out, *args, **params):
        raise MissingRuleError(
            f'primitive {name!r} has no VJP rule for argument {i}, so reverse mode (grad, vjp, '
            f'backward(), and forward mode when no jvp rule is given) cannot differentiate '
            f'it. Pass vjp=[...] to cr.custom.primitive, or vjp=None if {name!r} is not '
            'differentiable (its outputs are then constants).')
    return PerArg(rule)


def primitive(name, impl, *, vjp=_NO_VJP, jvp=None, elementwise=False, linear=False, batch=None,
              multiple_results=False, shape=None, doc=''):
    """Register a new primitive operation with its own rules, from user code.

    A primitive is the unit every transform understands: chainrule never looks inside
    `impl`, it only applies the rules given here. Use it for an operation chainrule lacks
    (a special function, a call into compiled code); for a different derivative of a
    function written with chainrule ops, `custom_jvp`/`custom_vjp` are simpler.

    Args:
        name: a unique name (used in errors, printed graphs and the registry).
        impl: the NumPy computation `impl(*arrays, **static_params)`.
        vjp: a list with one rule per positional argument, `rule(g, out, *args, **params)`
            returning that argument's cotangent (`None` where not differentiable). Write rules
            with `chainrule.numpy`, so that derivatives of derivatives work. `vjp=None`
            declares the op not differentiable (in every mode: its outputs are constants);
            leaving `vjp` out makes reverse mode a `MissingRuleError` naming the primitive
            (not a silent zero gradient), while `jvp`/`linear` still serve forward mode.
        jvp: a list with one rule per argument, `rule(t, out, *args, **params)` -- optional:
            `elementwise=True` (the VJP rules read forwards), `linear=True` (the op is its own
            derivative), or, failing those, forward mode transposes the VJP rules.
        batch: optional `vmap` rule `batch(args, dims, **params) -> (out, out_dim)`; without
            one, `vmap` loops over the batch.
        multiple_results, shape, doc: as for `chainrule.core.Primitive`.

    Returns:
        A function `f(*args, **params)` that binds the primitive (the `Primitive` object is
        `f.primitive`).

    Example -- the Gauss error function with SciPy's implementation:

        >>> import math, numpy as np, chainrule as cr, chainrule.numpy as cnp
        >>> erf = cr.custom.primitive(
        ...     'my_erf', np.vectorize(math.erf, otypes=[float]),
        ...     vjp=[lambda g, out, x: g * 2 / np.sqrt(np.pi) * cnp.exp(-x * x)],
        ...     elementwise=True)
        >>> round(float(cr.grad(lambda x: erf(x))(0.0)), 6)       # 2 / sqrt(pi)
        1.128379
        >>> round(float(cr.grad(cr.grad(lambda x: erf(x)))(1.0)), 6)   # -2x * 2/sqrt(pi) e^-x^2
        -0.830215
    """
    if name in registry:
        raise ChainruleError(f'a primitive named {name!r} is already registered; choose another '
                             'name (names are global, like the primitives of chainrule.ops)')
    if vjp is _NO_VJP:
        vjp = _missing_vjp(name)
    prim = Primitive(name, impl, vjp=vjp, jvp=jvp, elementwise=elementwise, linear=linear,
                     batch=batch, multiple_results=multiple_results, shape=shape, doc=doc)

    def f(*args, **params):
        return bind(prim, *args, **params)

    f.__name__ = name
    f.__doc__ = doc or f'the primitive {name}'
    f.primitive = prim
    return f
