"""Step through a backward pass, one node at a time, and see what the graph holds.

What you can do with it:

    >>> from chainrule import Value
    >>> a, b = Value(2.0), Value(-3.0)
    >>> out = a * b + a
    >>> for step in out.backward(steps=True):
    ...     print(step.op, step.upstream, step.contributions)
    + 1 [1, 1]
    * 1 [-3.0, 2.0]
    ...

`Value.backward(steps=True)` and `Tensor.backward(steps=True)` return a generator of `Step`s in
backward order: the op, the user's source line (for Tensor operations run inside
`cr.debug.record_sources()`), the upstream gradient, the local derivative with respect to each
input and the contribution sent to each input (upstream times local derivative). Running it to
the end leaves the same `.grad`s as `backward()`. `cr.viz.draw(y, highlight=step)` draws the
graph with the step's node marked.

`memory_report(y)` lists the arrays a `Tensor` graph holds for its backward pass: per node the
op, shapes, dtypes, bytes and source line, sorted by size, with the total (arrays shared by
several nodes, or views of one buffer, counted once).
"""

import numpy as np

from chainrule.debug import hooks as _rec

__all__ = ['Step', 'value_steps', 'tensor_steps', 'memory_report', 'MemoryReport']


class Step:
    """One node of a backward pass.

    Attributes:
        op: the operation's name ('' for a leaf, an input of the graph).
        node: the graph node (a `Value`, or a tape `Node` for Tensors): what `viz.draw`'s
            `highlight` marks.
        where: `(file, line, function, text)` of the user's line that made it, or None.
        upstream: the gradient of the output with respect to this node's result.
        local: the derivative of the result with respect to each input (for a Tensor op, the
            VJP of a cotangent of ones: the elementwise derivative for elementwise ops), None
            where unknown.
        contributions: what this step adds to each input's gradient.
    """

    __slots__ = ('op', 'node', 'where', 'upstream', 'local', 'contributions')

    def __init__(self, op, node, where, upstream, local, contributions):
        self.op, self.node, self.where = op, node, where
        self.upstream, self.local, self.contributions = upstream, local, contributions

    def __repr__(self):
        w = '' if self.where is None else f' at {self.where[0]}:{self.where[1]}'
        return (f'Step({self.op or "leaf"}{w}: upstream={self.upstream!r}, '
                f'contributions={self.contributions!r})')


# --- Value ------------------------------------------------------------------------------------

def _value_locals(v):
    """`(inputs, local derivatives)` of Value node `v`; derivatives None for a micrograd-style
    closure, whose local derivatives are not stored."""
    from chainrule.scalar.engine import _parents
    kids = _parents(v)
    if v._a is not None:
        return kids, [v._da] if v._b is None else [v._da, v._db]
    return kids, (list(v._dks) if v._dks is not None else None) if kids else []


def value_steps(root):
    """The generator behind `Value.backward(steps=True)`: the same pass as `backward()`, with
    a `Step` per node."""
    from chainrule._graph import toposort
    from chainrule.scalar.engine import _parents, _run_custom_backward
    topo = toposort((root,), _parents)
    root._ct = 1
    try:
        for v in reversed(topo):
            upstream, v._ct = v._ct, 0
            v.grad += upstream
            kids, local = _value_locals(v)
            if local is None:
                before = [k._ct for k in kids]
                _run_custom_backward(v, upstream)
                contrib = [k._ct - c for k, c in zip(kids, before)]
            else:
                contrib = [d * upstream for d in local]
                for k, c in zip(kids, contrib):
                    k._ct += c
            yield Step(v._op, v, None, upstream, local, contrib)
    finally:
        for v in topo:
            v._ct = 0


# --- Tensor -----------------------------------------------------------------------------------

def tensor_steps(y, gradient=None, retain_graph=False):
    """The generator behind `Tensor.backward(steps=True)`: runs the backward pass (as
    `backward()` does, accumulating into `.grad`) and yields a `Step` per node visited."""
    from chainrule.interpreters.reverse import TupleCotangent, backprop
    from chainrule.tensor import _accumulate, _tape_off
    if gradient is None:
        g0 = np.ones(y.shape, y.dtype)
    else:
        g0 = np.asarray(getattr(gradient, 'data', gradient))
    steps = []

    def observe(node, g):
        contrib, local = [], []
        gg = g.parts if isinstance(g, TupleCotangent) else g
        for i, p in enumerate(node.parents):
            rule = node.prim.vjp[i] if p is not None else None
            if rule is None:
                contrib.append(None)
                local.append(None)
                continue
            contrib.append(rule(gg, node.out, *node.args, **node.params))
            try:
                ones = np.ones(np.shape(node.out), np.result_type(node.out))
                local.append(rule(ones, node.out, *node.args, **node.params))
            except Exception:      # (a multiple-result op: no single local derivative)
                local.append(None)
        steps.append(Step(node.prim.name, node, _rec.origin(node), gg, local, contrib))
        return g, node.args, node.out

    def on_leaf(node, g):
        steps.append(Step('', node, None, g, [], []))
        _accumulate(node, g)

    with _tape_off():
        backprop([y._node], [g0], retain_graph=True, wrap=observe, on_leaf=on_leaf)
    if not retain_graph:
        for s in steps:
            if s.op:
                s.node.free()
    yield from steps


# --- memory -----------------------------------------------------------------------------------

class MemoryReport:
    """What a Tensor graph holds for backward: `.rows` (dicts with `op`, `shapes`, `dtypes`,
    `bytes`, `where`), largest first, and `.total` bytes (each buffer counted once)."""

    def __init__(self, rows, total):
        self.rows, self.total = rows, total

    def __str__(self):
        lines = [f'{"op":<16}{"bytes":>12}  shapes / dtypes  (where)']
        for r in self.rows:
            sd = ', '.join(f'{s} {d}' for s, d in zip(r['shapes'], r['dtypes']))
            w = '' if r['where'] is None else f'  ({r["where"][0]}:{r["where"][1]})'
            lines.append(f'{r["op"]:<16}{r["bytes"]:>12}  {sd}{w}')
        lines.append(f'{"total":<16}{self.total:>12}  bytes held for backward '
                     f'({len(self.rows)} nodes)')
        return '\n'.join(lines)

    __repr__ = __str__


def _owner(a):
    while isinstance(a, np.ndarray) and a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def memory_report(y):
    """The arrays the graph of `Tensor` `y` saved for its backward pass (see the module
    docstring). After `backward()` has freed them the report is empty."""
    from chainrule.debug.grad_explain import _collect
    root = getattr(y, '_node', None)
    nodes = _collect(root) if root is not None else {}
    rows, owners = [], {}
    for n in sorted(nodes.values(), key=lambda n: -n.seq):
        if n.prim is None or n.args is None:
            continue
        saved = [a for a in n.args if isinstance(a, (np.ndarray, np.generic))]
        out = n.out
        saved += [o for o in (out if isinstance(out, tuple) else (out,))
                  if isinstance(o, (np.ndarray, np.generic))]
        for a in saved:
            o = _owner(a)
            owners[id(o)] = (o, int(np.asarray(o).nbytes))
        rows.append({'op': n.prim.name, 'shapes': [np.shape(a) for a in saved],
                     'dtypes': [str(np.asarray(a).dtype) for a in saved],
                     'bytes': sum(int(np.asarray(a).nbytes) for a in saved),
                     'where': _rec.origin(n)})
    rows.sort(key=lambda r: -r['bytes'])
    return MemoryReport(rows, sum(b for _, b in owners.values()))
