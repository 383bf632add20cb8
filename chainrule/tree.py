"""Pytrees: nested containers of arrays, flattened to a list of leaves and a structure.

What this module lets you do: pass nested tuples, lists, dicts, namedtuples, `None` and your own
registered classes wherever chainrule's transforms take or return arrays, and work with such
nests yourself -- map a function over every array (`tree_map`), flatten a nest to a list and
rebuild it (`tree_flatten` / `tree_unflatten`), or turn it into one flat vector for
`scipy.optimize` (`ravel_pytree`).

    >>> import numpy as np, chainrule as cr
    >>> params = {'w': np.ones((2, 3)), 'b': np.zeros(3), 'extra': None}
    >>> leaves, treedef = cr.tree.tree_flatten(params)
    >>> treedef
    PyTreeDef({'b': *, 'extra': None, 'w': *})
    >>> [x.shape for x in leaves]
    [(3,), (2, 3)]
    >>> float(cr.tree.tree_map(lambda x: 2 * x, params)['w'][0, 0])
    2.0

The conventions are JAX's: a dict's children are taken in sorted-key order (so two dicts with
the same keys flatten alike whatever their insertion order; an `OrderedDict` keeps its own
order); `None` is a node with no children, not a leaf; anything not registered -- an array, a
number, a `Tensor` -- is a leaf.

How a structure is stored. A `PyTreeDef` is the pre-order list of the tree's nodes, each entry
`(node type, auxiliary data, number of children)`, with `None` entries for the leaves. A flat
tuple compares, hashes and prints without recursion, and flattening and rebuilding are loops
with an explicit stack, so a nest ten thousand levels deep works (Python's recursion limit is
about a thousand).
"""

import collections

import numpy as np

__all__ = [
    'PyTreeDef', 'register_pytree_node', 'register_pytree_node_class', 'tree_flatten',
    'tree_unflatten', 'tree_leaves', 'tree_structure', 'tree_map', 'ravel_pytree',
    'treedef_is_leaf', 'all_leaves', 'tree_flatten_with_path', 'keystr', 'DictKey',
    'SequenceKey', 'GetAttrKey', 'FlattenedIndexKey', 'tree_reduce', 'tree_all',
]


# --- the node registry ---------------------------------------------------------------------------

class _NodeType:
    """How to take one kind of node apart and put it back together."""

    __slots__ = ('type', 'flatten', 'unflatten', 'name')

    def __init__(self, type_, flatten, unflatten, name=None):
        self.type = type_
        self.flatten = flatten        # node -> (children, aux)
        self.unflatten = unflatten    # (aux, children) -> node
        self.name = name or type_.__name__


_registry = {}


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Make instances of `nodetype` pytree nodes rather than leaves.

    Args:
        nodetype: the class to register (subclasses are not included; register them too).
        flatten_func: `flatten_func(node) -> (children, aux_data)`; `children` an iterable of
            the node's sub-trees, `aux_data` anything hashable that is needed to rebuild the
            node but is not a child (static configuration, key names).
        unflatten_func: `unflatten_func(aux_data, children) -> node`.

    Returns:
        `nodetype`, so the call can be used in a class body's aftermath or as part of a
        decorator.

    Example:
        >>> class Point:
        ...     def __init__(self, x, y): self.x, self.y = x, y
        >>> register_pytree_node(Point, lambda p: ((p.x, p.y), None),
        ...                      lambda aux, ch: Point(*ch))  # doctest: +ELLIPSIS
        <class '...Point'>
    """
    if nodetype in _registry:
        raise ValueError(f'{nodetype.__name__} is already registered as a pytree node')
    _registry[nodetype] = _NodeType(nodetype, flatten_func, unflatten_func)
    return nodetype


def register_pytree_node_class(cls):
    """Class decorator: register `cls` using its `tree_flatten(self) -> (children, aux)` method
    and its `tree_unflatten(cls, aux, children)` classmethod (JAX's protocol)."""
    return register_pytree_node(cls, lambda node: node.tree_flatten(), cls.tree_unflatten)


def _dict_keys(d):
    try:
        return tuple(sorted(d))
    except TypeError:   # keys of mixed types cannot be sorted; keep the dict's own order
        return tuple(d)


def _flatten_dict(d):
    keys = _dict_keys(d)
    return [d[k] for k in keys], keys


def _flatten_defaultdict(d):
    keys = _dict_keys(d)
    return [d[k] for k in keys], (d.default_factory, keys)


def _unflatten_defaultdict(aux, children):
    return collections.defaultdict(aux[0], zip(aux[1], children))


_registry[tuple] = _NodeType(tuple, lambda t: (t, None), lambda _, ch: tuple(ch))
_registry[list] = _NodeType(list, lambda t: (t, None), lambda _, ch: list(ch))
_registry[dict] = _NodeType(dict, _flatten_dict, lambda keys, ch: dict(zip(keys, ch)))
_registry[type(None)] = _NodeType(type(None), lambda _: ((), None), lambda _a, _c: None, 'None')
_registry[collections.OrderedDict] = _NodeType(
    collections.OrderedDict, lambda d: (list(d.values()), tuple(d)),
    lambda keys, ch: collections.OrderedDict(zip(keys, ch)))
_registry[collections.defaultdict] = _NodeType(
    collections.defaultdict, _flatten_defaultdict, _unflatten_defaultdict)

# namedtuples are recognised by their `_fields` rather than registered one class at a time
_NAMEDTUPLE = _NodeType(tuple, lambda t: (tuple(t), type(t)), lambda cls, ch: cls(*ch),
                        'namedtuple')


def _node_type(x, is_leaf=None):
    """The `_NodeType` of `x`, or None when `x` is a leaf."""
    if is_leaf is not None and is_leaf(x):
        return None
    nt = _registry.get(type(x))
    if nt is None and isinstance(x, tuple) and hasattr(type(x), '_fields'):
        return _NAMEDTUPLE
    return nt


# --- PyTreeDef -----------------------------------------------------------------------------------

class PyTreeDef:
    """The structure of a pytree without its leaves.

    Two trees have equal `PyTreeDef`s when they have the same node types, the same auxiliary
    data (dict keys, namedtuple class, ...) and the same shape of nesting. A `PyTreeDef` is
    hashable, so it can key a cache (as `jit` does with its input signature).

    Attributes:
        num_leaves: how many leaves a tree of this structure has.
        num_nodes: how many nodes, leaves included.
    """

    __slots__ = ('_nodes', 'num_leaves', '_hash')

    def __init__(self, nodes, num_leaves=None):
        # nodes: pre-order tuple; an entry is None for a leaf, else (_NodeType, aux, n_children)
        self._nodes = tuple(nodes)
        self.num_leaves = (num_leaves if num_leaves is not None
                           else sum(1 for n in self._nodes if n is None))
        self._hash = None

    @property
    def num_nodes(self):
        return len(self._nodes)

    def _key(self):
        return self._nodes   # _NodeType objects compare by identity, aux data by value

    def __eq__(self, other):
        return isinstance(other, PyTreeDef) and self._key() == other._key()

    def __hash__(self):
        if self._hash is None:
            try:
                self._hash = hash(self._key())
            except TypeError:   # unhashable aux data: hash by the nesting alone
                self._hash = hash(tuple(None if n is None else (n[0].name, n[2])
                                        for n in self._nodes))
        return self._hash

    def unflatten(self, leaves):
        """Build a tree of this structure with `leaves` (in flattening order) as its leaves."""
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f'{self!r} has {self.num_leaves} leaves, but {len(leaves)} '
                             'values were given to put in them')
        # Walk the pre-order list backwards: each node's children are then the top of the
        # stack, first child on top.
        stack = []
        push = stack.append
        rest = reversed(leaves)
        for n in reversed(self._nodes):
            if n is None:
                push(next(rest))
            else:
                nt, aux, k = n
                if k:
                    children = stack[:-k - 1:-1]     # the top k, first child first
                    del stack[-k:]
                else:
                    children = []
                push(nt.unflatten(aux, children))
        return stack[0]

    def flatten_up_to(self, tree):
        """The sub-trees of `tree` sitting where this structure has its leaves.

        `tree` must have this structure as a prefix (every node of this structure matches a
        node of `tree` of the same type and auxiliary data); used by `tree_map` with several
        trees, and to match `in_axes` against arguments.
        """
        out = []
        stack = [tree]
        for n in self._nodes:
            x = stack.pop()
            if n is None:
                out.append(x)
                continue
            nt, aux, k = n
            got = _node_type(x)
            children, got_aux = got.flatten(x) if got is not None else ((), None)
            children = list(children)
            if got is not nt or got_aux != aux or len(children) != k:
                raise ValueError(f'tree structure mismatch: expected a {nt.name} node '
                                 f'{_describe(nt, aux, k)}, got {_short(x)}; the full '
                                 f'expected structure is {self!r}')
            stack.extend(reversed(children))
        return out

    def children(self):
        """The structures of the root's children (an empty list for a leaf)."""
        if self._nodes[0] is None:
            return []
        out = []
        i = 1
        for _ in range(self._nodes[0][2]):
            j, pending = i, 1
            while pending:          # one complete sub-tree in pre-order
                n = self._nodes[j]
                pending += (n[2] if n is not None else 0) - 1
                j += 1
            out.append(PyTreeDef(self._nodes[i:j]))
            i = j
        return out

    def __repr__(self):
        # built bottom-up with a stack, like `unflatten`, so deep trees print too
        stack = []
        for n in reversed(self._nodes):
            if n is None:
                stack.append('*')
                continue
            nt, aux, k = n
            ch = [stack.pop() for _ in range(k)]
            stack.append(_node_repr(nt, aux, ch))
        return f'PyTreeDef({stack[0]})'


def _node_repr(nt, aux, ch):
    if nt.type is type(None):
        return 'None'
    if nt.type is tuple and nt is not _NAMEDTUPLE:
        return '(' + ', '.join(ch) + (',)' if len(ch) == 1 else ')')
    if nt.type is list:
        return '[' + ', '.join(ch) + ']'
    if nt.type is dict:
        return '{' + ', '.join(f'{k!r}: {c}' for k, c in zip(aux, ch)) + '}'
    if nt is _NAMEDTUPLE:
        return f'{aux.__name__}(' + ', '.join(f'{f}={c}' for f, c in zip(aux._fields, ch)) + ')'
    return f'CustomNode({nt.name}[{aux!r}], [' + ', '.join(ch) + '])'


def _describe(nt, aux, k):
    if nt.type is dict:
        return f'with keys {list(aux)}'
    return f'with {k} children'


def _short(x):
    s = repr(x)
    return s if len(s) < 80 else s[:77] + '...'


def treedef_is_leaf(treedef):
    """True when `treedef` is the structure of a single leaf."""
    return treedef._nodes == (None,)


# --- flattening and mapping ----------------------------------------------------------------------

def tree_flatten(tree, is_leaf=None):
    """Split `tree` into its leaves and its structure.

    Args:
        tree: any nest of tuples, lists, dicts, namedtuples, `None` and registered classes.
        is_leaf: optional predicate; a sub-tree for which it returns True is kept whole as a
            leaf (e.g. `is_leaf=lambda x: isinstance(x, tuple)`).

    Returns:
        `(leaves, treedef)`: the leaves in order (dicts by sorted key), and a `PyTreeDef` with
        which `tree_unflatten(treedef, leaves)` rebuilds the tree.
    """
    leaves = []
    nodes = []
    stack = [tree]
    # the loop runs once per node on every transform call: locals instead of attribute lookups
    get, pop, push, add_leaf, add_node = (_registry.get, stack.pop, stack.extend, leaves.append,
                                          nodes.append)
    while stack:
        x = pop()
        nt = get(type(x))
        if nt is None and isinstance(x, tuple) and hasattr(type(x), '_fields'):
            nt = _NAMEDTUPLE
        if nt is None or (is_leaf is not None and is_leaf(x)):
            add_leaf(x)
            add_node(None)
            continue
        children, aux = nt.flatten(x)
        if type(children) is not list:
            children = list(children)
        add_node((nt, aux, len(children)))
        push(reversed(children))
    return leaves, PyTreeDef(nodes, len(leaves))


class _Key:
    """One step of a key path: how a child is reached from its parent node."""

    __slots__ = ('key',)
    fmt = '[{!r}]'

    def __init__(self, key):
        self.key = key

    def __str__(self):
        return self.fmt.format(self.key)

    def __repr__(self):
        return f'{type(self).__name__}({self.key!r})'

    def __eq__(self, other):
        return type(other) is type(self) and other.key == self.key

    def __hash__(self):
        return hash((type(self).__name__, self.key))


class DictKey(_Key):
    """A dict entry: `['name']`."""


class SequenceKey(_Key):
    """An element of a tuple or list: `[0]`."""


class GetAttrKey(_Key):
    """A namedtuple field: `.name`."""

    fmt = '.{}'


class FlattenedIndexKey(_Key):
    """The i-th child of a registered class, as its flatten function lists them: `[<i>]`."""

    fmt = '[<{}>]'


def _child_keys(nt, aux, k):
    if nt.type in (dict, collections.OrderedDict):
        return [DictKey(key) for key in aux]
    if nt.type is collections.defaultdict:
        return [DictKey(key) for key in aux[1]]
    if nt is _NAMEDTUPLE:
        return [GetAttrKey(f) for f in aux._fields]
    if nt.type in (tuple, list):
        return [SequenceKey(i) for i in range(k)]
    return [FlattenedIndexKey(i) for i in range(k)]


def tree_flatten_with_path(tree, is_leaf=None):
    """`tree_flatten`, with the key path of each leaf.

    Returns:
        `(pairs, treedef)` where `pairs` lists `(path, leaf)`, a path being a tuple of keys
        (`DictKey`, `SequenceKey`, `GetAttrKey`, `FlattenedIndexKey`); `keystr(path)` writes
        it as Python would index it.

    Examples:
        >>> keystr(tree_flatten_with_path({'layers': [{'w': 1.0}]})[0][0][0])
        "['layers'][0]['w']"
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    paths = []
    stack = [()]
    for n in treedef._nodes:
        path = stack.pop()
        if n is None:
            paths.append(path)
            continue
        stack.extend(reversed([path + (key,) for key in _child_keys(*n)]))
    return list(zip(paths, leaves)), treedef


def keystr(path):
    """A key path as text: `"['layers'][0]['w']"`."""
    return ''.join(str(k) for k in path)


def tree_unflatten(treedef, leaves):
    """Rebuild a tree of structure `treedef` from `leaves` (the inverse of `tree_flatten`).

    Args:
        treedef: a `PyTreeDef` from `tree_flatten` or `tree_structure`.
        leaves: an iterable of `treedef.num_leaves` values.

    Returns:
        The tree.
    """
    return treedef.unflatten(leaves)


def tree_leaves(tree, is_leaf=None):
    """The leaves of `tree`, in flattening order (see `tree_flatten`)."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None):
    """The `PyTreeDef` of `tree` (see `tree_flatten`)."""
    return tree_flatten(tree, is_leaf)[1]


def all_leaves(iterable):
    """True when every element of `iterable` is a leaf (not a pytree node)."""
    return all(_node_type(x) is None for x in iterable)


def tree_map(f, tree, *rest, is_leaf=None):
    """Apply `f` to every leaf of `tree` (and the matching leaves of `rest`).

    Args:
        f: called as `f(leaf, *matching leaves of rest)`.
        tree: the pytree whose structure the result has.
        *rest: more pytrees, each with `tree`'s structure or with it as a prefix (then `f`
            receives the sub-tree found where `tree` has a leaf).
        is_leaf: as in `tree_flatten`.

    Returns:
        A tree with `tree`'s structure holding `f`'s results.

        >>> tree_map(lambda a, b: a + b, (1, {'x': 2}), (10, {'x': 20}))
        (11, {'x': 22})
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [treedef.flatten_up_to(r) for r in rest]
    return treedef.unflatten(f(*xs) for xs in zip(leaves, *others))


def tree_reduce(function, tree, initializer=None, is_leaf=None):
    """Fold `function(accumulated, leaf)` over the leaves of `tree`, in flattening order.

        >>> tree_reduce(lambda a, b: a + b, {'x': 1, 'y': [2, 3]})
        6
    """
    leaves = tree_leaves(tree, is_leaf)
    if initializer is None:
        if not leaves:
            raise TypeError('tree_reduce of a tree without leaves needs an initializer')
        acc, leaves = leaves[0], leaves[1:]
    else:
        acc = initializer
    for x in leaves:
        acc = function(acc, x)
    return acc


def tree_all(tree):
    """True when every leaf of `tree` is truthy (`all` over the leaves)."""
    return all(tree_leaves(tree))


# --- one flat vector -----------------------------------------------------------------------------

def ravel_pytree(tree):
    """Concatenate every leaf of `tree` into one 1-d vector, e.g. to hand to `scipy.optimize`.

    Leaves are raveled in flattening order and cast to their common dtype (NumPy's promotion).
    Works on traced values too, so `grad(lambda v: loss(unravel(v)))` differentiates through
    the reshaping.

    Args:
        tree: a pytree of arrays and numbers.

    Returns:
        `(flat, unravel)`: the vector, and `unravel(vector) -> tree` putting a vector of the same
        length back into `tree`'s structure, each leaf with its original shape and dtype
        (Python floats come back as 0-d arrays).

        >>> flat, unravel = ravel_pytree({'a': np.ones(2), 'b': 3.0})
        >>> flat
        array([1., 1., 3.])
        >>> unravel(flat * 2)['a']
        array([2., 2.])
    """
    from chainrule.core import Tracer, dtype_of, shape_of
    leaves, treedef = tree_flatten(tree)
    shapes = [shape_of(x) for x in leaves]
    dtypes = [np.dtype(dtype_of(x)) for x in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    ends = np.cumsum(sizes).tolist()
    total = ends[-1] if ends else 0
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    if any(isinstance(x, Tracer) for x in leaves):
        import chainrule.numpy as cnp
        flat = cnp.concatenate([cnp.asarray(x).ravel().astype(dtype) if dtype_of(x) != dtype
                                else cnp.ravel(x) for x in leaves])
    elif leaves:
        flat = np.concatenate([np.ravel(np.asarray(x, dtype)) for x in leaves])
    else:
        flat = np.zeros(0, dtype)

    def unravel(vec):
        if shape_of(vec) != (total,):
            raise ValueError(f'unravel expects a vector of shape ({total},) like the one '
                             f'ravel_pytree returned, got shape {shape_of(vec)}')
        out = []
        start = 0
        for end, shape, dt in zip(ends, shapes, dtypes):
            piece = vec[start:end].reshape(shape)
            if dtype_of(piece) != dt:
                piece = piece.astype(dt) if not (np.dtype(dtype_of(piece)).kind == 'c'
                                                 and dt.kind != 'c') else piece.real.astype(dt)
            out.append(piece)
            start = end
        return treedef.unflatten(out)

    return flat, unravel
