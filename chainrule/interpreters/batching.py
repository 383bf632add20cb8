"""Batching: run a function written for one example on a whole batch at once (`vmap`).

What you can do with it: `vmap_flat(f, args, in_dims)` runs `f` on a fresh trace level in
which each mapped argument is a `BatchTracer` -- one value that stands for a stack of
examples -- and returns the stacked outputs. Every primitive applied to a batched value is
rewritten by its batching rule (`prim.batch`, declared in the primitive's own block) into one
primitive on the whole stack: `sum(x, axis=0)` per example becomes `sum(xs, axis=1)`, and
`W @ x` per example becomes one matrix product. `chainrule.transforms.vmap` is the public
front, and `jacfwd`/`jacrev` use it to push a whole basis through at once.

Conventions. A `BatchTracer`'s value always has the batch axis first (inputs mapped over
another axis are moved there on entry, outputs moved to `out_axes` on exit); values that do
not depend on the mapped inputs are not BatchTracers at all and cost nothing extra. A rule is
called as `rule(args, dims, **params)` with `dims[i]` 0 for batched arguments and None for the
others, and returns `(out, out_dim)` (out_dim may be any axis; it is moved to the front).

Primitives flagged `elementwise` without a rule of their own get the family's generic rule
(`chainrule.ops.elementwise.batch_elementwise`). A primitive with no batching rule at all is
not an error: the loop-and-stack fallback applies it to
one example at a time and stacks the results. That is slow, so it warns
(`BatchingFallbackWarning`) -- or, with `vmap(f, report=True)`, reports the primitives that
fell back instead.

Data-dependent Python control flow (`if x > 0:` on a batched `x`) has no single answer for a
batch; it raises `ConcretizationError` and suggests `cnp.where`. Value-dependent functions with
static result shapes -- `sort`, `argmax`/`argmin`/`argsort`, `all`/`any`, `searchsorted`,
indexing with a computed integer array -- are primitives with batching rules
(`chainrule.ops.sorting`); those whose result's shape depends on the values (`nonzero`,
`unique`, boolean-mask indexing) raise `ConcretizationError`.
"""

import warnings

from chainrule import ops
from chainrule.core import (ConcretizationError, ShapeError, Trace, Tracer, bind, new_level,
                            unwrap_inner)
from chainrule.ops.elementwise import batch_elementwise

__all__ = ['BatchTrace', 'BatchTracer', 'BatchingFallbackWarning', 'vmap_flat', 'moveaxis']


class BatchingFallbackWarning(UserWarning):
    """`vmap` met a primitive without a batching rule and looped over the batch."""


def moveaxis(x, src, dst):
    """`np.moveaxis` for arrays and tracers alike (a transpose)."""
    nd = len(ops.shape_of(x))
    src, dst = src % nd, dst % nd
    if src == dst:
        return x
    order = [i for i in range(nd) if i != src]
    order.insert(dst, src)
    return ops.transpose(x, tuple(order))


class BatchTracer(Tracer):
    """A stack of examples: `val` holds them along axis 0 (an array or a lower-level tracer);
    `shape` and `dtype` are those of one example."""

    __slots__ = ('_trace', 'val')

    def __init__(self, trace, val):
        self._trace = trace
        self.val = val

    @property
    def shape(self):
        return ops.shape_of(self.val)[1:]

    @property
    def dtype(self):
        return ops.dtype_of(self.val)

    def _concrete(self):
        raise ConcretizationError(
            f'a single concrete value is needed here, but inside vmap this value differs from '
            f'one example to the next (a batch of {self._trace.size} values of shape '
            f'{self.shape}). Python control flow on batched values (if, while, int(), a '
            'NumPy array indexed by a batched value) cannot be vectorised: use cnp.where to '
            'select and cnp.take to index, or move the branch outside vmap.')

    def __bool__(self):
        return bool(self._concrete())

    def __float__(self):
        return float(self._concrete())

    def __int__(self):
        return int(self._concrete())

    __index__ = __int__

    def __repr__(self):
        return f'BatchTracer(batch of {self._trace.size}, shape={self.shape}, val={self.val!r})'


class BatchTrace(Trace):
    """Applies each primitive's batching rule to values with a leading batch axis."""

    __slots__ = ('size', 'report', 'fallbacks')

    def __init__(self, level, size, report=False):
        super().__init__(level)
        self.size = size
        self.report = report
        self.fallbacks = {}

    def unbox(self, values):
        """(stacked values, dims): this trace's tracers give their stacks and dim 0, anything
        else (a constant, a lower-level tracer, a Tensor's data) itself and None."""
        vals, dims = [], []
        for v in values:
            v = unwrap_inner(v, self.level)      # a Tensor made by Tensor code inside f
            if isinstance(v, BatchTracer) and v._trace is self:
                vals.append(v.val)
                dims.append(0)
            else:
                vals.append(v)
                dims.append(None)
        return vals, dims

    def process(self, prim, args, params):
        vals, dims = self.unbox(args)
        rule = prim.batch
        if rule is None and prim.elementwise:
            rule = batch_elementwise(prim)     # the family's generic rule serves every member
        if rule is None:
            out, out_dim = self._loop(prim, vals, dims, params)
        else:
            out, out_dim = rule(vals, dims, **params)
        if prim.multiple_results:
            if not isinstance(out_dim, (tuple, list)):
                out_dim = (out_dim,) * len(out)
            return tuple(self._box(o, d) for o, d in zip(out, out_dim))
        return self._box(out, out_dim)

    def _box(self, out, dim):
        if dim is None:
            return out
        return BatchTracer(self, moveaxis(out, dim, 0) if dim else out)

    def _loop(self, prim, vals, dims, params):
        """The fallback: apply `prim` to one example at a time and stack the results."""
        self.fallbacks[prim.name] = self.fallbacks.get(prim.name, 0) + 1
        if not self.report:
            warnings.warn(
                f'vmap: primitive {prim.name!r} has no batching rule, so it runs once per '
                f'example ({self.size} times) and the results are stacked. Declare '
                f'batch=... on the primitive to vectorise it (vmap(f, report=True) lists the '
                'primitives that fell back instead of warning).', BatchingFallbackWarning,
                stacklevel=4)
        results = []
        for i in range(self.size):
            one = [ops.getitem(v, i) if d is not None else v for v, d in zip(vals, dims)]
            results.append(bind(prim, *one, **params))
        if prim.multiple_results:
            return tuple(_stack([r[j] for r in results]) for j in range(len(results[0]))), 0
        return _stack(results), 0


def _stack(xs):
    return ops.concatenate([ops.reshape(x, (1,) + tuple(ops.shape_of(x))) for x in xs], 0)


def _describe(i, x, d):
    return f'argument {i} of shape {tuple(ops.shape_of(x))} mapped over axis {d}'


def batch_size(args, in_dims):
    """The common size of the mapped axes; a `ShapeError` naming every argument if they
    disagree or an axis does not exist."""
    sizes = []
    for i, (x, d) in enumerate(zip(args, in_dims)):
        if d is None:
            continue
        s = ops.shape_of(x)
        if not -len(s) <= d < len(s):
            raise ShapeError(f'vmap: in_axes asks to map {_describe(i, x, d)}, but it has only '
                             f'{len(s)} axes')
        sizes.append((i, x, d, s[d]))
    if not sizes:
        raise ValueError('vmap: every in_axes entry is None, so there is nothing to map over; '
                         'map at least one argument')
    if len({n for *_, n in sizes}) > 1:
        parts = '; '.join(f'{_describe(i, x, d)} (size {n})' for i, x, d, n in sizes)
        raise ShapeError(f'vmap: the mapped axes have different sizes: {parts}')
    return sizes[0][3]


def vmap_flat(f, args, in_dims, *, report=False):
    """Run `f(*inputs)` with the arguments that have an `in_dims` entry mapped over that axis.

    Args:
        f: a function of len(args) values returning a list of values.
        args: the argument values (arrays or lower-level tracers).
        in_dims: one entry per argument, the axis to map over, or None for an argument
            shared by every example.
        report: collect the primitives that fell back to a loop instead of warning.

    Returns:
        (outputs, out_dims, fallbacks): the output values, for each whether it is batched
        (0, batch axis first) or the same for every example (None), and a dict
        `{primitive name: number of fallback calls}`.
    """
    size = batch_size(args, in_dims)
    with new_level(BatchTrace, size, report) as trace:
        ins = [x if d is None else BatchTracer(trace, moveaxis(x, d, 0))
               for x, d in zip(args, in_dims)]
        vals, dims = trace.unbox(f(*ins))
    return vals, dims, dict(trace.fallbacks)
