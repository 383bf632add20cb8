"""Tests of chainrule.tree: flattening, rebuilding, mapping and raveling pytrees."""

import collections
import pickle  # noqa: F401  (namedtuple classes below are module-level so they could pickle)

import numpy as np
import pytest

import chainrule as cr
from chainrule import tree as T

Point = collections.namedtuple('Point', ['x', 'y'])


class Box:
    """A user class registered as a pytree node with static metadata."""

    def __init__(self, value, label):
        self.value = value
        self.label = label


T.register_pytree_node(Box, lambda b: ((b.value,), b.label), lambda label, ch: Box(ch[0], label))


@T.register_pytree_node_class
class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def tree_flatten(self):
        return (self.a, self.b), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def test_flatten_order_and_roundtrip():
    a, b, c, d = np.arange(4.0)
    tree = {'z': a, 'a': [b, (c, None)], 'm': Point(d, 5.0)}
    leaves, td = T.tree_flatten(tree)
    # dict children in sorted key order: 'a', 'm', 'z'; None is a node without leaves
    assert leaves == [b, c, d, 5.0, a]
    assert td.num_leaves == 5
    back = T.tree_unflatten(td, leaves)
    assert back == tree
    assert type(back['m']) is Point and type(back['a']) is list and back['a'][1][1] is None


def test_dict_insertion_order_irrelevant_and_ordereddict_kept():
    assert T.tree_structure({'a': 1, 'b': 2}) == T.tree_structure({'b': 3, 'a': 4})
    od = collections.OrderedDict([('b', 1), ('a', 2)])
    leaves, td = T.tree_flatten(od)
    assert leaves == [1, 2]
    assert list(T.tree_unflatten(td, [7, 8]).items()) == [('b', 7), ('a', 8)]
    dd = collections.defaultdict(list, {'y': 1, 'x': 2})
    back = T.tree_map(lambda v: v * 10, dd)
    assert isinstance(back, collections.defaultdict) and back == {'x': 20, 'y': 10}
    assert back.default_factory is list


def test_treedef_equality_hash_repr():
    t1 = T.tree_structure((1, {'b': 2, 'a': [3, None]}))
    t2 = T.tree_structure((np.ones(3), {'a': [4.0, None], 'b': 'leaf'}))
    t3 = T.tree_structure((1, {'b': 2, 'a': (3, None)}))
    assert t1 == t2 and hash(t1) == hash(t2)
    assert t1 != t3
    assert len({t1, t2, t3}) == 2
    assert repr(t1) == "PyTreeDef((*, {'a': [*, None], 'b': *}))"
    assert repr(T.tree_structure((1,))) == 'PyTreeDef((*,))'
    assert repr(T.tree_structure(Point(1, 2))) == 'PyTreeDef(Point(x=*, y=*))'
    assert T.tree_structure(Point(1, 2)) != T.tree_structure((1, 2))
    assert 'Box' in repr(T.tree_structure(Box(1.0, 'lbl')))


def test_none_and_leaf_structures():
    leaves, td = T.tree_flatten(None)
    assert leaves == [] and td.num_leaves == 0 and T.tree_unflatten(td, []) is None
    leaves, td = T.tree_flatten(np.ones(2))
    assert len(leaves) == 1 and T.treedef_is_leaf(td)
    assert T.tree_leaves([(), [], {}]) == []
    assert T.tree_unflatten(T.tree_structure([(), [], {}]), []) == [(), [], {}]


def test_registered_classes():
    b = Box(np.array([1.0, 2.0]), 'weights')
    leaves, td = T.tree_flatten({'box': b, 'pair': Pair(1.0, [2.0])})
    assert len(leaves) == 3   # the array is one leaf
    out = T.tree_unflatten(td, [x * 2 for x in leaves])
    assert isinstance(out['box'], Box) and out['box'].label == 'weights'
    np.testing.assert_array_equal(out['box'].value, [2.0, 4.0])
    assert isinstance(out['pair'], Pair) and out['pair'].b == [4.0]
    # the aux data (the label) is part of the structure
    assert T.tree_structure(Box(1.0, 'a')) != T.tree_structure(Box(1.0, 'b'))
    with pytest.raises(ValueError, match='already registered'):
        T.register_pytree_node(Box, lambda b: ((), None), lambda a, c: None)


def test_tree_map_multiple_and_prefix():
    out = T.tree_map(lambda a, b: a + b, (1, {'x': 2}), (10, {'x': 20}))
    assert out == (11, {'x': 22})
    # the second tree may have the first's structure as a prefix: f sees the sub-tree
    out = T.tree_map(lambda a, sub: (a, sub), [1, 2], [(3, 4), {'k': 5}])
    assert out == [(1, (3, 4)), (2, {'k': 5})]
    with pytest.raises(ValueError, match='mismatch'):
        T.tree_map(lambda a, b: a, {'a': 1}, {'b': 1})
    with pytest.raises(ValueError, match='mismatch'):
        T.tree_map(lambda a, b: a, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match='mismatch'):
        T.tree_map(lambda a, b: a, (1, 2), [1, 2])


def test_is_leaf():
    tree = [(1, 2), (3, 4)]
    leaves, td = T.tree_flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), (3, 4)]
    assert T.tree_map(sum, tree, is_leaf=lambda x: isinstance(x, tuple)) == [3, 7]


def test_unflatten_wrong_count():
    td = T.tree_structure([1, 2])
    with pytest.raises(ValueError, match='2 leaves'):
        T.tree_unflatten(td, [1])


def test_children():
    td = T.tree_structure((1, [2, 3], {'a': None}))
    ch = td.children()
    assert ch == [T.tree_structure(0), T.tree_structure([0, 0]), T.tree_structure({'a': None})]
    assert T.tree_structure(1).children() == []


def test_deep_tree_no_recursion_limit():
    depth = 20_000
    tree = 1.0
    for _ in range(depth):
        tree = [tree, 2.0]
    leaves, td = T.tree_flatten(tree)
    assert len(leaves) == depth + 1 and leaves[0] == 1.0
    assert td.num_nodes == 2 * depth + 1
    back = T.tree_unflatten(td, [x + 1 for x in leaves])
    x = back
    for _ in range(depth):
        assert x[1] == 3.0
        x = x[0]
    assert x == 2.0
    assert td == T.tree_structure(tree) and hash(td) == hash(T.tree_structure(tree))
    assert repr(td).startswith('PyTreeDef([[[[')


def test_ravel_pytree_roundtrip_dtypes():
    tree = {'w': np.arange(6.0).reshape(2, 3), 'b': np.float32(1.5), 's': 2.0,
            'n': None, 'i': np.array([7, 8])}
    flat, unravel = T.ravel_pytree(tree)
    assert flat.shape == (10,) and flat.dtype == np.float64
    # order: sorted keys b, i, n (no leaves), s, w
    np.testing.assert_array_equal(flat, [1.5, 7, 8, 2.0, 0, 1, 2, 3, 4, 5])
    back = unravel(flat + 1)
    np.testing.assert_array_equal(back['w'], np.arange(1.0, 7.0).reshape(2, 3))
    assert back['b'].dtype == np.float32 and back['i'].dtype == np.int64
    np.testing.assert_array_equal(back['i'], [8, 9])
    assert back['n'] is None and back['s'].shape == ()
    with pytest.raises(ValueError, match=r'\(10,\)'):
        unravel(np.zeros(9))
    flat, unravel = T.ravel_pytree([])
    assert flat.shape == (0,) and unravel(flat) == []


def test_ravel_pytree_differentiable_and_scipy():
    tree = {'a': np.array([1.0, 2.0]), 'b': np.array([[3.0]])}
    flat0, unravel = T.ravel_pytree(tree)

    def loss(v):
        t = unravel(v)
        return (t['a'] ** 2).sum() + 3.0 * (t['b'] ** 3).sum()

    g = cr.grad(loss)(flat0)
    np.testing.assert_allclose(g, [2.0, 4.0, 81.0])

    # ravel inside a traced function: the gradient flows back into every leaf
    def f(a, b):
        v, _ = T.ravel_pytree({'a': a, 'b': b})
        return (v * np.arange(1.0, 4.0)).sum()

    ga, gb = cr.grad(f, argnums=(0, 1))(tree['a'], tree['b'])
    np.testing.assert_allclose(ga, [1.0, 2.0])
    np.testing.assert_allclose(gb, [[3.0]])

    opt = pytest.importorskip('scipy.optimize')
    target = {'a': np.array([0.5, -1.0]), 'b': np.array([[2.0]])}
    tflat, _ = T.ravel_pytree(target)
    res = opt.minimize(lambda v: float(((v - tflat) ** 2).sum()), flat0,
                       jac=cr.grad(lambda v: ((v - tflat) ** 2).sum()), method='BFGS')
    sol = unravel(res.x)
    np.testing.assert_allclose(sol['a'], target['a'], atol=1e-6)
    np.testing.assert_allclose(sol['b'], target['b'], atol=1e-6)


def test_flatten_with_path_and_keystr():
    tree = {'layers': [{'w': 1.0, 'b': 2.0}, Point(3.0, None)], 'box': Box(4.0, 'x'),
            'od': collections.OrderedDict([('z', 5.0)])}
    pairs, td = T.tree_flatten_with_path(tree)
    assert [leaf for _, leaf in pairs] == T.tree_leaves(tree)
    assert [T.keystr(p) for p, _ in pairs] == [
        "['box'][<0>]", "['layers'][0]['b']", "['layers'][0]['w']", "['layers'][1].x",
        "['od']['z']"]
    assert pairs[1][0] == (T.DictKey('layers'), T.SequenceKey(0), T.DictKey('b'))
    assert td == T.tree_structure(tree)
    assert T.tree_flatten_with_path(7.0)[0] == [((), 7.0)]


def test_tree_reduce_and_all():
    t = {'a': np.array([1.0, 2.0]), 'b': (np.array(3.0), None)}
    assert T.tree_reduce(lambda acc, x: acc + float(np.sum(x ** 2)), t, 0.0) == 14.0
    assert T.tree_reduce(max, [3, [7, 1]]) == 7
    with pytest.raises(TypeError, match='initializer'):
        T.tree_reduce(max, [None, ()])
    assert T.tree_all({'a': True, 'b': [1, 2]}) and not T.tree_all([True, (0,)])
