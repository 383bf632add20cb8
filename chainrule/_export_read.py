"""Reading a saved program, validation first: decoding every number, dtype, shape, parameter,
graph and argument structure of the JSON description against the schema, the file's checksums,
and format version 1's layout. Every problem raises `chainrule._format.FormatProblem`, which
`chainrule.export.load_graph` reports as a `GraphFormatError` naming the file.
"""

import hashlib

import numpy as np

from chainrule import _format, _graphcheck, _shaperules
from chainrule.interpreters.staging import Eqn, Graph, Literal, ShapedArray, Var
from chainrule.tree import tree_flatten
from chainrule._export_write import FORMAT, VERSION, _GRAPH, _array_digest, _canonical


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


_EXPECTED = {'format', 'version', 'in_tree', 'out_tree', 'main', 'graphs', 'consts_sha256',
             'listing'}


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
    return graph


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
