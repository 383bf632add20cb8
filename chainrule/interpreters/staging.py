"""Staging: trace a function with abstract values into a typed graph IR.

What you can do with it: `trace_to_graph(f, avals)` runs `f` on *staging tracers* -- values that
know only their shape and dtype -- and records every primitive applied to them as an equation of
a `Graph`. The graph can be printed (`str(graph)`, a readable listing in the style of JAX's
jaxprs), checked (`typecheck(graph)`), evaluated again by binding its equations
(`eval_graph`, which works under any transform: `grad` of a graph is `grad` of its equations),
optimised and compiled (`chainrule.jit`) and saved (`chainrule.export`).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> print(cr.make_graph(lambda x: cnp.sin(x) * 2.0)(np.ones(3)))
    { lambda ; a:f64[3]. let
        b:f64[3] = sin a
        c:f64[3] = mul b 2.0
      in (c) }

The IR (Autodidax's): a `Var` is a typed name (its `aval`: shape and dtype), a `Literal` a
Python number written inline, an `Eqn` one primitive application (`outvars = prim[params]
invars`), and a `Graph` its constants, inputs, equations and outputs.

Abstract evaluation. The shape and dtype of a primitive's result come from its `shape` rule
when it has one; otherwise `impl` is run on zero arrays of the input shapes (broadcast views of
one zero, so no memory is allocated for the inputs), and the answer is cached by primitive,
shapes, dtypes and parameters. NumPy's shape and dtype rules depend only on shapes and dtypes,
so this is exact, and it keeps every primitive's shape logic in one place: its `impl`.

Python control flow on staged values cannot be recorded: `if x > 0:` needs a value that does
not exist yet. Such code raises `TracerBoolError`, which says to make the value static
(`static_argnums`) or to use `chainrule.lax.cond` / `fori_loop` / `scan` / `while_loop`.
Control flow on concrete Python values (shapes, static arguments, loop counts) runs as usual,
and the graph records the path taken.
"""

import itertools
import warnings

import numpy as np

from chainrule.core import (
    ChainruleError, ConcretizationError, Trace, Tracer, bind, capturing_trace, new_level,
    registry)
from chainrule.interpreters.reverse import no_grad_level

__all__ = [
    'ShapedArray', 'Var', 'Literal', 'Eqn', 'Graph', 'StagingTrace', 'StagingTracer',
    'trace_to_graph', 'eval_graph', 'typecheck', 'abstract_eval', 'GraphTypeError',
    'TracerBoolError', 'raise_to_aval', 'freeze', 'dtype_short', 'is_literal_value',
    'lift_closure',
]


class GraphTypeError(ChainruleError, TypeError):
    """A graph is not well typed: a variable used before it is defined, defined twice, or an
    equation whose recorded output type differs from what its primitive computes."""


class TracerBoolError(ConcretizationError):
    """Python control flow (`if`, `while`, `bool()`, `int()`, `float()`) on a staged value."""


# --- abstract values -----------------------------------------------------------------------------

_SHORT = {'float64': 'f64', 'float32': 'f32', 'float16': 'f16', 'int64': 'i64', 'int32': 'i32',
          'int16': 'i16', 'int8': 'i8', 'uint8': 'u8', 'uint16': 'u16', 'uint32': 'u32',
          'uint64': 'u64', 'bool': 'bool', 'complex128': 'c128', 'complex64': 'c64'}
_LONG = {v: k for k, v in _SHORT.items()}


def dtype_short(dtype):
    """`float64` -> `f64`, as the printer writes dtypes."""
    name = np.dtype(dtype).name
    return _SHORT.get(name, name)


def dtype_from_short(s):
    return np.dtype(_LONG.get(s, s))


class ShapedArray:
    """An abstract array: a shape and a dtype, no values."""

    __slots__ = ('shape', 'dtype')

    def __init__(self, shape, dtype):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    def __eq__(self, other):
        return (isinstance(other, ShapedArray) and self.shape == other.shape
                and self.dtype == other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f'{dtype_short(self.dtype)}[{",".join(map(str, self.shape))}]'

    def zeros(self):
        """A read-only zero array of this type that allocates one element."""
        return np.broadcast_to(np.zeros((), self.dtype), self.shape)


def raise_to_aval(x):
    """The abstract value of an array, number or tracer."""
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return ShapedArray(x.shape, x.dtype)
    return ShapedArray(np.shape(x), np.result_type(x))


def is_literal_value(x):
    """A Python number, written inline in graphs (NumPy 2 treats these as weakly typed, so they
    must stay Python numbers: `float32 array * 2.0` is float32, `* np.float64(2.0)` is not)."""
    return type(x) in (int, float, complex, bool)


# --- the IR --------------------------------------------------------------------------------------

_var_ids = itertools.count()


class Var:
    """A typed variable of a graph. Names are given when a graph is printed."""

    __slots__ = ('aval', 'id')

    def __init__(self, aval):
        self.aval = aval
        self.id = next(_var_ids)

    def __repr__(self):
        return f'Var({self.aval})'


class Literal:
    """A Python number used as an argument of an equation."""

    __slots__ = ('value', 'aval')

    def __init__(self, value):
        self.value = value
        self.aval = ShapedArray((), np.result_type(value))

    def __repr__(self):
        return f'Literal({self.value!r})'


class Eqn:
    """One primitive application: `outvars = prim[params](*invars)`."""

    __slots__ = ('prim', 'invars', 'params', 'outvars')

    def __init__(self, prim, invars, params, outvars):
        self.prim = prim
        self.invars = list(invars)
        self.params = params
        self.outvars = list(outvars)

    def __repr__(self):
        return f'<Eqn {self.prim.name}>'


class Graph:
    """A typed program: constants, inputs, equations and outputs.

    Attributes:
        constvars: variables bound to the arrays in `consts` (arrays the function closed over).
        consts: their values.
        invars: the inputs, in order.
        eqns: the equations, each after the equations defining its inputs.
        outvars: the outputs (`Var`s or `Literal`s).
        in_tree, out_tree: how the flat inputs and outputs nest into the user's pytrees (set
            by `make_graph`/`jit`; `None` means a flat list).
    """

    def __init__(self, constvars, consts, invars, eqns, outvars, in_tree=None, out_tree=None):
        self.constvars = list(constvars)
        self.consts = list(consts)
        self.invars = list(invars)
        self.eqns = list(eqns)
        self.outvars = list(outvars)
        self.in_tree = in_tree
        self.out_tree = out_tree
        self._cache = {}      # derived programs (compiled code, backward graphs), by key

    @property
    def in_avals(self):
        return [v.aval for v in self.invars]

    @property
    def out_avals(self):
        return [v.aval for v in self.outvars]

    def names(self):
        """A name per variable (`a`, `b`, ..., `z`, `ba`, ...), in order of definition."""
        names = {}
        for v in itertools.chain(self.constvars, self.invars,
                                 (o for e in self.eqns for o in e.outvars)):
            if v.id not in names:
                names[v.id] = _name(len(names))
        return names

    def pretty(self):
        """The graph as text: `{ lambda consts ; inputs. let equations in (outputs) }`."""
        names = self.names()

        def arg(v):
            if isinstance(v, Literal):
                return _literal_str(v.value)
            return names.get(v.id, '?')

        def decl(v):
            return f'{names[v.id]}:{v.aval}'

        lines = [f'{{ lambda {" ".join(map(decl, self.constvars))}'
                 f'{" " if self.constvars else ""}; {" ".join(map(decl, self.invars))}. let']
        for e in self.eqns:
            outs = ' '.join(map(decl, e.outvars))
            ps = _params_str(e.params)
            lines.append(f'    {outs} = {e.prim.name}{ps} {" ".join(map(arg, e.invars))}'.rstrip())
            # graphs carried by the equation (cond's branches, scan's body), listed below it
            # (this recurses once per level of control-flow nesting, not per equation)
            for k, v in sorted(e.params.items()):
                subs = [v] if isinstance(v, Graph) else list(v) if isinstance(v, tuple) and \
                    v and all(isinstance(g, Graph) for g in v) else []
                for i, sub in enumerate(subs):
                    label = k if len(subs) == 1 and isinstance(v, Graph) else f'{k}[{i}]'
                    body = sub.pretty().split('\n')
                    lines.append(f'      {label} = {body[0]}')
                    lines.extend('      ' + ' ' * (len(label) + 3) + b for b in body[1:])
        lines.append(f'  in ({", ".join(map(arg, self.outvars))}) }}')
        return '\n'.join(lines)

    __str__ = pretty

    def __repr__(self):
        return (f'<Graph: {len(self.invars)} input(s), {len(self.eqns)} equation(s), '
                f'{len(self.outvars)} output(s)>')

    def __call__(self, *args):
        """Evaluate the graph on flat arguments (by binding, so transforms see through it).
        The results are the caller's: an argument or constant of the graph comes out copied
        (`chainrule._results.owned`)."""
        from chainrule._results import owned
        return owned(eval_graph(self, args), list(args) + list(self.consts))


def _name(i):
    letters = 'abcdefghijklmnopqrstuvwxyz'
    s = letters[i % 26]
    i //= 26
    while i:
        s = letters[i % 26] + s
        i //= 26
    return s


def _literal_str(v):
    if isinstance(v, float) and not np.isfinite(v):
        return f"float('{v}')"
    return repr(v)


def _param_str(v):
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, np.ndarray):
        if v.size <= 8:
            return f'array({v.tolist()})'
        return f'array<{dtype_short(v.dtype)}[{",".join(map(str, v.shape))}]>'
    if isinstance(v, tuple):
        inner = ', '.join(_param_str(x) for x in v)
        return f'({inner},)' if len(v) == 1 else f'({inner})'
    if isinstance(v, slice):
        return f'{"" if v.start is None else v.start}:{"" if v.stop is None else v.stop}' + \
            ('' if v.step is None else f':{v.step}')
    if isinstance(v, Graph):
        return f'<graph {len(v.invars)}->{len(v.outvars)}, {len(v.eqns)} eqns>'
    return repr(v)


def _params_str(params):
    if not params:
        return ''
    return '[' + ' '.join(f'{k}={_param_str(v)}' for k, v in sorted(params.items())) + ']'


# --- abstract evaluation --------------------------------------------------------------------------

def freeze(v):
    """A hashable stand-in for a parameter value (index params may hold arrays)."""
    if isinstance(v, np.ndarray):
        return ('ndarray', v.shape, v.dtype.str, v.tobytes())
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return ('dict',) + tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, slice):
        return ('slice', v.start, v.stop, v.step)
    try:
        hash(v)
    except TypeError:
        return ('id', id(v))
    return v


_aval_cache = {}


def _sample(aval, kind):
    if kind == 0:
        return aval.zeros()
    # second try, for ops that reject zeros (a singular matrix): ones, or identity matrices
    a = np.ones(aval.shape, aval.dtype)
    if aval.ndim >= 2 and aval.shape[-1] == aval.shape[-2]:
        a = np.broadcast_to(np.eye(aval.shape[-1], dtype=aval.dtype), aval.shape).copy()
    return a


def abstract_eval(prim, in_avals, params, literals=None):
    """The output avals of `prim` applied to inputs of types `in_avals`.

    Args:
        prim: the primitive.
        in_avals: one `ShapedArray` per argument (or a `Literal` for Python numbers).
        params: the static parameters.

    Returns:
        A list of `ShapedArray`s (one per result).
    """
    # literals keyed with their type: 2 and 2.0 are equal as keys but give different dtypes
    key = (prim.name, tuple((type(a.value), a.value) if isinstance(a, Literal) else a
                            for a in in_avals), freeze(params))
    try:
        out = _aval_cache.get(key)
    except TypeError:
        key, out = None, None
    if out is not None:
        return out
    if prim.shape is not None:
        avals = [a.aval if isinstance(a, Literal) else a for a in in_avals]
        res = prim.shape(*avals, **params)
        if prim.multiple_results:
            out = [ShapedArray(s, d) for s, d in res]
        else:
            out = [ShapedArray(*res)]
    else:
        err = None
        for kind in (0, 1):
            args = [a.value if isinstance(a, Literal) else _sample(a, kind) for a in in_avals]
            try:
                with np.errstate(all='ignore'), warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    res = prim.impl(*args, **params)
                break
            except Exception as e:   # noqa: BLE001 - retried with other sample values
                err = e
        else:
            raise ChainruleError(
                f'cannot find the output shape of {prim.name!r} for inputs '
                f'{[str(a) for a in in_avals]}: {err}. Give the primitive a `shape` rule.') \
                from err
        res = res if prim.multiple_results else (res,)
        out = [raise_to_aval(r) for r in res]
    if key is not None:
        if len(_aval_cache) > 100_000:
            _aval_cache.clear()
        _aval_cache[key] = out
    return out


# --- the staging interpreter ---------------------------------------------------------------------

_BOOL_MSG = (
    'Python control flow on a value being traced by jit/make_graph: {what} needs a concrete '
    'value, but this {aval} value is abstract (only its shape and dtype are known while the '
    'function is staged). Either mark the argument it depends on as static '
    '(cr.jit(f, static_argnums=...)), or express the branch or loop with '
    'chainrule.lax.cond / fori_loop / scan / while_loop, or compute on arrays with '
    'chainrule.numpy.where.')


class StagingTracer(Tracer):
    """A value being staged: its abstract value and the graph variable it stands for."""

    __slots__ = ('_trace', 'aval', 'var', 'weak')

    def __init__(self, trace, aval, var):
        self._trace = trace
        self.aval = aval
        self.var = var
        # True for a jit argument that was a Python number: like the number itself it takes the
        # dtype of the array it meets (NumPy 2's weak scalars), so float32 code stays float32
        self.weak = False

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def _bool_error(self, what):
        raise TracerBoolError(_BOOL_MSG.format(what=what, aval=self.aval))

    def __bool__(self):
        self._bool_error('bool() (an `if`, `while`, `and`/`or` or `assert` on it)')

    def __int__(self):
        self._bool_error('int()')

    def __float__(self):
        self._bool_error('float()')

    def __complex__(self):
        self._bool_error('complex()')

    def __index__(self):
        self._bool_error('using it as an index or size')

    def __array__(self, *args, **kwargs):
        raise TracerBoolError(
            f'a NumPy function was called on a staged {self.aval} value: inside jit, use '
            'chainrule.numpy (cnp.sin(x), not np.sin(x)), whose functions can be staged.')

    def backward(self, *args, **kwargs):
        raise ChainruleError(
            f'backward() on a staged {self.aval} value: inside jit the loss is a value of the '
            'program being traced, not a Tensor with a tape. Either jit the forward pass and '
            'call backward() on its result outside (loss = jit(forward)(x); loss.backward()), '
            'or compute the gradients functionally inside the jitted function '
            '(cr.value_and_grad(loss_fn)(params, x)).')

    def __repr__(self):
        return f'StagingTracer<{self.aval}>'


class StagingTrace(Trace):
    """Records each primitive applied to its tracers as an `Eqn`."""

    __slots__ = ('eqns', 'constvars', 'consts', 'const_ids', 'writes')

    def __init__(self, level):
        super().__init__(level)
        self.eqns = []
        self.constvars = []
        self.consts = []
        self.const_ids = {}    # id(array) -> Var, so one closed-over array is one constant
        # the in-place writes to captured Tensors staged so far (`chainrule._functionalize`):
        # a read of a Tensor written earlier in the trace reads its staged value
        self.writes = None

    def new_arg(self, aval):
        return StagingTracer(self, aval, Var(aval))

    def const_var(self, value):
        v = self.const_ids.get(id(value))
        if v is None:
            if not isinstance(value, Tracer):
                value = np.asarray(value)
            v = Var(raise_to_aval(value))
            self.const_ids[id(value)] = v
            self.constvars.append(v)
            self.consts.append(value)
        return v

    def to_atom(self, x):
        if isinstance(x, StagingTracer) and x._trace is self:
            return x.var
        if is_literal_value(x):
            return Literal(x)
        if self.writes is not None:
            new = self.writes.read(x)
            if new is not None:
                return self.to_atom(new)
        d = getattr(x, 'data', None)
        if isinstance(d, StagingTracer) and d._trace is self:
            return d.var         # a view of a captured Tensor (a Tensor holding a staged value)
        return self.const_var(x)

    def process(self, prim, args, params):
        inline = getattr(prim, 'inline', None)
        if inline is not None:
            # jit inside jit (and the graph-carrying primitives of chainrule.lax that ask for
            # it): evaluate the inner graph here, so its equations join this graph
            return inline(*args, **params)
        invars = [self.to_atom(a) for a in args]
        out_avals = abstract_eval(prim, [v if isinstance(v, Literal) else v.aval
                                         for v in invars], params)
        outvars = [Var(a) for a in out_avals]
        self.eqns.append(Eqn(prim, invars, params, outvars))
        outs = [StagingTracer(self, v.aval, v) for v in outvars]
        ng = no_grad_level.get()
        if ng is not None and ng >= self.level and prim.vjp is not None and \
                prim.name != 'no_grad':
            # staged inside a no_grad() block begun while staging: marked, so a reverse-mode
            # derivative of the program gets no cotangent through it, as the reverse-mode
            # transforms (see no_grad_level), while forward mode's tangent goes through, as
            # grad mode does not govern PyTorch's forward AD (`ops.grad_mode`)
            from chainrule.ops.grad_mode import no_grad_p
            outs = [bind(no_grad_p, o) if np.dtype(o.aval.dtype).kind in 'fc' else o
                    for o in outs]
        return tuple(outs) if prim.multiple_results else outs[0]


def trace_to_graph(f, in_avals, capture_tensors=False):
    """Stage `f(*tracers)` (which returns a flat list) into a `Graph`.

    Args:
        f: a function of `len(in_avals)` arrays returning a list or tuple of arrays.
        in_avals: a `ShapedArray` per argument.
        capture_tensors: stage the operations on `Tensor`s made outside (closed over) too, so
            that they become inputs (`jit`), instead of running them once now.

    Returns:
        The `Graph`. Values `f` closed over become constants; tracers of enclosing transforms
        that `f` closed over become constants too, and are listed in `graph.consts` (the caller
        must pass them explicitly to keep them differentiable, as `jit` does).
    """
    with new_level(StagingTrace) as trace:
        ins = [trace.new_arg(a) for a in in_avals]
        token = capturing_trace.set(trace) if capture_tensors else None
        try:
            outs = f(*ins)
        finally:
            if token is not None:
                capturing_trace.reset(token)
        outvars = []
        for o in outs:
            if getattr(o, '_is_tensor', False) and o._trace.level > trace.level:
                if o.requires_grad:
                    # its history reaches Tensors that require grad but are not arguments (a
                    # module's parameters, closed over): their values would be baked into the
                    # graph as constants and their gradients silently lost
                    raise ChainruleError(
                        'the staged function closes over Tensors that require grad (such as '
                        "a module's parameters): the graph would hold their values as constants "
                        'and backward() would never reach them. Pass them as arguments (e.g. '
                        'cr.jit(lambda params, x: ...)), or stage under cr.no_grad() for '
                        'inference.')
                o = o.data
            outvars.append(trace.to_atom(o))
    return Graph(trace.constvars, trace.consts, [t.var for t in ins], trace.eqns, outvars)


def lift_closure(graph):
    """Move constants that are tracers of enclosing transforms (values the staged function
    closed over inside `grad`, `vmap`, ...) to the end of the graph's inputs.

    Returns:
        (graph, lifted): the new graph and the tracers to pass for its extra inputs, so the
        enclosing transforms see them as arguments (and differentiate through them).
    """
    lifted = [c for c in graph.consts if isinstance(c, Tracer)]
    if not lifted:
        return graph, []
    keep = [(v, c) for v, c in zip(graph.constvars, graph.consts) if not isinstance(c, Tracer)]
    extra = [v for v, c in zip(graph.constvars, graph.consts) if isinstance(c, Tracer)]
    return Graph([v for v, _ in keep], [c for _, c in keep], graph.invars + extra, graph.eqns,
                 graph.outvars, graph.in_tree, graph.out_tree), lifted


def eval_graph(graph, args, consts=None):
    """Evaluate `graph` on `args` by binding each equation's primitive.

    Because it binds, every transform active around the call sees the graph's primitives:
    this is how `grad`, `jvp` and `vmap` differentiate or batch a staged program.

    Returns:
        The list of output values.
    """
    env = {}
    consts = graph.consts if consts is None else consts
    for v, c in zip(graph.constvars, consts):
        env[v.id] = c
    if len(args) != len(graph.invars):
        raise ChainruleError(f'graph takes {len(graph.invars)} argument(s), got {len(args)}')
    for v, a in zip(graph.invars, args):
        env[v.id] = a

    def read(v):
        return v.value if isinstance(v, Literal) else env[v.id]

    for e in graph.eqns:
        out = bind(e.prim, *[read(v) for v in e.invars], **e.params)
        if e.prim.multiple_results:
            for v, o in zip(e.outvars, out):
                env[v.id] = o
        else:
            env[e.outvars[0].id] = out
    return [read(v) for v in graph.outvars]


def typecheck(graph):
    """Check that `graph` is well typed; raise `GraphTypeError` naming the equation if not.

    Checks: each variable is defined once, before it is used; each equation's primitive is
    registered; the recorded output types equal what abstract evaluation of the primitive on the
    recorded input types gives; the constants have their variables' types.
    """
    defined = set()

    def define(v, where):
        if v.id in defined:
            raise GraphTypeError(f'{where}: variable defined twice')
        defined.add(v.id)

    for v, c in zip(graph.constvars, graph.consts):
        define(v, 'constants')
        if raise_to_aval(c) != v.aval:
            raise GraphTypeError(f'constant of type {raise_to_aval(c)} bound to a variable of '
                                 f'type {v.aval}')
    if len(graph.constvars) != len(graph.consts):
        raise GraphTypeError('constvars and consts differ in length')
    for v in graph.invars:
        define(v, 'inputs')
    for i, e in enumerate(graph.eqns):
        where = f'equation {i} ({e.prim.name})'
        if registry.get(e.prim.name) is not e.prim:
            raise GraphTypeError(f'{where}: primitive is not registered')
        for v in e.invars:
            if not isinstance(v, Literal) and v.id not in defined:
                raise GraphTypeError(f'{where}: input used before it is defined')
        want = abstract_eval(e.prim, [v if isinstance(v, Literal) else v.aval
                                      for v in e.invars], e.params)
        got = [v.aval for v in e.outvars]
        if want != got:
            raise GraphTypeError(f'{where}: outputs recorded as {got}, but {e.prim.name} of '
                                 f'{[str(v.aval) for v in e.invars]} gives {want}')
        for v in e.outvars:
            define(v, where)
    for v in graph.outvars:
        if not isinstance(v, Literal) and v.id not in defined:
            raise GraphTypeError('an output is not defined by the graph')
    return True
