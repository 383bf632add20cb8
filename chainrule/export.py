"""Export a staged program to files and load it back, without the Python that produced it.

What you can do with it:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> exp = cr.export(lambda w, x: cnp.tanh(x @ w).sum(), np.ones((3, 2)), np.ones((4, 3)))
    >>> exp.save('/tmp/model.crg')          # one file, replaced atomically
    >>> f = cr.load_graph('/tmp/model.crg')  # in any process: no pickle, no user code
    >>> float(f(np.ones((3, 2)), np.ones((4, 3)))) == float(exp(np.ones((3, 2)), np.ones((4, 3))))
    True
    >>> g = cr.grad(f)(np.ones((3, 2)), np.ones((4, 3)))   # still differentiable

`export(f, *example_args)` stages `f` for arguments shaped like the examples (as `jit` does),
optimises the graph and returns an `Exported` program: callable, printable, savable. A loaded
program runs the same generated NumPy code as `jit`, and under `grad`, `jvp` and `vmap` it binds
the `jit_call` primitive, whose rules are derived from the graph, so it differentiates as the
original did.

The format. `save(path)` writes one file, an uncompressed `.npz` archive (NumPy's format, plain
arrays only, never unpickled): the entry `__graph__` holds a JSON description (format name,
version, the argument and result structures, every graph as typed variables and equations naming
registered primitives, static parameters in a small tagged vocabulary, the printed listing for
people) and the SHA-256 of that description and of every constant; the other entries are the
constant arrays. The file is written to a temporary name and renamed over `path`, so a failed
save leaves the previous export intact. Files of format version 1 (a JSON file with a `.npz`
beside it) still load.

Loading is validation first, execution never (`load_graph` lists every check): nothing in the
file can name a Python object other than a registered primitive and a NumPy dtype; every array's
declared size is checked against the bytes that hold it before it is allocated; the graph is
type-checked on shapes and dtypes alone, each primitive's parameters against its schema. A
tampered, truncated, crafted or foreign file raises `GraphFormatError` naming the file and the
reason, before any of the program runs.
"""

import hashlib
import json
import os
import sys
import types

import numpy as np

from chainrule import _format, _graphcheck, _shaperules
from chainrule.core import ChainruleError, Tracer, bind
from chainrule.interpreters.staging import Eqn, Graph, Literal, ShapedArray, Var
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['export', 'load_graph', 'Exported', 'GraphFormatError']

FORMAT = 'chainrule-graph'
VERSION = 2               # 2: one .npz-style file; 1: a JSON file and a `.npz` beside it
_GRAPH = '__graph__'      # the archive entry holding the JSON description


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
        """Write the program to the single file `path`.

        The file is replaced in one rename once the new one is complete, so a failure midway
        (a full disk) leaves the previous export at `path` loadable, and concurrent saves to
        one path each write their own temporary file.

        Args:
            path: the file to write (by convention `.crg`).
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
        body['consts_sha256'] = {k: _array_digest(a) for k, a in arrays.items()}
        if _format.json_depth(body) > _format.MAX_DEPTH - 2:
            raise ChainruleError('export: the program\'s argument structure is nested too '
                                 'deeply to be saved and loaded back; flatten it')
        text = _canonical(body)
        doc = {'body': body, 'sha256': hashlib.sha256(text.encode()).hexdigest()}
        meta = json.dumps(doc, indent=1, sort_keys=True, separators=(',', ': ')) + '\n'
        entries = {_GRAPH: np.frombuffer(meta.encode('utf-8'), np.uint8), **arrays}
        _format.atomic_write(path, lambda f: _format.write_npz(f, entries))


def export(fun, *example_args, static_argnums=(), static_argnames=()):
    """Stage and optimise `fun` for arguments like `example_args`.

    Args:
        fun: a function of arrays / pytrees of arrays.
        *example_args: arguments fixing the structure, shapes and dtypes the program takes.
        static_argnums, static_argnames: arguments baked into the program (they are not
            arguments of it), by position or by name.

    Returns:
        An `Exported` program (callable; `.save(path)` writes it).
    """
    from chainrule.jit import jit
    # (the graph's in_tree is the structure of the arguments that are not static)
    j = jit(fun, static_argnums=static_argnums, static_argnames=static_argnames)
    entry = j._lookup(example_args, {}, count=False)[0]
    if entry.rng:
        raise ChainruleError(
            f'export: {j.__name__[4:-1]} draws from chainrule\'s random generator (cr.randn, '
            'cr.rand, dropout, nn.init, ...), whose state a saved program cannot carry: take a '
            'key argument and draw with chainrule.random instead (key = cr.random.key(0); '
            'cr.random.normal(key, shape))')
    return Exported(_bake_captures(entry, j.__name__[4:-1]))


def _bake_captures(entry, name):
    """The program with the Tensors `fun` closed over (a module's parameters, which `jit`
    takes by reference as trailing inputs) bound to their current values as constants: a
    saved program carries them, and takes only the arguments of `fun`."""
    graph = entry.graph
    n = len(entry.closure)
    if not n:
        return graph
    for c in entry.closure:
        if not getattr(c, '_is_tensor', False) or isinstance(c.data, Tracer):
            raise ChainruleError(
                f'export: {name} closes over a value traced by an enclosing transform (grad, '
                'vmap, ...); a saved program cannot carry it: pass it as an argument')
    baked = Graph(graph.constvars + graph.invars[-n:],
                  graph.consts + [np.array(c.data, copy=True) for c in entry.closure],
                  graph.invars[:-n], graph.eqns, graph.outvars)
    baked.in_tree, baked.out_tree = graph.in_tree, graph.out_tree
    return baked


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
        a = np.asarray(a)            # (not ascontiguousarray: that turns 0-d arrays into (1,))
        if not a.dtype.isnative:     # stored as the dtype its variable is typed with
            a = a.astype(a.dtype.newbyteorder('='))
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
    raise _format.FormatProblem(msg)


def _decode_number(x, where):
    if not isinstance(x, list) or not x or x[0] not in ('bool', 'int', 'float', 'complex'):
        _fail(f'{where}: malformed number {x!r:.60}')
    kind = x[0]
    try:
        if kind == 'bool' and len(x) == 2 and isinstance(x[1], bool):
            return x[1]
        if kind == 'int' and len(x) == 2 and type(x[1]) is int and -2**63 <= x[1] < 2**64:
            return x[1]
        if kind == 'float' and len(x) == 2 and isinstance(x[1], str):
            return float(x[1])
        if kind == 'complex' and len(x) == 3 and all(isinstance(p, str) for p in x[1:]):
            return complex(float(x[1]), float(x[2]))
    except (ValueError, OverflowError):
        pass
    _fail(f'{where}: malformed number {x!r:.60}')


def _decode_dtype(name, where):
    if not isinstance(name, str) or name not in _DTYPES:
        _fail(f'{where}: unsupported dtype {name!r:.40}')
    return np.dtype(name)


# a variable may declare any shape NumPy can index (checking never allocates it), no more
_MAX_ELEMENTS = 1 << 62

_DTYPES = _graphcheck.DTYPES

_MAX_NESTING = 100


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
    def __init__(self, doc_graphs, arrays, probe_limit):
        self.doc = doc_graphs
        self.arrays = arrays
        self.probe_limit = probe_limit
        self.done = {}
        self.active = set()
        self.used = set()

    def array(self, key, where):
        if not isinstance(key, str) or key not in self.arrays:
            _fail(f'{where}: constant {key!r:.30} is not in the file')
        if key in self.used:     # one array object per use: loaded programs never share one
            _fail(f'{where}: constant {key!r:.30} is used twice')
        self.used.add(key)
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
        if len(self.active) >= _MAX_NESTING:     # decoding recurses once per nesting level
            _fail(f'graphs are nested more than {_MAX_NESTING} deep (control flow inside '
                  'control flow ...)')
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
            if _shaperules.size_of(a[0]) > _MAX_ELEMENTS:
                _fail(f'{where}: a variable of shape {a[0]!r:.60} is larger than any array can '
                      f'be ({_MAX_ELEMENTS} elements)')
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
            prim = _graphcheck.find_primitive(e['prim']) if isinstance(e['prim'], str) \
                else None
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
            _graphcheck.check_graph(graph, self.probe_limit)
        except _format.FormatProblem as err:
            _fail(f'{where} does not type-check: {err}')
        self.active.discard(index)
        self.done[index] = graph
        return graph


def _list(x, where):
    if not isinstance(x, list):
        _fail(f'{where}: expected a list')
    return x


def _array_digest(a):
    a = np.asarray(a)
    h = hashlib.sha256(f'{a.dtype.str}{a.shape}'.encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


_EXPECTED = {'format', 'version', 'in_tree', 'out_tree', 'main', 'graphs', 'consts_sha256',
             'listing'}

# equations whose checking would run a primitive without a shape rule on arrays larger than
# this are refused (see `chainrule._graphcheck`); every built-in primitive has a rule
PROBE_LIMIT = 1 << 22


def load_graph(path, *, probe_limit=PROBE_LIMIT):
    """Load a program saved by `Exported.save`, validating it completely first.

    Nothing in the file runs, is unpickled or is allocated before it has been checked:

    - the file is an archive of plain `.npy` arrays (no object dtypes), each entry's declared
      shape and dtype matching the bytes it holds (a small file cannot declare a huge array);
    - the JSON description (nested at most `chainrule._format.MAX_DEPTH` deep) has the format
      name and version, and its SHA-256 and every constant's SHA-256 match (an edit after
      saving is detected);
    - it follows the schema: every tag, number, dtype (one of NumPy's numeric dtypes or bool),
      shape, variable reference, graph reference (no cycles) and the argument and result
      structures (tuples, lists, dicts, None);
    - every primitive is one chainrule has registered (and carries no Python function; one of
      `chainrule.scipy`'s is declared by importing its module, which the file never names), and
      its parameters have the names and kinds its schema lists (`chainrule._graphcheck.SCHEMAS`);
    - every variable is defined once before use, constants have their variables' types, and
      every equation's declared result types are what its primitive gives for the declared
      operand types, computed on shapes and dtypes alone (no array of a declared shape is ever
      made); `cond`, `scan`, `while` and `jit_call` equations agree with their graphs.

    Files written by chainrule 0.1 (format version 1: a JSON file with a `.npz` beside it) are
    read too.

    Args:
        path: the file written by `save`.
        probe_limit: a primitive without a shape rule (only ones registered outside chainrule)
            is checked by running it on zero arrays of the declared shapes, when those hold at
            most this many elements in all; otherwise the file is refused.

    Returns:
        An `Exported` program: call it, `grad`/`jvp`/`vmap` it, print it.

    Raises:
        GraphFormatError: the file is missing, truncated, modified, crafted, or not a chainrule
            graph; the message names the file and what is wrong.
    """
    import chainrule.lax  # noqa: F401  (registers the control-flow primitives graphs may use)
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise GraphFormatError(f'cannot read {path}: {e}') from None
    try:
        if raw.startswith(b'PK'):
            doc, arrays = _read_v2(raw)
        else:
            doc, arrays = _read_v1(raw, path)
        return _build(doc, arrays, probe_limit)
    except _format.FormatProblem as e:
        raise GraphFormatError(f'cannot load {path}: {e}') from None


def _read_v2(raw):
    npz = _format.NpzReader(raw)
    if _GRAPH not in npz.files:
        _fail('it is an .npz archive but not a saved chainrule graph (no graph entry)')
    text = npz.read(_GRAPH)
    if text.dtype != np.uint8 or text.ndim != 1:
        _fail('its graph entry is not text')
    doc = _check_doc(_format.parse_json(text.tobytes()), 2)
    digests = doc['body']['consts_sha256']
    if not isinstance(digests, dict) or set(digests) != set(npz.files) - {_GRAPH}:
        _fail('its constants do not match the graph they belong to (modified, or from '
              'another save)')
    arrays = {}
    for k in digests:
        arrays[k] = npz.read(k)
        if _array_digest(arrays[k]) != digests[k]:
            _fail(f'its constant {k!r:.30} was modified after it was saved')
    return doc, arrays


def _read_v1(raw, path):
    """Format version 1: the JSON in `path`, the constants in `path + '.npz'`."""
    doc = _check_doc(_format.parse_json(raw), 1)
    try:
        with open(path + '.npz', 'rb') as f:
            npz = f.read()
    except OSError as e:
        _fail(f'cannot read the constants file {path}.npz: {e}')
    if hashlib.sha256(npz).hexdigest() != doc['body']['consts_sha256']:
        _fail(f'{path}.npz does not match the graph it belongs to (modified, truncated, or '
              'from another save)')
    return doc, _format.NpzReader(npz).read_all()


def _check_doc(doc, version):
    if not isinstance(doc, dict) or set(doc) != {'body', 'sha256'} or \
            not isinstance(doc['body'], dict):
        _fail('it is not a saved chainrule graph')
    body = doc['body']
    if body.get('format') != FORMAT:
        _fail(f'it is not a saved chainrule graph (format {body.get("format")!r:.40})')
    if body.get('version') != version:
        _fail(f'it has format version {body.get("version")!r:.20}; this chainrule reads '
              f'versions 1 and {VERSION}')
    if hashlib.sha256(_canonical(body).encode()).hexdigest() != doc['sha256']:
        _fail('it was modified after it was saved (its checksum does not match)')
    if set(body) != _EXPECTED:
        _fail(f'unexpected fields {sorted(set(body) ^ _EXPECTED)}')
    return doc


def _build(doc, arrays, probe_limit):
    body = doc['body']
    graphs = _list(body['graphs'], 'graphs')
    if body['version'] == 1:
        _repair_v1_scalars(graphs, arrays)
    graph = _GraphDecoder(graphs, arrays, probe_limit).graph(body['main'])
    graph.in_tree = _decode_tree(body['in_tree'])
    graph.out_tree = _decode_tree(body['out_tree'])
    if graph.in_tree.num_leaves != len(graph.invars) or \
            graph.out_tree.num_leaves != len(graph.outvars):
        _fail('the argument or result structure does not match the graph')
    return Exported(graph)


def _repair_v1_scalars(graphs, arrays):
    """Version 1 saved 0-d constants with shape (1,): give them back their declared shape."""
    for g in graphs:
        if not (isinstance(g, dict) and isinstance(g.get('consts'), list) and
                isinstance(g.get('avals'), list)):
            continue
        for c in g['consts']:
            if isinstance(c, list) and len(c) == 2 and type(c[0]) is int and \
                    0 <= c[0] < len(g['avals']) and isinstance(c[1], str) and \
                    g['avals'][c[0]] and g['avals'][c[0]][0] == [] and \
                    getattr(arrays.get(c[1]), 'shape', None) == (1,):
                arrays[c[1]] = arrays[c[1]].reshape(())


# `import chainrule.export` gives this module, and `chainrule.export(f, *args)` still exports:
# the module is callable (the package attribute and the submodule are one object)
class _CallableModule(types.ModuleType):
    def __call__(self, fun, *example_args, **options):
        return export(fun, *example_args, **options)


sys.modules[__name__].__class__ = _CallableModule
