"""Reverse mode: a tape of `Node`s and the backward pass that walks it.

What you can do with it: `vjp_flat(f, primals)` records `f` on a fresh trace level and returns
its outputs and a function that pulls cotangents back to the inputs. `backprop` is the one
backward pass in chainrule: the functional API and `Tensor.backward()` both use it.

A `Node` records one primitive application: the primitive, its static parameters, the nodes its
arguments came from (`None` for constants) and the values its VJP rules need (the arguments and
the output). It holds no closure and no reference to its own output tracer, so a graph has no
reference cycles and is freed by reference counting alone, the moment it is dropped.

The backward pass needs the nodes in reverse topological order. Every node gets a sequence
number when it is created, and a node is always created after its parents, so visiting nodes in
decreasing sequence number is a valid order: the pass keeps a heap of the nodes that have
received a cotangent and pops the newest (PyTorch's engine orders its work the same way). This is
one iterative pass -- no separate sort, no recursion, so a chain of a million operations works.
Each node's cotangent is popped from the table as soon as it is used, so only the cotangents on
the frontier are alive; fan-in (a value used twice) is summed as cotangents arrive.
"""

import heapq
import itertools

import numpy as np

from chainrule.core import GradientError, Trace, Tracer, bind, unwrap_inner

__all__ = ['Node', 'ReverseTrace', 'ReverseTracer', 'backprop', 'add_cotangents']


_seq = itertools.count()   # creation order: every node is created after its parents


class Node:
    """One recorded primitive application (or, with `prim=None`, an input of the graph)."""

    __slots__ = ('prim', 'params', 'parents', 'args', 'out', 'hooks', 'versions', 'leaf', 'seq',
                 'out_version', '__weakref__')

    def __init__(self, prim, params, parents, args, out, versions=None):
        self.seq = next(_seq)
        self.prim = prim
        self.params = params
        self.parents = parents
        self.args = args
        self.out = out
        self.hooks = None
        self.versions = versions
        self.leaf = None
        self.out_version = None   # the version counter of the Tensor holding `out` (eager mode)

    def __repr__(self):
        name = 'input' if self.prim is None else self.prim.name
        return f'<Node {name}>'

    def free(self):
        """Release what the VJP rules needed (the graph stays walkable, but not differentiable)."""
        self.args = None
        self.out = None


class TupleCotangent:
    """The cotangent of a multiple-result node: one entry per result, `None` where zero."""

    __slots__ = ('parts',)

    def __init__(self, parts):
        self.parts = parts


def add_cotangents(a, b):
    if isinstance(a, TupleCotangent):
        return TupleCotangent([x if y is None else y if x is None else x + y
                               for x, y in zip(a.parts, b.parts)])
    return a + b


def _zeros_like(x):
    from chainrule.ops import zeros_like
    return zeros_like(x)


def backprop(roots, cotangents, *, retain_graph=True, wrap=None, on_leaf=None):
    """Pull `cotangents` back from the nodes `roots` to every node they depend on.

    Args:
        roots: output nodes.
        cotangents: one cotangent per root.
        retain_graph: when False, each node's saved values are released once used.
        wrap: optional `wrap(node, g) -> (g, args, out)` hook used by `Tensor.backward` with
            `create_graph=True` to run the rules on differentiable values.
        on_leaf: called as `on_leaf(node, g)` for each input node (`prim is None`) reached.

    Returns:
        dict from `id(input node)` to its cotangent, for the input nodes reached.
    """
    ct = {}
    heap = []
    for r, g in zip(roots, cotangents):
        k = id(r)
        if k in ct:
            ct[k] = add_cotangents(ct[k], g)
        else:
            ct[k] = g
            heapq.heappush(heap, (-r.seq, r))
    leaves = {}
    heappop, heappush = heapq.heappop, heapq.heappush
    check = _backward_hook
    while heap:
        node = heappop(heap)[1]
        g = ct.pop(id(node))
        if node.hooks:
            for hook in node.hooks:
                new = hook(g)
                if new is not None:
                    g = new
        prim = node.prim
        if prim is None:
            leaves[id(node)] = g
            if on_leaf is not None:
                on_leaf(node, g)
            continue
        args = node.args
        if args is None:
            raise GradientError(
                f'backward through the graph a second time: the values saved by {prim.name!r} '
                'were freed after the first backward. Pass retain_graph=True to the first '
                'backward() if you need to call it again, or recompute the forward pass '
                '(which builds a new graph) before the second backward().')
        if node.versions is not None:
            _check_versions(node)
        out = node.out
        if isinstance(g, TupleCotangent):
            g = tuple(_zeros_like(o) if p is None else p for p, o in zip(g.parts, out))
        if wrap is not None:
            g, args, out = wrap(node, g)
        rules = prim.vjp
        params = node.params
        for i, parent in enumerate(node.parents):
            if parent is None:
                continue
            rule = rules[i]
            if rule is None:
                continue
            if check is None:
                gi = rule(g, out, *args, **params)
            else:
                gi = check(node, i, rule, g, out, args, params)
            k = id(parent)
            if k in ct:
                ct[k] = add_cotangents(ct[k], gi)
            else:
                ct[k] = gi
                heappush(heap, (-parent.seq, parent))
        if not retain_graph:
            node.free()
    return leaves


# `chainrule.debug` sets this to `hook(node, i, rule, g, out, args, params) -> cotangent` while
# a diagnostic mode that checks every cotangent (`debug_nans`) is on; None otherwise.
_backward_hook = None


def _check_versions(node):
    ov = node.out_version
    if ov is not None and ov[0] and _uses_output(node.prim):
        raise GradientError(
            f'the output of {node.prim.name!r}, which its backward pass uses, was modified in '
            f'place afterwards (version 0 when saved, {ov[0]} now), so the gradient would be '
            'wrong. Use an out-of-place operation (y = y + 1 instead of y += 1), or clone() '
            'the Tensor before modifying it.')
    for i, saved in enumerate(node.versions):
        if saved is None:
            continue
        box, v = saved
        if box[0] != v:
            raise GradientError(
                f'a Tensor saved by {node.prim.name!r} for the backward pass (argument {i}) was '
                f'modified in place afterwards (version {v} when saved, {box[0]} now), so the '
                'gradient would be wrong. Use an out-of-place operation (x = x + y instead of '
                'x += y), or clone() the Tensor before modifying it.')


_USES_OUTPUT = {}


def _uses_output(prim):
    """Whether some VJP rule of `prim` reads its `ans` parameter (the output): only then does
    modifying the output in place make the gradient wrong (`exp` reads it, `mul` does not).
    Found once per primitive from the rules' bytecode; a rule that hands `ans` on to a helper
    counts as reading it."""
    r = _USES_OUTPUT.get(prim)
    if r is None:
        from chainrule.core import PerArg
        rules = prim.vjp
        if isinstance(rules, PerArg):
            fns, pos = [rules.fn], 2          # fn(i, g, ans, *args)
        else:
            fns, pos = [f for f in rules if f is not None], 1    # rule(g, ans, *args)
        r = _USES_OUTPUT[prim] = any(_reads_parameter(f, pos) for f in fns)
    return r


def _reads_parameter(fn, pos):
    import dis
    code = getattr(fn, '__code__', None)
    if code is None or code.co_argcount <= pos:
        return True                      # not a plain function: assume it does
    name = code.co_varnames[pos]
    if name in code.co_cellvars:         # captured by an inner function
        return True
    for ins in dis.get_instructions(code):
        if ins.opname.startswith('LOAD_FAST'):
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            if name in names:
                return True
    return False


class ReverseTracer(Tracer):
    """A value recorded by a `ReverseTrace`: its `value` (an array, or a lower-level tracer)
    and the `node` that produced it."""

    __slots__ = ('_trace', 'value', 'node')

    def __init__(self, trace, value, node):
        self._trace = trace
        self.value = value
        self.node = node

    @property
    def shape(self):
        return np.shape(self.value) if not isinstance(self.value, Tracer) else self.value.shape

    @property
    def dtype(self):
        v = self.value
        return v.dtype if isinstance(v, (np.ndarray, np.generic, Tracer)) else np.result_type(v)

    def _concrete(self):
        return self.value

    def __repr__(self):
        return f'ReverseTracer({self.value!r})'


def _project_vjp(n):
    def rule(g, out, *args, index):
        parts = [None] * n
        parts[index] = g
        return TupleCotangent(parts)
    return rule


class ReverseTrace(Trace):
    """Records every primitive applied to its tracers as a `Node`."""

    __slots__ = ()

    def process(self, prim, args, params):
        vals = []
        parents = []
        for a in args:
            if isinstance(a, ReverseTracer) and a._trace is self:
                vals.append(a.value)
                parents.append(a.node)
            else:
                vals.append(a)
                parents.append(None)
        out = bind(prim, *vals, **params)
        if prim.vjp is None:
            return out
        node = Node(prim, params, tuple(parents), tuple(vals), out)
        if prim.multiple_results:
            return tuple(ReverseTracer(self, o, _projection_node(node, i, len(out)))
                         for i, o in enumerate(out))
        return ReverseTracer(self, out, node)

    def new_input(self, value):
        return ReverseTracer(self, value, Node(None, None, (), None, None))


_project_prims = {}


def _projection_node(node, index, n):
    """A node standing for result `index` of multiple-result `node`: its VJP places the
    cotangent in slot `index` of a `TupleCotangent` for the main node."""
    from chainrule.core import Primitive, registry
    prim = _project_prims.get(n)
    if prim is None:
        name = f'project{n}'
        prim = registry.get(name) or Primitive(name, lambda t, *, index: t[index],
                                               vjp=[_project_vjp(n)])
        _project_prims[n] = prim
    return Node(prim, {'index': index}, (node,), (node.out,), node.out[index])


def vjp_flat(f, primals):
    """Run `f(*tracers)` on a new reverse-mode level.

    Returns:
        (outputs, pullback): `outputs` the values `f` returned (a flat list), and
        `pullback(cotangents) -> list of input cotangents` (None where an input got none).
    """
    from chainrule.core import new_level
    with new_level(ReverseTrace) as trace:
        ins = [trace.new_input(p) for p in primals]
        outs = f(*ins)
        out_vals, out_nodes = [], []
        for o in outs:
            o = unwrap_inner(o, trace.level)    # a Tensor made by Tensor code inside f
            if isinstance(o, ReverseTracer) and o._trace is trace:
                out_vals.append(o.value)
                out_nodes.append(o.node)
            else:
                out_vals.append(o)
                out_nodes.append(None)

    def pullback(cts):
        roots, gs = [], []
        for n, g in zip(out_nodes, cts):
            if n is not None and g is not None:
                roots.append(n)
                gs.append(g)
        leaves = backprop(roots, gs) if roots else {}
        return [leaves.get(id(t.node)) for t in ins]

    return out_vals, pullback
