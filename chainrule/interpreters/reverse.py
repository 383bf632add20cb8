"""Reverse mode: a tape of `Node`s and the backward pass that walks it.

What you can do with it: `vjp_flat(f, primals)` records `f` on a fresh trace level and returns
its outputs and a function that pulls cotangents back to the inputs. `backprop` is the one
backward pass in chainrule: the functional API and `Tensor.backward()` both use it.

A `Node` records one primitive application: the primitive, its static parameters, the nodes its
arguments came from (`None` for constants) and the values its VJP rules need (the arguments and
the output). It holds no closure and no reference to its own output tracer, so a graph has no
reference cycles and is freed by reference counting alone, the moment it is dropped.

It is also the only object per recorded operation that Python's cyclic garbage collector
tracks: the parents of a node of one or two arguments are fields, not a tuple; the saved
values are a tuple of arrays (which the collector untracks at its first look, arrays not being
containers); the eager `Tensor` keeps its version counters out of the tape (see
`chainrule._eager_trace._saved_version`). Each object the collector tracks that lives until
backward is promoted to its oldest generation, and every full collection scans that whole
generation, the imported libraries' objects too: in a process that has imported PyTorch and
JAX, seven tracked containers per operation made a 2,000-op forward and backward cost 1.8x its
time with the collector off (`bench/gc_tape.py`).

The backward pass needs the nodes in reverse topological order. Every node gets a sequence
number when it is created, and a node is always created after its parents, so visiting nodes in
decreasing sequence number is a valid order: the pass keeps a heap of the nodes that have
received a cotangent and pops the newest (PyTorch's engine orders its work the same way); the
newest of them, in a chain the node just handed a cotangent, waits outside the heap. This is
one iterative pass -- no separate sort, no recursion, so a chain of a million operations works.
Each node's cotangent is popped from the table as soon as it is used, so only the cotangents on
the frontier are alive; fan-in (a value used twice) is summed as cotangents arrive.
"""

import contextvars
import heapq
import itertools

import numpy as np

from chainrule.core import (AllArgs, GradientError, Trace, Tracer, bind, pass_cotangent,
                            times_first, times_second, unwrap_inner)

__all__ = ['Node', 'ReverseTrace', 'ReverseTracer', 'backprop', 'add_cotangents', 'needs_value']


_seq = itertools.count()   # creation order: every node is created after its parents


class Node:
    """One recorded primitive application (or, with `prim=None`, an input of the graph).

    `parents` is a tuple, one entry per argument (the node it came from, or None), but a node
    with one or two arguments -- nearly all of them -- keeps them as two fields and makes the
    tuple when asked: a tuple holding nodes is one more object the cyclic garbage collector
    tracks for as long as the graph lives (see the module docstring). `versions` (eager
    `Tensor`s only) has per argument None, `(counter, version)`, or the version alone where
    the counter is the parent's `out_version` (see `chainrule._eager_trace._saved_version`).
    """

    __slots__ = ('prim', 'params', '_p0', '_p1', 'nparents', 'args', 'out', 'hooks', 'versions',
                 'leaf', 'seq', 'out_version', '__weakref__')

    def __new__(cls, prim, params, parents, args, out, versions=None):
        n = len(parents)
        if n == 2:
            return new_node(prim, params, parents[0], parents[1], 2, args, out, versions)
        if n == 1:
            return new_node(prim, params, parents[0], None, 1, args, out, versions)
        return new_node(prim, params, parents if n else None, None, n, args, out, versions)

    @property
    def parents(self):
        n = self.nparents
        if n == 2:
            return (self._p0, self._p1)
        if n == 1:
            return (self._p0,)
        return self._p0 if n else ()

    def __repr__(self):
        name = 'input' if self.prim is None else self.prim.name
        return f'<Node {name}>'

    def free(self):
        """Release what the VJP rules needed (the graph stays walkable, but not differentiable)."""
        self.args = None
        self.out = None


_object_new = object.__new__


def new_node(prim, params, p0, p1, nparents, args, out, versions=None):
    """`Node(prim, params, parents, args, out, versions)` with the parents given as fields:
    `p0` and `p1` for a node of one (`p1` None) or two arguments, or the tuple in `p0` for
    more. The eager `Tensor` records its nodes with it: a plain function call costs less than
    a class call (measured: about 700 machine instructions per node)."""
    node = _object_new(Node)
    node.seq = next(_seq)
    node.prim = prim
    node.params = params
    node._p0 = p0
    node._p1 = p1
    node.nparents = nparents
    node.args = args
    node.out = out
    node.hooks = None
    node.versions = versions
    node.leaf = None
    node.out_version = None   # the version counter of the Tensor holding `out` (eager mode)
    return node


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
        if r in ct:
            ct[r] = add_cotangents(ct[r], g)
        else:
            ct[r] = g
            heapq.heappush(heap, (-r.seq, r))
    leaves = {}
    heappop, heappush = heapq.heappop, heapq.heappush
    check = _backward_hook
    # The pending node of highest sequence number, kept out of the heap: in a chain (the
    # common case) the parent a node hands its cotangent to is the next one to process, and
    # it then never enters the heap (no tuple, no push and pop per node). Invariant: `nxt`
    # is None or newer than every node in the heap.
    nxt = None
    while True:
        if nxt is not None:
            node = nxt
            nxt = None
        elif heap:
            node = heappop(heap)[1]
        else:
            break
        g = ct.pop(node)
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
        versions = node.versions
        if versions is not None:
            # the common cases without a call: every saved counter still at 0
            if versions is SAVED_AT_0_BY_PARENTS:
                b0, b1, bo = node._p0.out_version, node._p1.out_version, node.out_version
                if (b0 is not None and b0[0]) or (b1 is not None and b1[0]) or \
                        (bo is not None and bo[0]):
                    _check_versions(node)
            elif versions is SAVED_AT_0_FIRST or versions is SAVED_AT_0_BY_PARENT:
                b0, bo = node._p0.out_version, node.out_version
                if (b0 is not None and b0[0]) or (bo is not None and bo[0]):
                    _check_versions(node)
            elif versions is SAVED_AT_0_SECOND:
                b1, bo = node._p1.out_version, node.out_version
                if (b1 is not None and b1[0]) or (bo is not None and bo[0]):
                    _check_versions(node)
            else:
                _check_versions(node)
        out = node.out
        joint = False
        if prim.multiple_results and isinstance(g, TupleCotangent):
            g = tuple(_zeros_like(o) if p is None else p for p, o in zip(g.parts, out))
            joint = type(prim.vjp) is AllArgs     # (multiple-result primitives only)
        if wrap is not None:
            g, args, out = wrap(node, g)
        rules = prim.vjp
        params = node.params
        n = node.nparents         # (Node.parents, without a property call per node)
        if n == 2:
            parents = (node._p0, node._p1)
        elif n == 1:
            parents = (node._p0,)
        else:
            parents = node._p0 if n else ()
        if joint:     # one call for every argument; nothing outlives the node
            rules = computed_rules(rules, [p is not None for p in parents], g, out, args,
                                   params)
        i = -1
        for parent in parents:
            i += 1
            if parent is None:
                continue
            rule = rules[i]
            if rule is None:
                continue
            if check is not None:
                gi = check(node, i, rule, g, out, args, params)
            elif rule is pass_cotangent:
                gi = g                      # (add, sub: the cotangent itself, without a call)
            elif rule is times_second:
                gi = g * args[1]            # (mul: the rule's product, without the call)
            elif rule is times_first:
                gi = g * args[0]
            elif params:
                gi = rule(g, out, *args, **params)
            elif n == 2:
                gi = rule(g, out, args[0], args[1])     # (cheaper than unpacking *args)
            else:
                gi = rule(g, out, *args)
            old = ct.get(parent)
            if old is None:
                ct[parent] = gi
                s = parent.seq
                if nxt is None:
                    if heap and heap[0][0] < -s:      # the heap holds a newer node
                        heappush(heap, (-s, parent))
                    else:
                        nxt = parent
                elif s > nxt.seq:
                    heappush(heap, (-nxt.seq, nxt))
                    nxt = parent
                else:
                    heappush(heap, (-s, parent))
            elif type(old) is TupleCotangent:
                ct[parent] = add_cotangents(old, gi)
            else:                   # (add_cotangents, inlined: fan-in is common)
                ct[parent] = old + gi
        if not retain_graph:
            node.args = node.out = None     # (Node.free, inlined)
    return leaves


def computed_rules(rules, needed, g, out, args, params):
    """`AllArgs` rules run once for the arguments `needed`, as per-argument rules that return
    what that run computed (`None`: no rule)."""
    cts = rules.fn(tuple(needed), g, out, *args, **params)
    return tuple(None if c is None else (lambda *a, c=c, **k: c) for c in cts)


# `chainrule.debug` sets this to `hook(node, i, rule, g, out, args, params) -> cotangent` while
# a diagnostic mode that checks every cotangent (`debug_nans`) is on; None otherwise.
_backward_hook = None


# `Node.versions` of a node of two arguments that are both their parents' outputs (or leaves)
# saved at version 0: the eager `Tensor` shares this one tuple (see chainrule._eager_trace)
SAVED_AT_0_BY_PARENTS = (0, 0)
# ... of a node of one argument, its parent's output saved at version 0 (`x.exp()`)
SAVED_AT_0_BY_PARENT = (0,)
# ... of a node of two arguments, one its parent's output saved at version 0 and the other a
# constant that keeps no counter (`x * 2.0`, `2.0 * x`)
SAVED_AT_0_FIRST = (0, None)
SAVED_AT_0_SECOND = (None, 0)


def _check_versions(node):
    """Raise if a value `node` saved for its backward pass was modified in place since (its
    version counter moved on) *and* a rule that will run reads that value. Reading only its
    shape or dtype does not count (PyTorch's `SumBackward` saves the size, not the tensor), and
    neither do the arguments of rules whose parent needs no gradient (`x * c` with only `x`
    requiring grad reads `c`, not `x`)."""
    ov = node.out_version
    if ov is not None and ov[0] and _uses_output(node.prim):
        raise GradientError(
            f'the output of {node.prim.name!r}, which its backward pass uses, was modified in '
            f'place afterwards (version 0 when saved, {ov[0]} now), so the gradient would be '
            'wrong. Use an out-of-place operation (y = y + 1 instead of y += 1), or clone() '
            'the Tensor before modifying it.')
    n = node.nparents
    for i, saved in enumerate(node.versions):
        if saved is None:
            continue
        if type(saved) is int:     # the counter is the parent's (made when first needed)
            parent = node._p0[i] if n > 2 else node._p1 if i else node._p0
            box, v = parent.out_version, saved
            if box is None:
                continue
        else:
            box, v = saved
        if box[0] != v and needs_value(node, i):
            raise GradientError(
                f'a Tensor saved by {node.prim.name!r} for the backward pass (argument {i}) was '
                f'modified in place afterwards (version {v} when saved, {box[0]} now), so the '
                'gradient would be wrong. Use an out-of-place operation (x = x + y instead of '
                'x += y), or clone() the Tensor before modifying it.')


def needs_value(node, i):
    """Whether the backward pass of `node` reads the value of its argument `i` (not only its
    shape or dtype): some rule reads it whose parent is not None."""
    reads = _reads_args(node.prim)
    if reads is None:
        return any(p is not None for p in node.parents)
    for parent, r in zip(node.parents, reads):
        if parent is not None and i in r:
            return True
    return False


_USES_OUTPUT = {}
_READS_ARGS = {}


def _rule_functions(prim):
    """`(functions, position of ans)`: the VJP rules as plain functions."""
    from chainrule.core import PerArg
    rules = prim.vjp
    if isinstance(rules, PerArg):
        return [rules.fn], 2          # fn(i, g, ans, *args)
    return list(rules), 1             # rule(g, ans, *args)


def _uses_output(prim):
    """Whether some VJP rule of `prim` reads the value of its `ans` parameter (the output):
    only then does modifying the output in place make the gradient wrong (`exp` reads it, `mul`
    does not). Found once per primitive from the rules' bytecode; a rule that hands `ans` on to
    a helper counts as reading it."""
    r = _USES_OUTPUT.get(prim)
    if r is None:
        fns, pos = _rule_functions(prim)
        r = _USES_OUTPUT[prim] = any(_reads_parameter(f, pos) for f in fns if f is not None)
    return r


def reads_nothing(prim):
    """Whether no VJP rule of `prim` reads an argument's or the output's value (`add`, `sub`):
    a node of it saves no version counters, as an in-place change cannot make its gradient
    wrong. Cached per primitive."""
    r = _READS_NOTHING.get(prim)
    if r is None:
        reads = _reads_args(prim)
        r = _READS_NOTHING[prim] = (reads is not None and not any(reads)
                                    and not _uses_output(prim))
    return r


_READS_NOTHING = {}


def _reads_args(prim):
    """Per rule: the set of argument positions whose values it reads; None for `PerArg` rules
    (one function for any number of arguments, taken as `*args`: every rule reads them all)."""
    r = _READS_ARGS.get(prim, False)
    if r is False:
        fns, pos = _rule_functions(prim)
        if pos == 2:
            r = None
        else:
            r = tuple(frozenset() if f is None else
                      frozenset(i for i in range(len(fns)) if _reads_parameter(f, pos + 1 + i))
                      for f in fns)
        _READS_ARGS[prim] = r
    return r


_SHAPE_FUNCTIONS = frozenset(['shape_of', 'dtype_of', 'zeros_like', 'ones_like'])
_SHAPE_ATTRIBUTES = frozenset(['shape', 'dtype', 'ndim'])


def _reads_parameter(fn, pos):
    """Whether `fn` reads the value of its positional parameter `pos`: any use other than
    `shape_of(p)`, `ops.dtype_of(p)`, `zeros_like(p)`, `ones_like(p)`, `p.shape`, `p.dtype` or
    `p.ndim` counts (conservative: passing it to any other function, a closure capturing it, a
    parameter taken by `*args`)."""
    import dis
    code = getattr(fn, '__code__', None)
    if code is None or code.co_argcount <= pos:
        return True                      # not a plain function, or the value is in *args
    name = code.co_varnames[pos]
    if name in code.co_cellvars:         # captured by an inner function
        return True
    ins = list(dis.get_instructions(code))
    for k, i in enumerate(ins):
        if not i.opname.startswith('LOAD_FAST'):
            continue
        names = i.argval if isinstance(i.argval, tuple) else (i.argval,)
        if name not in names:
            continue
        if len(names) == 1 and 0 < k < len(ins) - 1:
            prev, nxt = ins[k - 1], ins[k + 1]
            if prev.argval in _SHAPE_FUNCTIONS and prev.opname in (
                    'LOAD_ATTR', 'LOAD_METHOD', 'LOAD_GLOBAL') and \
                    nxt.opname in ('PRECALL', 'CALL') and nxt.arg == 1:
                continue                 # shape_of(p) / ops.dtype_of(p)
            if nxt.opname == 'LOAD_ATTR' and nxt.argval in _SHAPE_ATTRIBUTES:
                continue                 # p.shape
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


# The level of the innermost transform active where the current `no_grad()` block began (None
# outside such a block, or inside an `enable_grad()` in it; 0 where none was active): reverse-mode
# levels up to it differentiate nothing in the block, as torch.func's grad respects a
# `no_grad()` inside the function; a transform begun inside the block differentiates as usual.
no_grad_level = contextvars.ContextVar('chainrule_no_grad_level', default=None)


class ReverseTrace(Trace):
    """Records every primitive applied to its tracers as a `Node` (none inside a `no_grad()`
    block begun under it: see `no_grad_level`)."""

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
        ng = no_grad_level.get()
        if ng is not None and ng >= self.level:
            return out          # computed under no_grad(): a constant for this level
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
        `pullback(cotangents, retain_graph=True) -> list of input cotangents` (None where an
        input got none); `retain_graph=False` (for a single pullback, as `grad` makes) frees
        each saved value as soon as the backward pass is past it, as `Tensor.backward` does.
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

    def pullback(cts, retain_graph=True):
        roots, gs = [], []
        for n, g in zip(out_nodes, cts):
            if n is not None and g is not None:
                roots.append(n)
                gs.append(g)
        leaves = backprop(roots, gs, retain_graph=retain_graph) if roots else {}
        return [leaves.get(id(t.node)) for t in ins]

    return out_vals, pullback
