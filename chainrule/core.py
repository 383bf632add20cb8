"""The core: primitives, `bind`, and the level-ordered stack of active transforms.

What this module lets you do: declare a primitive operation once (its NumPy `impl`, its `shape`
rule and its derivative rules) and have every transform -- reverse mode, forward mode, `vmap`,
staging for `jit`, the eager `Tensor` -- process it.

Why trace levels exist. Transforms nest: in `grad(grad(f))` the inner `grad` records the
operations on values that are themselves being recorded by the outer one. Every active transform
gets a *level* when it starts (outer transforms get lower levels), and each value it tracks is a
`Tracer` tagged with its `Trace`. `bind(prim, *args)` looks for the tracer with the highest level
among the arguments and lets that trace process the primitive; the trace unboxes its own
tracers, calls `bind` again on the inner values (which may be tracers of a lower level), and
boxes the result. With no tracer among the arguments, `bind` calls `impl` directly: that is the
eager fast path, one loop over the arguments and a call.

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> cr.grad(lambda x: x * cr.grad(lambda y: x * y)(2.0))(3.0)   # d/dx x*x = 2x
    6.0

The `Tensor` front end is a tracer too. Each transform has an eager trace one level above it,
and a `Tensor` belongs to the eager trace of the transform it was made in (or to the top-level
one, below every transform). So `Tensor` code runs unchanged inside `grad`, `vmap` and `jit`
(its Tensors are above the transform's tracers), and a Tensor made outside -- a parameter the
transformed function closes over -- is below them: the transform differentiates through it, and
its operations land on the Tensor tape, so `backward()` reaches it.
"""

import contextvars
import itertools

import numpy as np

__all__ = [
    'Primitive', 'bind', 'Tracer', 'Trace', 'new_level', 'registry', 'ChainruleError', 'ShapeError',
    'DTypeError', 'GradientError', 'OutputTypeError', 'IndexOutOfRangeError', 'MissingRuleError',
    'shape_of', 'dtype_of', 'is_traced', 'PerArg', 'AllArgs', 'concrete',
    'ConcretizationError', 'unwrap_inner', 'innermost_trace',
]


# --- errors ------------------------------------------------------------------------------------

class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class ShapeError(ChainruleError, ValueError):
    """Arguments whose shapes do not fit the operation; the message names the op and the shapes."""


class DTypeError(ChainruleError, TypeError):
    """A dtype that cannot take part, e.g. an integer input to `grad`."""


class GradientError(ChainruleError, RuntimeError):
    """A gradient was requested that cannot be computed as asked (freed graph, non-scalar, ...)."""


class OutputTypeError(GradientError, TypeError):
    """A function whose output cannot be differentiated as asked: `grad` of one returning
    `None`, a string, a list or a dict instead of a scalar, or a complex (without
    `holomorphic=True`), boolean or integer scalar; a Jacobian of a non-numeric output. Also a
    `TypeError`, which is what JAX and HIPS autograd raise there."""


class IndexOutOfRangeError(ChainruleError, IndexError):
    """An integer index or class label outside its range (a cross-entropy target, an embedding
    row); the message names the value, its position and the valid range."""


class MissingRuleError(ChainruleError, NotImplementedError):
    """A primitive has no rule for the transform that needs one."""


# --- primitives --------------------------------------------------------------------------------

registry = {}   # name -> Primitive: every primitive chainrule knows, and what rules it has


class Primitive:
    """One primitive operation and every rule it has, declared in one place.

    Args:
        name: the op's name, used in errors, printed graphs and the registry.
        impl: the NumPy computation, `impl(*arrays, **params)`.
        shape: optional `shape(*avals, **params) -> (shape, dtype)`; by default the shape is found
            by running `impl` on small zero arrays of the right shapes (exact, and cheap for the
            sizes `jit` tracing uses).
        vjp: one rule per positional argument, `rule(g, out, *args, **params)` returning the
            cotangent for that argument, or `None` where the op is not differentiable in it.
            `vjp=None` marks the whole op as not differentiable (its outputs are constants).
        jvp: forward-mode rules, one per argument `rule(t, out, *args, **params)` (`t` the
            argument's tangent), or a single function `jvp(tangents, out, *args, **params)`.
        elementwise: the op is elementwise, so the JVP of argument i is its VJP rule applied to
            the tangent (`g * f'(x)` read as `t * f'(x)`).
        linear: the op is linear in every differentiable argument, so its JVP is the op itself
            applied to the tangents.
        batch: the `vmap` rule, `batch(args, dims, **params) -> (out, out_dim)`.
        multiple_results: `impl` returns a tuple; each result is traced separately.
    """

    __slots__ = ('name', 'impl', 'shape', 'vjp', 'jvp', 'elementwise', 'linear', 'batch',
                 'multiple_results', 'transpose', 'doc')

    def __init__(self, name, impl, *, shape=None, vjp=None, jvp=None, elementwise=False,
                 linear=False, batch=None, multiple_results=False, transpose=None, doc=''):
        if name in registry:
            raise ChainruleError(f'a primitive named {name!r} is already registered')
        self.name = name
        self.impl = impl
        self.shape = shape
        self.vjp = tuple(vjp) if isinstance(vjp, list) else vjp
        if type(vjp) is AllArgs and not multiple_results:
            raise ChainruleError(f'primitive {name!r}: AllArgs VJP rules need '
                                 'multiple_results=True')
        self.jvp = jvp
        self.elementwise = elementwise
        self.linear = linear
        self.batch = batch
        self.multiple_results = multiple_results
        self.transpose = transpose
        self.doc = doc
        registry[name] = self

    def __repr__(self):
        return f'<primitive {self.name}>'

    def __call__(self, *args, **params):
        return bind(self, *args, **params)

    @property
    def differentiable(self):
        return self.vjp is not None

    def rules(self):
        """Which rules this primitive has, as a dict of booleans (for the registry listing)."""
        return {
            'vjp': self.vjp is not None,
            'jvp': self.jvp is not None or self.elementwise or self.linear or self.vjp is None,
            'batch': self.batch is not None,
            'shape': True,
        }


class PerArg:
    """VJP rules of a primitive with any number of arguments (`concatenate`): `fn(i, g, out,
    *args, **params)` gives the cotangent of argument i."""

    __slots__ = ('fn',)

    def __init__(self, fn):
        self.fn = fn

    def __getitem__(self, i):
        fn = self.fn
        return lambda g, out, *args, **params: fn(i, g, out, *args, **params)


class AllArgs(PerArg):
    """VJP rules that come out of one computation (a staged graph's backward pass gives every
    argument's cotangent at once): `fn(needed, g, out, *args, **params)` returns one cotangent
    per argument, for each `i` with `needed[i]` (zeros where none flows) and `None` for the
    others. The backward pass calls it once per node, so nothing is kept between the arguments'
    rules; indexing gives argument i's rule alone, for code that asks one at a time. For
    multiple-result primitives (graph calls): the backward pass looks for it only there, so
    other nodes pay nothing for it."""

    __slots__ = ()

    def __getitem__(self, i):
        fn = self.fn

        def rule(g, out, *args, **params):
            return fn(tuple(j == i for j in range(len(args))), g, out, *args, **params)[i]
        return rule


def pass_cotangent(g, ans, x, y=None):
    """The VJP rule of an argument whose cotangent is the output's, unchanged (both arguments
    of `add`, the first of `sub`): the backward pass recognises it and hands `g` on without a
    call. (Its parameters are named, not `*args`, so it reads as not reading the arguments,
    which is what lets an in-place write to them after the op go unflagged.)"""
    return g


def times_second(g, ans, x, y):
    """The VJP rule `g * y` (the first argument of `mul`), recognised by the backward pass,
    which multiplies without the call."""
    return g * y


def times_first(g, ans, x, y):
    """The VJP rule `g * x` (the second argument of `mul`); see `times_second`."""
    return g * x


class ConcretizationError(ChainruleError, TypeError):
    """A concrete value was needed (an index, a Python `if`) but only an abstract one exists."""


def concrete(x):
    """The concrete array behind a tracer (a `Tensor`, a reverse-mode value, ...), for
    arguments that are not differentiated: indices, conditions, `sort` permutations."""
    while isinstance(x, Tracer):
        get = getattr(x, '_concrete', None)
        if get is None:
            raise ConcretizationError(
                f'a concrete value is needed here, but {type(x).__name__} only knows its shape '
                f'{x.shape} and dtype {x.dtype}. Inside jit, pass such values as static '
                'arguments (static_argnums), or use the structured control flow of chainrule.lax.')
        x = get()
    return x


def defprim(name, impl, **rules):
    """Declare a primitive (see `Primitive` for the rules); returns it."""
    return Primitive(name, impl, **rules)


def list_primitives():
    """A table of every registered primitive and the rules it has: `{name: {rule: bool}}`."""
    return {name: p.rules() for name, p in sorted(registry.items())}


# --- tracers and traces ------------------------------------------------------------------------

class Trace:
    """One active transform at one level. Subclasses implement `process(prim, args, params)`."""

    __slots__ = ('level', 'eager', '__weakref__')

    def __init__(self, level):
        self.level = level
        self.eager = None     # the eager trace of Tensors made inside this transform (lazily)

    def process(self, prim, args, params):   # pragma: no cover - abstract
        raise NotImplementedError


class Tracer:
    """A value tracked by a `Trace`. Array methods and operators are installed by
    `chainrule.numpy` (one definition for every tracer type: `Tensor`, the reverse-mode tracer,
    the forward-mode tracer, ...)."""

    __slots__ = ()
    __array_priority__ = 1000
    _trace = None

    # subclasses provide: shape, dtype (properties), and the payload


def bind(prim, *args, **params):
    """Apply primitive `prim` to `args`: the highest-level trace among them processes it, or,
    with no tracer among them, `prim.impl` runs directly (the eager fast path)."""
    trace = None
    level = -1
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if t.level > level:
                trace, level = t, t.level
    if trace is None:
        if _eager_hook is None:
            return prim.impl(*args, **params)
        return _eager_hook(prim, args, params)
    return trace.process(prim, args, params)


# `chainrule.debug` sets this to `hook(prim, args, params)` while a diagnostic mode that checks
# every concrete result (`debug_nans`) is on; None otherwise, so the eager path is unchanged.
_eager_hook = None


_innermost = contextvars.ContextVar('chainrule_innermost_trace', default=None)
# the innermost `jit` trace being staged, if any: operations on `Tensor`s made outside it (a
# module's parameters and buffers, closed over) are staged into it rather than run once at
# trace time, so that the compiled program reads them anew on every call (see `jit`)
capturing_trace = contextvars.ContextVar('chainrule_capturing_trace', default=None)
_ids = itertools.count(1)


def next_level():
    """A level above every level handed out so far (even, so the eager trace of a transform
    can sit at the odd level just above it; see `new_level`).

    Levels are structural: they come from one process-wide counter that never wraps (Python
    integers do not overflow) and that every thread shares, so a transform always gets a level
    above every transform that was active when it started -- including one started in a worker
    thread inside another transform. `itertools.count` hands out each number once even when
    threads race (its `next` runs under the GIL as a single C call)."""
    return 2 * next(_ids)


def innermost_trace():
    """The innermost transform active in this context (thread or task), or None at top level."""
    return _innermost.get()


class new_level:
    """Context manager giving a fresh trace level above every active one.

        with new_level(ReverseTrace) as trace:
            ...   # tracers of `trace` are processed before those of enclosing transforms

    Eager `Tensor`s made while the transform runs belong to an eager trace one level above it
    (`chainrule.tensor`), and Tensors made outside it to one below: so a `Tensor` that a
    transformed function closes over (a module's parameter) is a lower-level value, which the
    transform differentiates *through* -- its operations are recorded on the Tensor tape, and
    `backward()` reaches the parameter, as `torch.func` composes with PyTorch's autograd.
    """

    __slots__ = ('cls', 'args', 'token', 'trace')

    def __init__(self, cls, *args):
        self.cls = cls
        self.args = args

    def __enter__(self):
        self.trace = self.cls(next_level(), *self.args)
        self.token = _innermost.set(self.trace)
        return self.trace

    def __exit__(self, *exc):
        _innermost.reset(self.token)
        return False


def unwrap_inner(x, level):
    """`x` without the `Tensor` wrappers made inside a transform at `level` (or deeper): what
    that transform's own values are. A Tensor from outside (below `level`: a closed-over
    parameter) is kept, since its history continues outside the transform."""
    while getattr(x, '_is_tensor', False) and x._trace.level > level:
        x = x.data
    return x


def is_traced(x):
    return isinstance(x, Tracer)


def shape_of(x):
    """The shape of an array, tracer, or Python number."""
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return x.shape
    return np.shape(x)


def dtype_of(x):
    """The dtype of an array or tracer; Python scalars give their NumPy default dtype."""
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return x.dtype
    return np.result_type(x)


def is_float_dtype(dt):
    return np.issubdtype(dt, np.inexact)
