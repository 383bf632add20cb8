"""Why is my gradient None, or zero? `explain_grad` and `explain` answer per input.

What you can do with it:

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> def f(x, w):
    ...     return cnp.sum(cnp.maximum(x * 2.0, 0.0)) + cnp.sum(cnp.floor(w))
    >>> print(cr.explain(f, argnums=(0, 1))(cnp.array([-1.0, 2.0]), cnp.array([0.5])))
    ... # doctest: +SKIP
    gradient of the output with respect to 2 inputs
    |- x: partly zero (1 of 2 elements)
    |  `- maximum masks 1 of 2 elements (first at index (0,)), at example.py:2: ...
    `- w: zero
       `- floor is piecewise constant: its derivative is 0 (at example.py:2: ...)

`explain_grad(y, x)` reads the `Tensor` tape between `y` and `x` (pass several inputs as a
list). The reasons it knows: the input does not require grad; it is not on any path from the
output; the path was cut by `detach()`, `no_grad()` or `stop_gradient`, by a cast to an integer
or boolean dtype, or by a piecewise-constant op (`floor`, `round`, comparisons, `argmax`,
`sign`); `relu`/`maximum`/`where`/`clip` mask some elements (how many, and the first); the value
was overwritten in place. Source lines and cut points are known for operations run inside
`cr.debug.record_sources()` (or `debug_nans`); `explain(f)` runs `f` inside one, on `Tensor`s.

The result is an `Explanation`: `print` it for the tree, or read `.inputs` (a list of
`InputReport`s with `status` and `reasons`, each reason a dict) in tests and tools.
"""

import numpy as np

from chainrule.debug import hooks as _rec

__all__ = ['explain_grad', 'explain', 'Explanation', 'InputReport']

# ops that let the gradient through only at some elements: the count of blocked elements is the
# number of zeros their VJP rule gives a cotangent of ones
_MASKING = {'relu', 'maximum', 'minimum', 'where', 'max', 'max_pool2d', 'abs', 'sort',
            'take_along_axis', 'getitem'}
_OVERWRITE = {'at_set'}     # writes into argument 0: the written elements lose its gradient
_PIECEWISE = _rec.PIECEWISE

_CUT_TEXT = {
    'detach': 'cut by detach()',
    'no_grad': 'computed under no_grad()',
    'stop_gradient': 'cut by stop_gradient',
    'integer': 'converted to an integer or boolean dtype (no gradient flows through it)',
    'piecewise_constant': 'passed through {op}, which is piecewise constant (derivative 0)',
    'not_differentiable': '{op} is not differentiable',
}


class InputReport:
    """The explanation for one input.

    Attributes:
        name: the input's name (a parameter name, or `x0`, `x1`, ...).
        status: 'ok', 'partly zero', 'zero', or 'none' (no gradient at all).
        zeros, size: how many elements of the gradient are exactly zero, of how many.
        reasons: a list of dicts with `kind` ('no_requires_grad', 'not_connected', 'detach',
            'no_grad', 'stop_gradient', 'integer', 'piecewise_constant', 'not_differentiable',
            'masked', 'overwritten'), `op`, `where` (file, line, function, text, or None),
            and for 'masked'/'overwritten' `count`, `total` and `first` (an index).
    """

    __slots__ = ('name', 'status', 'zeros', 'size', 'reasons', 'gradient')

    def __init__(self, name):
        self.name = name
        self.status = 'ok'
        self.zeros = self.size = 0
        self.reasons = []
        self.gradient = None

    def kinds(self):
        return [r['kind'] for r in self.reasons]

    def __repr__(self):
        return f'InputReport({self.name}: {self.status}, {self.kinds()})'


class Explanation:
    """Per-input reports (`.inputs`, also `explanation['x']`); `str()` is a short tree."""

    def __init__(self, inputs):
        self.inputs = inputs

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.inputs[key]
        for r in self.inputs:
            if r.name == key:
                return r
        raise KeyError(key)

    def __str__(self):
        lines = [f'gradient of the output with respect to {len(self.inputs)} input(s)']
        for k, rep in enumerate(self.inputs):
            last = k == len(self.inputs) - 1
            head = '`- ' if last else '|- '
            pad = '   ' if last else '|  '
            status = rep.status
            if status == 'partly zero':
                status += f' ({rep.zeros} of {rep.size} elements)'
            lines.append(f'{head}{rep.name}: {status}')
            for j, r in enumerate(rep.reasons):
                lines.append(pad + ('`- ' if j == len(rep.reasons) - 1 else '|- ')
                             + _reason_text(r))
        return '\n'.join(lines)

    __repr__ = __str__


def _reason_text(r):
    k = r['kind']
    w = '' if r.get('where') is None else ', at ' + _rec.fmt_where(r['where'])
    if k == 'no_requires_grad':
        return 'it does not require grad (make it with requires_grad=True)'
    if k == 'not_connected':
        return 'it is not on any path from the output' + (
            '' if r.get('detail') is None else f' ({r["detail"]})')
    if k == 'masked':
        return (f'{r["op"]} masks {r["count"]} of {r["total"]} element(s) (first at index '
                f'{r["first"]}){w}')
    if k == 'overwritten':
        return (f'overwritten (in place, or by .at[].set): {r["count"]} of {r["total"]} element(s) (first at '
                f'index {r["first"]}){w}')
    return _CUT_TEXT[k].format(op=r['op']) + w


# --- walking the tape -----------------------------------------------------------------------------

def _collect(root):
    """Every node reachable from `root`, by id (iterative)."""
    seen = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen[id(n)] = n
        stack.extend(n.parents)
    return seen


def _reaching(nodes, leaf):
    """The nodes from which `leaf` can be reached (a node is created after its parents, so one
    pass in creation order suffices)."""
    reach = {id(leaf)}
    for n in sorted(nodes.values(), key=lambda n: n.seq):
        if any(p is not None and id(p) in reach for p in n.parents):
            reach.add(id(n))
    return reach


def _cuts_among(nodes, leaf, extra=()):
    """Cut points recorded for the constant (parent-less) arguments of `nodes` (and for the
    arrays `extra`) whose history reaches `leaf` (skipping arguments the op is not
    differentiable in anyway, such as `where`'s condition)."""
    arrays = list(extra)
    for n in sorted(nodes.values(), key=lambda n: -n.seq):
        if n.args is None or n.prim is None:
            continue
        rules = n.prim.vjp
        arrays += [a for i, (p, a) in enumerate(zip(n.parents, n.args))
                   if p is None and rules is not None and rules[i] is not None]
    out, seen = [], set()
    for a in arrays:
        for reason, op, where, srcs in _rec.cut_of(a):
            if (reason, op, where) in seen or not any(
                    s() is not None and id(leaf) in _collect(s()) for s in srcs):
                continue
            seen.add((reason, op, where))
            out.append({'kind': reason, 'op': op, 'where': where})
    return out


def _first(mask):
    idx = np.argwhere(mask)
    return tuple(int(i) for i in idx[0]) if idx.size else None


def _local_zeros(node, i):
    """Where the gradient of argument i of `node` is zero for a cotangent of ones."""
    from chainrule.interpreters.reverse import TupleCotangent
    prim = node.prim
    out = node.out
    if prim.multiple_results:
        return None
    g = np.ones(np.shape(out), dtype=np.result_type(out))
    try:
        gi = prim.vjp[i](g, out, *node.args, **node.params)
    except Exception:          # a rule that cannot run on plain arrays: nothing to report
        return None
    if isinstance(gi, TupleCotangent) or gi is None:
        return None
    gi = np.asarray(gi)
    shape = np.shape(node.args[i])
    if gi.shape != shape:
        return None
    return gi == 0


def _masking_reasons(nodes, reach, leaf):
    out = []
    for n in sorted((nodes[k] for k in reach if k != id(leaf)), key=lambda n: -n.seq):
        name = n.prim.name
        for i, p in enumerate(n.parents):
            if p is None or id(p) not in reach:
                continue
            where = _rec.origin(n)
            if name in _PIECEWISE:
                out.append({'kind': 'piecewise_constant', 'op': name, 'where': where})
            elif name in _MASKING or name in _OVERWRITE:
                z = _local_zeros(n, i)
                if z is not None and z.any():
                    kind = 'overwritten' if name in _OVERWRITE and i == 0 else 'masked'
                    out.append({'kind': kind, 'op': name, 'where': where,
                                'count': int(z.sum()), 'total': int(z.size),
                                'first': _first(z)})
    return out


def _recorded(y):
    """Whether `y` was made while source lines were being recorded."""
    root = getattr(y, '_node', None)
    if root is not None and root.prim is not None:
        return _rec.origin(root) is not None
    return _rec._recall(_rec._origins, y.data) is not None


def explain_grad(y, x, names=None):
    """Explain the gradient of `Tensor` `y` with respect to `Tensor` `x` (or a list of them).

    Args:
        y: the output Tensor (its graph must still hold its saved values: call this before
            `backward()`, or after `backward(retain_graph=True)`).
        x: an input Tensor, or a list/tuple of them.
        names: optional names for the inputs.

    Returns:
        an `Explanation`.
    """
    from chainrule.interpreters.reverse import backprop
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    names = names or ([f'x{i}' for i in range(len(xs))] if len(xs) > 1 else ['x'])
    root = getattr(y, '_node', None)
    nodes = _collect(root) if root is not None else {}
    grads = {}
    if root is not None:
        if any(n.args is None for n in nodes.values() if n.prim is not None):
            from chainrule.core import GradientError
            raise GradientError(
                'explain_grad: the graph of this output was freed by backward(), so its '
                'saved values are gone; call explain_grad before backward(), or pass '
                'retain_graph=True to backward()')
        g = np.ones(np.shape(y.data), dtype=np.result_type(y.data))
        grads = backprop([root], [g], retain_graph=True)
    reports = []
    for name, xi in zip(names, xs):
        rep = InputReport(name)
        reports.append(rep)
        leaf = getattr(xi, '_node', None)
        rep.size = int(np.size(xi.data))
        if not getattr(xi, 'requires_grad', False) or leaf is None:
            rep.status = 'none'
            rep.reasons.append({'kind': 'no_requires_grad', 'op': None, 'where': None})
            continue
        if id(leaf) not in nodes:
            rep.status = 'none'
            cuts = _cuts_among(nodes, leaf, [] if root is not None else [y.data])
            if cuts:
                detail = None
            elif _recorded(y):
                detail = 'the output does not use it'
            else:
                detail = ('unused, or cut where nothing was recorded: run the forward pass '
                          'inside cr.debug.record_sources() to see where')
            rep.reasons.append({'kind': 'not_connected', 'op': None, 'where': None,
                                'detail': detail})
            rep.reasons.extend(cuts)
            continue
        g = grads.get(id(leaf))
        rep.gradient = g
        z = np.zeros(np.shape(xi.data), bool) if g is None else np.asarray(g) == 0
        rep.zeros = int(z.sum())
        if rep.zeros == 0:
            continue
        rep.status = 'zero' if rep.zeros == rep.size else 'partly zero'
        reach = _reaching(nodes, leaf)
        rep.reasons.extend(_masking_reasons(nodes, reach, leaf))
        rep.reasons.extend(_cuts_among({k: nodes[k] for k in reach}, leaf))
    return Explanation(reports)


def explain(f, argnums=0):
    """`explain(f, argnums)(*args)`: run `f` on `Tensor`s (recording source lines) and explain
    the gradient of its output with respect to the arguments `argnums`.

    Returns:
        a function returning an `Explanation`.
    """
    import inspect

    from chainrule.tensor import Tensor

    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def run(*args):
        try:
            params = list(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            params = []
        args = list(args)
        xs = []
        for i in nums:
            args[i] = Tensor(np.asarray(args[i], dtype=np.result_type(args[i], 0.0)),
                             requires_grad=True)
            xs.append(args[i])
        with _rec.record_sources():
            y = f(*args)
        names = [params[i] if i < len(params) else f'x{i}' for i in nums]
        if not getattr(y, '_is_tensor', False):
            y = Tensor(y)
        return explain_grad(y, xs, names)

    return run
