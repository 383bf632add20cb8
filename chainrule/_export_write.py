"""Writing a saved program: the file format's name and version, the JSON encoding of graphs
(typed variables, equations naming registered primitives, static parameters in a small tagged
vocabulary) and of argument structures, canonical JSON and array digests (the checksums
`chainrule._export_read` verifies). Used by `chainrule.export.Exported.save`.
"""

import hashlib
import json

import numpy as np

from chainrule.core import ChainruleError, Tracer
from chainrule.interpreters.staging import Graph, Literal
from chainrule.tree import tree_unflatten

FORMAT = 'chainrule-graph'
VERSION = 2               # 2: one .npz-style file; 1: a JSON file and a `.npz` beside it
_GRAPH = '__graph__'      # the archive entry holding the JSON description


def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(',', ':'))


def _array_digest(a):
    a = np.asarray(a)
    h = hashlib.sha256(f'{a.dtype.str}{a.shape}'.encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


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
