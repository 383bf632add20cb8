"""Export a staged program to files and load it back, without the Python that produced it.

What you can do with it:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> exp = cr.export(lambda w, x: cnp.tanh(x @ w).sum(), np.ones((3, 2)), np.ones((4, 3)))
    >>> exp.save('/tmp/model.crg')          # writes model.crg (JSON) and model.crg.npz
    >>> f = cr.load_graph('/tmp/model.crg')  # in any process: no pickle, no user code
    >>> float(f(np.ones((3, 2)), np.ones((4, 3)))) == float(exp(np.ones((3, 2)), np.ones((4, 3))))
    True
    >>> g = cr.grad(f)(np.ones((3, 2)), np.ones((4, 3)))   # still differentiable

`export(f, *example_args)` stages `f` for arguments shaped like the examples (as `jit` does),
optimises the graph and returns an `Exported` program: callable, printable, savable. A loaded
program runs the same generated NumPy code as `jit`, and under `grad`, `jvp` and `vmap` it binds
the `jit_call` primitive, whose rules are derived from the graph, so it differentiates as the
original did.

The format. `save(path)` writes two files: `path`, a JSON description (format name, version,
the argument and result structures, every graph as typed variables and equations naming
registered primitives, static parameters in a small tagged vocabulary), and `path + '.npz'`,
the constant arrays (NumPy's format, loaded with `allow_pickle=False`). The JSON records the
SHA-256 of its own body and of the `.npz` file.

Loading is validation first, execution never: the checksums must match, the JSON must follow
the schema (every tag, type and variable reference is checked), every primitive must be one
chainrule has registered, and the rebuilt graph must pass `typecheck`. A tampered, truncated or
foreign file raises `GraphFormatError` with the reason, before any of the program runs; nothing
in the file can name a Python object other than a registered primitive and a NumPy dtype.
"""

import hashlib
import io
import json
import os
import zipfile

import numpy as np

from chainrule.core import ChainruleError, Tracer, bind, registry
from chainrule.interpreters.staging import (
    Eqn, Graph, GraphTypeError, Literal, ShapedArray, Var, typecheck)
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['export', 'load_graph', 'Exported', 'GraphFormatError']

FORMAT = 'chainrule-graph'
VERSION = 1


class GraphFormatError(ChainruleError, ValueError):
    """A saved graph that cannot be loaded: missing, truncated, modified, or not a chainrule
    graph. Raised before anything in the file runs."""


# --- the program object ------------------------------------------------------------------------

class Exported:
    """A staged, optimised program with its argument and result structures.

    Call it like the original function (same pytree structure, shapes and dtypes); print it
    to read its graph; `save(path)` it; `.source()` gives the generated NumPy code.
    """

    def __init__(self, graph):
        self.graph = graph

    @property
    def in_avals(self):
        return self.graph.in_avals

    def __call__(self, *args):
        from chainrule.jit import _aval_of_leaf, compiled, jit_call_p
        leaves, tree = tree_flatten(args)
        leaves = [x.data if getattr(x, '_is_tensor', False) and not x.requires_grad else x
                  for x in leaves]
        want = self.graph.in_avals
        got = [_aval_of_leaf(x) for x in leaves]
        if tree != self.graph.in_tree or got != want:
            raise ChainruleError(
                f'exported program takes {self.graph.in_tree} of {_types(want)}, but was '
                f'called with {tree} of {_types(got)}; export it again for the new signature')
        if any(isinstance(x, Tracer) for x in leaves):
            outs = bind(jit_call_p, *leaves, graph=self.graph)
        else:
            outs = compiled(self.graph)(*[np.asarray(x) for x in leaves])
        return tree_unflatten(self.graph.out_tree, outs)

    def source(self):
        from chainrule.jit import compiled
        return compiled(self.graph).__source__

    def __str__(self):
        return str(self.graph)

    def __repr__(self):
        return f'<Exported program: {_types(self.graph.in_avals)} -> ' \
               f'{_types(self.graph.out_avals)}, {len(self.graph.eqns)} equations>'

    def save(self, path):
        """Write the program to `path` (JSON) and `path + '.npz'` (constants).

        Args:
            path: the JSON file's path; the constants go next to it.
        """
        path = os.fspath(path)
        arrays = {}
        graphs = []
        body = {
            'format': FORMAT, 'version': VERSION,
            'in_tree': _encode_tree(self.graph.in_tree),
            'out_tree': _encode_tree(self.graph.out_tree),
            'main': _GraphEncoder(graphs, arrays).encode(self.graph),
            'graphs': graphs,
            # for people: the printed graph (ignored when loading; covered by the checksum)
            'listing': str(self.graph).split('\n'),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        npz = buf.getvalue()
        body['consts_sha256'] = hashlib.sha256(npz).hexdigest()
        text = _canonical(body)
        doc = {'body': body, 'sha256': hashlib.sha256(text.encode()).hexdigest()}
        with open(path + '.npz', 'wb') as f:
            f.write(npz)
        with open(path, 'w') as f:
            json.dump(doc, f, indent=1, sort_keys=True, separators=(',', ': '))
            f.write('\n')


def export(fun, *example_args, static_argnums=()):
    """Stage and optimise `fun` for arguments like `example_args`.

    Args:
        fun: a function of arrays / pytrees of arrays.
        *example_args: arguments fixing the structure, shapes and dtypes the program takes.
        static_argnums: arguments baked into the program (they are not arguments of it).

    Returns:
        An `Exported` program (callable; `.save(path)` writes it).
    """
    from chainrule.jit import jit
    j = jit(fun, static_argnums=static_argnums)
    graph = j.graph(*example_args)
    if static_argnums:
        n = len(example_args)
        sset = {i % n for i in (static_argnums if isinstance(static_argnums, tuple)
                                else (static_argnums,))}
        dyn = tuple(a for i, a in enumerate(example_args) if i not in sset)
        graph.in_tree = tree_flatten(dyn)[1]
    return Exported(graph)


def _types(avals):
    return '(' + ', '.join(map(str, avals)) + ')'


def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(',', ':'))


# --- encoding ------------------------------------------------------------------------------------

def _encode_tree(treedef):
    """A pytree structure as JSON: the skeleton with leaf numbers (tuples, lists, dicts with
    string or int keys, None)."""
    skeleton = tree_unflatten(treedef, list(range(treedef.num_leaves)))
    out_root = []
    todo = [(skeleton, out_root)]     # (value, the list its encoding is appended to)
    while todo:
        x, dst = todo.pop()
        t = type(x)
        if t is int:
            dst.append('*')
        elif x is None:
            dst.append(None)
        elif t in (tuple, list):
            node = {t.__name__: []}
            dst.append(node)
            todo.extend((c, node[t.__name__]) for c in reversed(x))
        elif t is dict:
            if not all(isinstance(k, (str, int)) for k in x):
                raise ChainruleError('export: dict keys in arguments or results must be '
                                     'strings or ints')
            node = {'dict': [[k, []] for k in x]}
            dst.append(node)
            todo.extend((x[k], slot[1]) for k, slot in zip(x, node['dict']))
        else:
            raise ChainruleError(
                f'export: arguments and results must be arrays in tuples, lists, dicts or '
                f'None; got a {t.__name__} node (flatten it to arrays before exporting)')
    return out_root[0]


class _GraphEncoder:
    def __init__(self, graphs, arrays):
        self.graphs = graphs
        self.arrays = arrays
        self.seen = {}

    def array(self, a):
        key = f'a{len(self.arrays)}'
        a = np.asarray(a, order='C')     # (np.ascontiguousarray makes a 0-d array 1-d)
        if a.dtype.kind not in 'biufc':
            raise ChainruleError(f'export: cannot save a constant of dtype {a.dtype}')
        self.arrays[key] = a
        return key

    def encode(self, graph):
        """The index of `graph` in the graphs list (each distinct graph encoded once)."""
        if id(graph) in self.seen:
            return self.seen[id(graph)]
        if any(isinstance(c, Tracer) for c in graph.consts):
            raise ChainruleError('export: the function closed over a traced value; export a '
                                 'function of arrays, outside any transform')
        ids = {}
        avals = []

        def var(v):
            if v.id not in ids:
                ids[v.id] = len(avals)
                avals.append([list(v.aval.shape), v.aval.dtype.name])
            return ids[v.id]

        def atom(v):
            if isinstance(v, Literal):
                return {'lit': _encode_number(v.value)}
            return ids[v.id]

        g = {'consts': [[var(v), self.array(c)] for v, c in zip(graph.constvars, graph.consts)],
             'invars': [var(v) for v in graph.invars]}
        eqns = []
        for e in graph.eqns:
            ins = [atom(v) for v in e.invars]
            eqns.append({'prim': e.prim.name, 'in': ins, 'out': [var(o) for o in e.outvars],
                         'params': {k: self.param(v) for k, v in sorted(e.params.items())}})
        g['eqns'] = eqns
        g['outvars'] = [atom(v) for v in graph.outvars]
        g['avals'] = avals
        index = len(self.graphs)
        self.graphs.append(None)
        self.graphs[index] = g
        self.seen[id(graph)] = index
        return index

    def param(self, v):
        if v is None or isinstance(v, (bool, str)):
            return v if not isinstance(v, str) else {'str': v}
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, complex, np.floating, np.complexfloating)):
            return {'num': _encode_number(v.item() if isinstance(v, np.generic) else v)}
        if isinstance(v, np.dtype):
            return {'dtype': v.name}
        if isinstance(v, tuple):
            return {'tuple': [self.param(x) for x in v]}
        if isinstance(v, list):
            return {'list': [self.param(x) for x in v]}
        if isinstance(v, slice):
            return {'slice': [self.param(v.start), self.param(v.stop), self.param(v.step)]}
        if v is Ellipsis:
            return {'ellipsis': True}
        if isinstance(v, np.ndarray):
            return {'array': self.array(v)}
        if isinstance(v, Graph):
            return {'graph': self.encode(v)}
        raise ChainruleError(f'export: cannot save a parameter of type {type(v).__name__} '
                             f'({v!r:.60})')


def _encode_number(x):
    if isinstance(x, bool):
        return ['bool', x]
    if isinstance(x, int):
        return ['int', x]
    if isinstance(x, float):
        return ['float', repr(x)]
    if isinstance(x, complex):
        return ['complex', repr(x.real), repr(x.imag)]
    raise ChainruleError(f'export: cannot save the number {x!r}')


# --- decoding and validation ---------------------------------------------------------------------

def _fail(msg):
    raise GraphFormatError(msg)


def _decode_number(x, where):
    if not isinstance(x, list) or not x or x[0] not in ('bool', 'int', 'float', 'complex'):
        _fail(f'{where}: malformed number {x!r:.60}')
    kind = x[0]
    try:
        if kind == 'bool' and len(x) == 2 and isinstance(x[1], bool):
            return x[1]
        if kind == 'int' and len(x) == 2 and type(x[1]) is int:
            return x[1]
        if kind == 'float' and len(x) == 2 and isinstance(x[1], str):
            return float(x[1])
        if kind == 'complex' and len(x) == 3 and all(isinstance(p, str) for p in x[1:]):
            return complex(float(x[1]), float(x[2]))
    except ValueError:
        pass
    _fail(f'{where}: malformed number {x!r:.60}')


def _decode_dtype(name, where):
    if not isinstance(name, str) or name not in _DTYPES:
        _fail(f'{where}: unsupported dtype {name!r:.40}')
    return np.dtype(name)


# checking a graph runs each primitive on zero arrays of its declared shapes, so a file must not
# be able to declare absurd ones
_MAX_ELEMENTS = 1 << 31

_DTYPES = {'float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8',
           'uint16', 'uint32', 'uint64', 'bool', 'complex128', 'complex64'}


def _decode_tree(x):
    """The PyTreeDef of an encoded skeleton."""
    root = []
    todo = [(x, root)]
    count = [0]
    nodes = 0
    while todo:
        node, dst = todo.pop()
        nodes += 1
        if nodes > 1_000_000:
            _fail('argument structure too large')
        if node == '*':
            dst.append(('leaf',))
        elif node is None:
            dst.append(None)
        elif isinstance(node, dict) and len(node) == 1:
            (kind, val), = node.items()
            if kind in ('tuple', 'list') and isinstance(val, list):
                kids = []
                dst.append((kind, kids))
                todo.extend((c, kids) for c in reversed(val))
            elif kind == 'dict' and isinstance(val, list) and all(
                    isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                    for p in val):
                kids = []
                dst.append(('dict', [p[0] for p in val], kids))
                todo.extend((p[1][0] if isinstance(p[1], list) and len(p[1]) == 1 else
                             _fail('malformed dict entry in argument structure'), kids)
                            for p in reversed(val))
            else:
                _fail(f'malformed argument structure node {kind!r:.30}')
        else:
            _fail('malformed argument structure')
    # rebuild a skeleton of Python containers, innermost first, without recursion
    order = []
    stack = [root[0]]
    while stack:
        n = stack.pop()
        order.append(n)
        if isinstance(n, tuple) and n[0] in ('tuple', 'list'):
            stack.extend(n[1])
        elif isinstance(n, tuple) and n[0] == 'dict':
            stack.extend(n[2])
    built = {}
    for n in reversed(order):
        if n is None:
            built[id(n)] = None
        elif n[0] == 'leaf':
            built[id(n)] = count[0]
            count[0] += 1
        elif n[0] == 'tuple':
            built[id(n)] = tuple(built[id(c)] for c in n[1])
        elif n[0] == 'list':
            built[id(n)] = [built[id(c)] for c in n[1]]
        else:
            built[id(n)] = dict(zip(n[1], [built[id(c)] for c in n[2]]))
    skeleton = built[id(root[0])] if root[0] is not None else None
    return tree_flatten(skeleton)[1]


class _GraphDecoder:
    def __init__(self, doc_graphs, arrays):
        self.doc = doc_graphs
        self.arrays = arrays
        self.done = {}
        self.active = set()

    def array(self, key, where):
        if not isinstance(key, str) or key not in self.arrays:
            _fail(f'{where}: constant {key!r:.30} is not in the .npz file')
        return self.arrays[key]

    def param(self, x, where):
        if x is None or isinstance(x, bool) or type(x) is int:
            return x
        if not isinstance(x, dict) or len(x) != 1:
            _fail(f'{where}: malformed parameter {x!r:.60}')
        (tag, v), = x.items()
        if tag == 'str' and isinstance(v, str):
            return v
        if tag == 'num':
            return _decode_number(v, where)
        if tag == 'dtype':
            return _decode_dtype(v, where)
        if tag in ('tuple', 'list') and isinstance(v, list):
            items = [self.param(i, where) for i in v]
            return tuple(items) if tag == 'tuple' else items
        if tag == 'slice' and isinstance(v, list) and len(v) == 3:
            parts = [self.param(i, where) for i in v]
            if not all(p is None or type(p) is int for p in parts):
                _fail(f'{where}: malformed slice')
            return slice(*parts)
        if tag == 'ellipsis' and v is True:
            return Ellipsis
        if tag == 'array':
            return self.array(v, where)
        if tag == 'graph' and type(v) is int:
            return self.graph(v)
        _fail(f'{where}: unknown parameter tag {tag!r:.30}')

    def graph(self, index):
        if type(index) is not int or not 0 <= index < len(self.doc):
            _fail(f'graph reference {index!r:.30} out of range')
        if index in self.done:
            return self.done[index]
        if index in self.active:
            _fail('a graph refers to itself')
        self.active.add(index)
        g = self.doc[index]
        where = f'graph {index}'
        if not isinstance(g, dict) or set(g) != {'consts', 'invars', 'eqns', 'outvars',
                                                   'avals'}:
            _fail(f'{where}: malformed graph')
        avals = g['avals']
        if not isinstance(avals, list):
            _fail(f'{where}: malformed avals')
        vars_ = []
        for a in avals:
            if not (isinstance(a, list) and len(a) == 2 and isinstance(a[0], list) and
                    all(type(d) is int and d >= 0 for d in a[0])):
                _fail(f'{where}: malformed variable type {a!r:.60}')
            if int(np.prod(a[0], dtype=np.float64)) > _MAX_ELEMENTS:
                _fail(f'{where}: a variable of shape {a[0]!r:.60} is larger than a loaded graph '
                      f'may declare ({_MAX_ELEMENTS} elements)')
            vars_.append(Var(ShapedArray(a[0], _decode_dtype(a[1], where))))

        def var(i):
            if type(i) is not int or not 0 <= i < len(vars_):
                _fail(f'{where}: variable reference {i!r:.30} out of range')
            return vars_[i]

        def atom(x):
            if isinstance(x, dict) and set(x) == {'lit'}:
                return Literal(_decode_number(x['lit'], where))
            return var(x)

        constvars, consts = [], []
        for c in _list(g['consts'], where):
            if not (isinstance(c, list) and len(c) == 2):
                _fail(f'{where}: malformed constant entry')
            constvars.append(var(c[0]))
            consts.append(self.array(c[1], where))
        invars = [var(i) for i in _list(g['invars'], where)]
        eqns = []
        for k, e in enumerate(_list(g['eqns'], where)):
            w = f'{where}, equation {k}'
            if not isinstance(e, dict) or set(e) != {'prim', 'in', 'out', 'params'}:
                _fail(f'{w}: malformed equation')
            prim = registry.get(e['prim']) if isinstance(e['prim'], str) else None
            if prim is None:
                _fail(f'{w}: unknown primitive {e["prim"]!r:.40}')
            if not isinstance(e['params'], dict):
                _fail(f'{w}: malformed parameters')
            params = {k2: self.param(v, f'{w} ({prim.name})') for k2, v in e['params'].items()}
            eqns.append(Eqn(prim, [atom(x) for x in _list(e['in'], w)], params,
                            [var(i) for i in _list(e['out'], w)]))
        outvars = [atom(x) for x in _list(g['outvars'], where)]
        graph = Graph(constvars, consts, invars, eqns, outvars)
        try:
            typecheck(graph)
        except GraphTypeError as err:
            _fail(f'{where} does not type-check: {err}')
        except ChainruleError as err:
            _fail(f'{where} cannot be checked: {err}')
        self.active.discard(index)
        self.done[index] = graph
        return graph


def _list(x, where):
    if not isinstance(x, list):
        _fail(f'{where}: expected a list')
    return x


def load_graph(path):
    """Load a program saved by `Exported.save`, validating it completely first.

    Args:
        path: the JSON file written by `save` (its `.npz` must sit next to it).

    Returns:
        An `Exported` program: call it, `grad`/`jvp`/`vmap` it, print it.

    Raises:
        GraphFormatError: the files are missing, truncated, modified, or not a chainrule graph.
    """
    import chainrule.lax  # noqa: F401  (registers the control-flow primitives graphs may use)
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        _fail(f'cannot read {path}: {e}')
    try:
        doc = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(f'{path} is not a complete JSON document (truncated or corrupted?): {e}')
    if not isinstance(doc, dict) or set(doc) != {'body', 'sha256'} or \
            not isinstance(doc['body'], dict):
        _fail(f'{path} is not a saved chainrule graph')
    body = doc['body']
    if body.get('format') != FORMAT:
        _fail(f'{path} is not a saved chainrule graph (format {body.get("format")!r:.40})')
    if body.get('version') != VERSION:
        _fail(f'{path} has format version {body.get("version")!r:.20}; this chainrule reads '
              f'version {VERSION}')
    if hashlib.sha256(_canonical(body).encode()).hexdigest() != doc['sha256']:
        _fail(f'{path} was modified after it was saved (its checksum does not match)')
    try:
        with open(path + '.npz', 'rb') as f:
            npz = f.read()
    except OSError as e:
        _fail(f'cannot read the constants file {path}.npz: {e}')
    if hashlib.sha256(npz).hexdigest() != body.get('consts_sha256'):
        _fail(f'{path}.npz does not match the graph it belongs to (modified, truncated, or '
              'from another save)')
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        _fail(f'{path}.npz cannot be read as plain arrays: {e}')
    expected = {'format', 'version', 'in_tree', 'out_tree', 'main', 'graphs',
                'consts_sha256', 'listing'}
    if set(body) != expected:
        _fail(f'{path}: unexpected fields {sorted(set(body) ^ expected)}')
    graphs = _list(body['graphs'], 'graphs')
    graph = _GraphDecoder(graphs, arrays).graph(body['main'])
    graph.in_tree = _decode_tree(body['in_tree'])
    graph.out_tree = _decode_tree(body['out_tree'])
    if graph.in_tree.num_leaves != len(graph.invars) or \
            graph.out_tree.num_leaves != len(graph.outvars):
        _fail(f'{path}: argument or result structure does not match the graph')
    return Exported(graph)
