"""Checking a graph read from a file, without running it and without allocating its arrays.

What this module lets you do: `check_graph(graph, probe_limit)` validates a `Graph` that
`chainrule.export.load_graph` rebuilt from untrusted JSON, and raises `FormatProblem` saying
which equation is wrong and why. It checks:

1. every variable is defined once, before it is used; constants have their variables' types;
2. every equation's parameters against the primitive's schema (`SCHEMAS`: each parameter's
   name and kind -- an axis, a shape, a dtype, an index, a graph, one of a few strings, ...);
   a parameter that is missing, unexpected or of the wrong kind is refused, so a crafted file
   can never hand a primitive an argument it would choke on (or a NumPy keyword such as `out=`);
3. every equation's declared result types against its primitive's rules, on *abstract values*
   (shapes and dtypes): the primitive's own `shape` rule where it has one, the broadcasting rule
   for elementwise primitives, and otherwise the rules in `RULES` (a reshape, a matmul, a
   convolution, an FFT, ...). Dtypes come from running the primitive on one-element arrays. No
   array of a declared shape is ever created, so a small file declaring huge shapes loads in
   small memory (a program that needs huge arrays only needs them when it runs);
4. graph-carrying primitives (`cond`, `scan`, `while`, `jit_call`): their graphs' input and
   output types agree with the equation's operands, counts and results.

The rules of step 3 live in `chainrule._shaperules`.

A primitive with no rule here (one registered by a user) is checked by running it on broadcast
zero arrays of the declared shapes, only when the equation's declared arrays hold at most
`probe_limit` elements; beyond that the file is refused, saying how to allow it.
"""

import importlib
import warnings

import numpy as np

from chainrule._format import FormatProblem
from chainrule._shaperules import RULES, axis_index, size_of
from chainrule.core import registry
from chainrule.interpreters.staging import Graph, Literal, ShapedArray, abstract_eval

__all__ = ['check_graph', 'find_primitive', 'SCHEMAS', 'RULES', 'DTYPES']

DTYPES = frozenset({'float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8',
                    'uint16', 'uint32', 'uint64', 'bool', 'complex128', 'complex64'})


# --- parameter kinds ------------------------------------------------------------------------------

def _int(v):
    return type(v) is int


def _nonneg(v):
    return type(v) is int and v >= 0


def _ints(v):
    return isinstance(v, tuple) and all(type(x) is int for x in v)


def _shape(v):
    return isinstance(v, tuple) and all(_nonneg(x) for x in v)


def _pair(v):
    return isinstance(v, tuple) and len(v) == 2 and all(_nonneg(x) for x in v)


def _choice(*options):
    return lambda v: any(v is o or (isinstance(o, str) and v == o) for o in options)


def _index_item(x):
    if x is None or x is Ellipsis or type(x) is int:
        return True
    if isinstance(x, slice):
        return all(p is None or type(p) is int for p in (x.start, x.stop, x.step)) and \
            x.step != 0
    return isinstance(x, np.ndarray) and x.dtype.kind in 'biu'


KINDS = {
    'int': _int,
    'int or None': lambda v: v is None or _int(v),
    'nonneg': _nonneg,
    'bool': lambda v: isinstance(v, bool),
    'ints': _ints,
    'bools': lambda v: isinstance(v, tuple) and all(isinstance(x, bool) for x in v),
    'shape': _shape,
    'reshape': lambda v: isinstance(v, tuple) and all(type(x) is int and x >= -1 for x in v),
    'pair': _pair,
    'dtype': lambda v: isinstance(v, np.dtype) and v.name in DTYPES,
    'index': lambda v: isinstance(v, tuple) and all(map(_index_item, v)) and
    sum(x is Ellipsis for x in v) <= 1,
    'graph': lambda v: isinstance(v, Graph),
    'two graphs': lambda v: isinstance(v, tuple) and len(v) == 2 and
    all(isinstance(g, Graph) for g in v),
    'norm': _choice(None, 'backward', 'ortho', 'forward'),
    'side': _choice('left', 'right'),
    'reduction': _choice('mean', 'sum', 'none'),
    'UPLO': _choice('L', 'U'),
    'str': lambda v: isinstance(v, str) and len(v) < 1000,
    'kth': lambda v: _int(v) or (_ints(v) and len(v) > 0),
    'conv method': _choice('auto', 'direct', 'fft'),
    'positive float': lambda v: isinstance(v, float) and v > 0 and np.isfinite(v),
}

_WINDOW = {'kernel': 'pair', 'stride': 'pair', 'padding': 'pair'}

# the parameters of every primitive that takes any (the others take none)
SCHEMAS = {
    'all': {'axis': 'ints', 'keepdims': 'bool'},
    'any': {'axis': 'ints', 'keepdims': 'bool'},
    'argmax': {'axis': 'int', 'keepdims': 'bool'},
    'argmin': {'axis': 'int', 'keepdims': 'bool'},
    'argpartition': {'kth': 'kth', 'axis': 'int'},
    'argsort': {'axis': 'int', 'stable': 'bool'},
    'astype': {'dtype': 'dtype'},
    'at_add': {'idx': 'index'},
    'at_set': {'idx': 'index'},
    'broadcast_to': {'shape': 'shape'},
    'concatenate': {'axis': 'int'},
    'convolve': {'nbatch': 'nonneg', 'method': 'conv method'},
    'cond': {'branches': 'two graphs'},
    'conv2d': {'stride': 'pair', 'padding': 'pair', 'dilation': 'pair?'},
    'batch_norm': {'eps': 'positive float'},
    'class_labels': {'num_classes': 'nonneg', 'ignore_index': 'int or None', 'op': 'str'},
    'cross_entropy': {'reduction': 'reduction', 'ignore_index': 'int'},
    'cumprod': {'axis': 'int'},
    'cumsum': {'axis': 'int'},
    'eigh': {'UPLO': 'UPLO'},
    'einsum': {'spec': 'str'},
    'fftn': {'axes': 'ints', 'norm': 'norm', 'inverse': 'bool'},
    'fold': dict(_WINDOW, shape='shape', dilation='pair?'),
    'getitem': {'idx': 'index'},
    'irfftn': {'axes': 'ints', 'n': 'nonneg', 'norm': 'norm'},
    'jit_call': {'graph': 'graph'},
    'log_softmax': {'axis': 'int'},
    'lstm_layer': {'reverse': 'bool'},
    'lstm_layer_vjp': {'reverse': 'bool', 'needed': 'bools'},
    'gru_layer': {'reverse': 'bool'},
    'gru_layer_vjp': {'reverse': 'bool', 'needed': 'bools'},
    'max': {'axis': 'ints', 'keepdims': 'bool'},
    'max_pool2d': _WINDOW,
    'unfold': dict(_WINDOW, dilation='pair?'),
    'pool_gather': _WINDOW,
    'pool_scatter': _WINDOW,
    'qr': {'full_matrices': 'bool'},
    'reshape': {'shape': 'reshape'},
    'rfftn': {'axes': 'ints', 'norm': 'norm'},
    'round': {'decimals': 'int'},
    'scan': {'body': 'graph', 'length': 'nonneg', 'reverse': 'bool', 'num_consts': 'nonneg',
             'num_carry': 'nonneg'},
    'scatter_add': {'idx': 'index', 'shape': 'shape'},
    'scatter_along_axis': {'axis': 'int', 'n': 'nonneg'},
    'searchsorted': {'side': 'side'},
    'solve_banded': {'l': 'nonneg', 'u': 'nonneg'},
    'split': {'cuts': 'ints', 'axis': 'nonneg'},
    'sum': {'axis': 'ints', 'keepdims': 'bool'},
    'svd': {'full_matrices': 'bool'},
    'take_along_axis': {'axis': 'int'},
    'threefry2x32': {'shape': 'shape'},
    'transpose': {'axes': 'ints'},
    'triangular_solve': {'lower': 'bool'},
    'while': {'cond': 'graph', 'body': 'graph', 'num_cond_consts': 'nonneg',
              'num_body_consts': 'nonneg'},
}

# graphs made by other means (checkpoint, custom rules) carry Python functions: not loadable;
# so does `odeint` (its right-hand side, a Python function, is a parameter)
_NOT_LOADABLE = {'checkpoint_call', 'custom_jvp_call', 'custom_vjp_call', 'odeint'}

# chainrule's modules that declare primitives when imported, beyond those `import chainrule`
# and `chainrule.lax` declare: a saved graph using one of theirs loads without its user
# importing the module first (`find_primitive`). Only these fixed names are ever imported.
DECLARING_MODULES = ('chainrule.scipy.special', 'chainrule.scipy.linalg',
                     'chainrule.scipy.signal', 'chainrule.scipy.integrate')


def find_primitive(name):
    """The registered primitive called `name` (a string read from a file), importing the
    modules of `DECLARING_MODULES` one by one until one declares it; None if none does (or the
    module that would cannot be imported, e.g. without SciPy)."""
    prim = registry.get(name)
    for module in DECLARING_MODULES:
        if prim is not None:
            break
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        prim = registry.get(name)
    return prim


def not_loadable(name):
    """Primitives no saved graph holds: those carrying Python functions, and reverse mode's
    `projectN` (nodes of its tape only, never staged)."""
    return name in _NOT_LOADABLE or (name.startswith('project') and name[7:].isdigit())


def _check_params(prim, params):
    # a kind ending in '?' marks a parameter that may be left out (a default not written into
    # graphs, so graphs saved before it existed still load: conv2d's dilation)
    schema = SCHEMAS.get(prim.name, {})
    required = {k for k, kind in schema.items() if not kind.endswith('?')}
    if not required <= set(params) <= set(schema):
        missing, extra = sorted(required - set(params)), sorted(set(params) - set(schema))
        raise FormatProblem(
            f'parameters {sorted(params)} do not match what {prim.name} takes ({sorted(schema)})'
            + (f'; missing {missing}' if missing else '') + (f'; unexpected {extra}' if extra
                                                            else ''))
    for k, kind in schema.items():
        if k in params and not KINDS[kind.rstrip('?')](params[k]):
            raise FormatProblem(f'parameter {k}={params[k]!r:.60} is not a valid {kind}')


def _check_axes(params, ins):
    """Every `axis` (an int or a tuple) names an axis of the first operand."""
    axis = params.get('axis')
    if axis is None or not ins or isinstance(ins[0], Literal):
        return
    axes = [axis_index(a, ins[0].ndim) for a in (axis if isinstance(axis, tuple) else (axis,))]
    if len(set(axes)) != len(axes):
        raise FormatProblem(f'axis {axis} repeats an axis')


def _elementwise_rule(prim, ins, params):
    shapes = [a.shape for a in ins if not isinstance(a, Literal)]
    shape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    args = [a.value if isinstance(a, Literal) else np.zeros((), a.dtype) for a in ins]
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            res = prim.impl(*args, **params)
        except Exception:    # noqa: BLE001 - some ops reject zero (integer powers): try ones
            res = prim.impl(*[a if isinstance(a, (int, float, complex, bool)) else
                              np.ones((), a.dtype) for a in args], **params)
    return [(shape, np.result_type(res))]


def _abstract(prim, ins, params, declared, probe_limit):
    """The (shape, dtype) of each result of `prim` on `ins` (avals or Literals)."""
    avals = [a.aval if isinstance(a, Literal) else a for a in ins]
    rule = RULES.get(prim.name)
    if rule is not None:
        return rule(*avals, **params)
    if prim.shape is not None:
        out = prim.shape(*avals, **params)
        return list(out) if prim.multiple_results else [out]
    if prim.elementwise or prim.name == 'where':
        return _elementwise_rule(prim, ins, params)
    size = sum(size_of(a.shape) for a in avals) + sum(size_of(a.shape) for a in declared)
    if size > probe_limit:
        raise FormatProblem(
            f'{prim.name} has no shape rule, and checking it means running it on arrays of '
            f'{size} elements (more than probe_limit={probe_limit}); pass a larger '
            'probe_limit to load_graph if the file is trusted')
    return [(a.shape, a.dtype) for a in abstract_eval(prim, ins, params)]


def _check_eqn(e, probe_limit):
    prim = e.prim
    if not_loadable(prim.name):
        raise FormatProblem(f'{prim.name} is not a primitive a saved graph can hold')
    if prim.name in SCHEMAS or prim.name in RULES or prim.shape is not None or \
            prim.elementwise or prim.name == 'where':
        _check_params(prim, e.params)
    ins = [v if isinstance(v, Literal) else v.aval for v in e.invars]
    _check_axes(e.params, ins)
    declared = [v.aval for v in e.outvars]
    try:
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            want = _abstract(prim, ins, e.params, declared, probe_limit)
        want = [ShapedArray(s, d) for s, d in want]
    except FormatProblem:
        raise
    except Exception as err:  # noqa: BLE001 - a rule rejecting its operands, whatever the type
        raise FormatProblem(f'{prim.name} rejects operands {[str(a) for a in ins]} with '
                            f'parameters {_short(e.params)}: {type(err).__name__}: {err}') \
            from None
    if not prim.multiple_results and len(declared) != 1:
        raise FormatProblem(f'{prim.name} has one result, {len(declared)} are declared')
    if want != declared:
        raise FormatProblem(f'results declared as {[str(a) for a in declared]}, but '
                            f'{prim.name} of {[str(a) for a in ins]} gives '
                            f'{[str(a) for a in want]}')


def _short(params):
    return '{' + ', '.join(f'{k}={v!r:.40}' for k, v in sorted(params.items())) + '}'


def check_graph(graph, probe_limit):
    """Check `graph` (rebuilt from a file) as the module docstring says; raise `FormatProblem`
    naming the first equation that is wrong."""
    defined = set()

    def define(v, where):
        if v.id in defined:
            raise FormatProblem(f'{where}: a variable is defined twice')
        defined.add(v.id)

    for v, c in zip(graph.constvars, graph.consts):
        define(v, 'constants')
        if ShapedArray(c.shape, c.dtype) != v.aval:
            raise FormatProblem(f'a constant of type {ShapedArray(c.shape, c.dtype)} is bound '
                                f'to a variable of type {v.aval}')
    for v in graph.invars:
        define(v, 'inputs')
    for i, e in enumerate(graph.eqns):
        where = f'equation {i} ({e.prim.name})'
        if registry.get(e.prim.name) is not e.prim:
            raise FormatProblem(f'{where}: primitive is not registered')
        if any(not isinstance(v, Literal) and v.id not in defined for v in e.invars):
            raise FormatProblem(f'{where}: an input is used before it is defined')
        try:
            _check_eqn(e, probe_limit)
        except FormatProblem as err:
            raise FormatProblem(f'{where}: {err}') from None
        for v in e.outvars:
            define(v, where)
    if any(not isinstance(v, Literal) and v.id not in defined for v in graph.outvars):
        raise FormatProblem('an output is not defined by the graph')

