"""The machinery every call primitive shares (`custom_jvp_call`, `custom_vjp_call`, and
`chainrule.checkpoint`'s): `CallParams` (the primitive's static parameter: the user's functions
and the input/output structures), `CallWrapper` (the decorator's call: arguments resolved,
flattened, bound -- or the function just called when nothing is traced), closure conversion
(traced values a function closes over staged into inputs of the call), and `pull_back` (one
reverse pass, for rules that transpose or re-differentiate user code).
"""

import contextvars
import inspect
import warnings

import numpy as np

from chainrule._tensor_face_args import concrete_face, faced_for, rule_faced
from chainrule.core import (AllArgs, ChainruleError, DTypeError, Tracer, bind, dtype_of,
                            innermost_trace, shape_of)
from chainrule.tree import tree_flatten, tree_structure, tree_unflatten


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


def _constants(leaves):
    """Whether every traced leaf is a Tensor without history holding an array: what a rule run
    on concrete values (`custom_vjp`'s `fwd` in the primitive's impl) sees where NumPy code
    would see arrays; a custom function called there on them runs directly, as on arrays."""
    for x in leaves:
        if isinstance(x, Tracer) and not (getattr(x, '_is_tensor', False) and not x.requires_grad
                                          and not isinstance(x.data, Tracer)):
            return False
    return True


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
    define `_fns(full, static, rule)`: the functions the primitive carries, where `full(f)` turns
    a function of all arguments into one of the differentiable ones, and `rule(f)` presents a
    custom derivative rule's arguments as the caller's (Tensors when the caller passed Tensors).
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
        outs = tree_flatten(out)[0]
        if any_traced(outs) and not (concrete_face.get() and _constants(outs)):
            self._warn_bypassed()
        return out

    def _warn_bypassed(self):
        warnings.warn(
            f'{self.kind} function {self.__name__} got no traced argument but returned a traced '
            'value: it closes over a value being differentiated (or takes a module, whose '
            f"pytree leaves are its parameters' data), so {self.bypassed}. Pass the "
            'differentiated values (Tensors, parameters) as arguments.', CallBypassedWarning,
            stacklevel=4)

    def _fns(self, full, static, rule):   # pragma: no cover - abstract
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
        direct = self._direct(leaves) or (concrete_face.get() and _constants(leaves))
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

        fns = self._fns(full, static, lambda f: rule_faced(f, diff))
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
