"""In-place writes inside `jit`, made functional at the call boundary.

What this module lets you do: change a `Tensor` in place inside a jitted function and have the
change happen on every call, as it does eagerly -- a BatchNorm's running statistics, a counter
(`counter += 1`), an optimizer's state and parameters, a Tensor argument (`x.add_(1)`, which
PyTorch's `torch.compile` writes into the caller's Tensor too).

How. `jit` traces the function once. An in-place operation on a Tensor the function closes over
(made outside it, so the program reads it on every call) is not run then: its new value is
*staged*, `t_new = at_set(t, ...)` or `t_new = t * 0.9`, and kept here as the Tensor's current
value, so a read later in the same trace sees it (`to_atom` of the staging trace asks `read`).
When the trace ends, the staged values become hidden extra outputs of the program, and after
each call the front end writes them into the Tensors (`write_back`), bumping each Tensor's
version counter once per in-place operation, as eagerly. A Tensor argument changed in place
inside the function is written back into the caller's Tensor the same way.

Views: a write to a captured view (`buf[0] += 1`, or a Tensor made outside as a view of
another) is staged on its root base (the whole base's new value, the view's region replaced),
and a read of any view of that base reads the base's staged value through the view's path, so
aliases stay consistent within a trace.

Gradients: a write made with grad mode off (optimizer steps, running statistics) carries no
gradient (its staged value is `stop_gradient`ed); one made with grad mode on is recorded on the
tape at write-back when its value depends on a Tensor that requires grad, as the eager
operation would have been.
"""

import numpy as np

from chainrule import ops
from chainrule.core import (ChainruleError, ConcretizationError, GradientError, Tracer, bind,
                            capturing_trace, concrete)
from chainrule.interpreters.staging import StagingTracer
from chainrule.ops.elementwise import stop_gradient_p
from chainrule.tensor import Tensor, _grad_enabled, captured_by_jit

__all__ = ['CapturedWrites', 'Writes', 'stage_write', 'collect', 'write_back']


class CapturedWrites:
    """The in-place writes one jit trace has staged: per root Tensor (keyed by its version
    counter, which every alias of its memory shares) the root, its staged value, the number of
    in-place operations, and whether one ran with grad mode on."""

    __slots__ = ('trace', 'roots', 'grad_args')

    def __init__(self, trace):
        self.trace = trace
        self.roots = {}          # id(root._version) -> [root, value, count, differentiable]
        self.grad_args = set()   # id() of Tensors of the trace changed in place in grad mode

    def read(self, t):
        """The staged value of captured Tensor `t` (a tracer of the trace), or None if nothing
        it aliases was written."""
        e = self.roots.get(id(t._version)) if getattr(t, '_is_tensor', False) else None
        if e is None:
            return None
        root, value = e[0], e[1]
        if t is root:
            return value
        for prim, params in _path(t, root):
            value = bind(prim, value, **params)
        return value

    def targets(self):
        """`(roots, counts, differentiable flags, values)` of every write, in write order."""
        es = list(self.roots.values())
        return ([e[0] for e in es], [e[2] for e in es], [e[3] for e in es], [e[1] for e in es])


def note_traced_write(t):
    """Called for an in-place operation in grad mode on a Tensor whose data is a value of the
    jit being traced (a Tensor argument): the write is then differentiable (see `collect`)."""
    cap = capturing_trace.get()
    if cap is not None and t.data._trace is cap:
        state(cap, make=True).grad_args.add(id(_root(t)[0]))   # (a view: its root)


def _path(t, root):
    """The view path from `root` to its alias `t` (empty for an alias of the whole)."""
    info = getattr(t, '_view', None)
    if info is not None and info[0] is root:
        return info[1]
    if t.shape == root.shape:
        return ()
    raise ConcretizationError(
        f'jit: a Tensor of shape {t.shape} that the function closes over shares memory with '
        f'another captured Tensor of shape {root.shape} that is changed in place, and how it '
        'views that memory is unknown. Close over the base Tensor only (index it inside the '
        'function).')


def state(trace, make=False):
    st = trace.writes
    if st is None and make:
        st = trace.writes = CapturedWrites(trace)
    return st


def _lower(x, trace, what):
    """`x` as a value of `trace` (the staging trace): the primal of a value of `grad` or `jvp`
    running inside the jitted function (writes are not differentiated by those), the data of a
    Tensor made inside it. A value batched by `vmap` cannot be one write: a clear error."""
    while isinstance(x, Tracer) and x._trace is not None and x._trace.level > trace.level:
        get = getattr(x, '_concrete', None)
        if get is None:
            raise ChainruleError(
                f'{what}: an in-place change of a Tensor made outside the jitted function, '
                'inside a body that is staged on its own (a chainrule.lax cond/scan/while_loop/'
                'fori_loop body, a checkpointed function), with a value computed there: the '
                'body is traced once, so the change cannot follow its iterations or branches. '
                'Carry the value through the loop or branch (return it) and write it after.')
        try:
            x = get()
        except ConcretizationError:
            raise ConcretizationError(
                f'{what}: an in-place change of a Tensor made outside vmap (a buffer, a '
                'counter) with a value that differs from one example to the next: each '
                'example would write its own value into the one Tensor. PyTorch refuses this '
                'too. Keep the state out of vmap (return the values and combine them), or, for '
                'BatchNorm, use track_running_stats=False or eval mode.') from None
    return x


def _root(t):
    info = getattr(t, '_view', None)
    if info is not None:
        return info[0], info[1]
    return t, ()


def stage_write(trace, t, fn, other, name, idx=None):
    """Stage `t = fn(t, other)` (or, with `fn` None, `t[idx] = other`) for captured Tensor `t`
    in the jit `trace` that captures it. Returns `t`."""
    from chainrule._views import _inplace_result, _must_record
    grad = _grad_enabled.get()
    if grad:
        _must_record(t, other, name)      # PyTorch's refusals (a leaf that requires grad, ...)
    st = state(trace, make=True)
    cur = st.read(t)
    if cur is None:
        cur = t                           # staged reads of the captured Tensor
    if fn is None:
        if isinstance(other, Tensor) and other.dtype != t.dtype:
            other = ops.astype(other, t.dtype)
        new = ops.at_set(cur, other, Ellipsis if idx is None else idx)
    else:
        new = fn(cur, other)
    new = _lower(_inplace_result(name, t, new), trace, name)
    _set(st, t, new, grad)
    return t


def _set(st, t, new, grad):
    """Record `new` (a value of the trace) as captured Tensor t's value."""
    trace = st.trace
    if not grad:
        new = bind(stop_gradient_p, new)
    root, path = _root(t)
    key = id(root._version)
    e = st.roots.get(key)
    if path:
        base = e[1] if e is not None else _staged(trace, root)
        new = _scatter(base, root.shape, path, new)
    if e is None:
        st.roots[key] = [root, new, 1, grad]
    else:
        e[1], e[2], e[3] = new, e[2] + 1, e[3] or grad


def _staged(trace, x):
    """Captured Tensor `x` as a tracer of the staging `trace` (an input of the program)."""
    v = trace.to_atom(x)
    return StagingTracer(trace, v.aval, v)


def _scatter(base, shape, path, value):
    """`base` (of `shape`) with the region that view `path` shows replaced by `value`."""
    from chainrule.ops.structural import getitem_p
    if len(path) == 1 and path[0][0] is getitem_p:
        return ops.at_set(base, value, path[0][1]['idx'])
    pos = np.arange(int(np.prod(shape))).reshape(shape)
    for prim, params in path:
        pos = prim.impl(pos, **params)
    return ops.at_set(base, value, np.unravel_index(pos, shape))


def write_back(targets, counts, values, recorded):
    """After a call of a jitted program: store each staged value into its Tensor, as the eager
    in-place operations would have (version bumped `count` times). `recorded[i]`: write i is
    differentiable (made with grad mode on, its value depending on a Tensor that requires
    grad): it is recorded on the tape, as an eager `copy_` would be."""
    from chainrule import _views
    cap = capturing_trace.get()
    for t, n, v, rec in zip(targets, counts, values, recorded):
        if cap is not None and cap.level > t._trace.level:
            # an enclosing jit captures this Tensor too: the write is staged there (the value
            # is stop_gradient'ed already where the write was made under no_grad)
            st = state(cap, make=True)
            _set(st, t, _lower(v, cap, 'jit'), True)
            st.roots[id(_root(t)[0]._version)][2] += n - 1
            continue
        if rec and isinstance(v, Tensor) and v.requires_grad and _grad_enabled.get():
            _views.inplace(t, None, v, 'copy_', Ellipsis)
            t._version[0] += n - 1
            continue
        if isinstance(v, Tensor):
            v = v.data
        try:
            v = concrete(v)
        except ConcretizationError as e:
            raise ConcretizationError(
                f'jit: the jitted function changes a Tensor of shape {t.shape} in place, and '
                f'here the new value is not one array ({e}). Call it outside vmap, or keep '
                'the state out of the function.') from None
        d = t.data
        if isinstance(d, np.ndarray) and d.flags.writeable:
            d[...] = v
        else:
            t.data = np.array(v, dtype=t.dtype)
        t._version[0] += n


def depends(graph, n_out):
    """For each of the last `n_out` outputs of `graph`, the positions of the inputs it depends
    on through a differentiable path (not through `stop_gradient`, not through integer
    values)."""
    deps = {v.id: frozenset([i]) for i, v in enumerate(graph.invars)
            if v.aval.dtype.kind in 'fc'}
    empty = frozenset()
    for e in graph.eqns:
        if e.prim is stop_gradient_p:
            continue
        s = empty
        for v in e.invars:
            s = s | deps.get(getattr(v, 'id', None), empty)
        if s:
            for o in e.outvars:
                if o.aval.dtype.kind in 'fc':
                    deps[o.id] = s
    return [deps.get(getattr(v, 'id', None), empty) for v in graph.outvars[len(graph.outvars)
                                                                          - n_out:]]


class Writes:
    """What a jitted program writes back after each call: its last `n` outputs are the new
    values of the argument leaves at `arg_pos` (Tensors the caller passed) and of the captured
    Tensors `captured`, each changed by `counts[i]` in-place operations."""

    __slots__ = ('arg_pos', 'captured', 'counts', 'grad', 'deps', 'n', 'types')

    def __init__(self, arg_pos, captured, counts, grad):
        self.arg_pos, self.captured, self.counts, self.grad = arg_pos, captured, counts, grad
        self.n = len(counts)
        self.deps = None
        self.types = [(t.shape, t.dtype) for t in captured]

    def same_types(self):
        """The captured Tensors written still have the shapes and dtypes traced for."""
        return all((t.shape, t.dtype) == k for t, k in zip(self.captured, self.types))

    def finish(self, graph):
        """Record, from the optimised `graph`, which inputs each write depends on."""
        self.deps = [d if g else frozenset() for d, g in zip(depends(graph, self.n), self.grad)]

    def inputs(self, leaves, closure):
        """The program's inputs for one call, `leaves + closure`, where a Tensor it writes
        (and that requires no grad) is passed as a copy of its array when a transform or the
        tape may keep the inputs for a backward pass: the write-back changes the array in
        place, and the saved value must stay the one the call read."""
        ins = list(leaves) + list(closure)
        if not _may_save(ins):
            return ins
        written = {id(t._version) for t in self.captured}
        n = len(leaves)
        for i, x in enumerate(ins):
            if i < n:
                if i in self.arg_pos and isinstance(x, np.ndarray):
                    ins[i] = x.copy()
            elif isinstance(x, Tensor) and not x.requires_grad and \
                    id(x._version) in written and isinstance(x.data, np.ndarray) and \
                    not captured_by_jit(x):     # (an enclosing jit reads its staged value)
                ins[i] = x.data.copy()
        return ins

    def apply(self, raw_leaves, inputs, values):
        """Write `values` (the program's last `n` outputs) back; `raw_leaves` are the call's
        argument leaves as the caller passed them, `inputs` the program's inputs."""
        targets = [raw_leaves[i] for i in self.arg_pos] + self.captured
        recorded = [any(getattr(inputs[j], 'requires_grad', False) for j in d)
                    for d in self.deps]
        write_back(targets, self.counts, values, recorded)


def _may_save(inputs):
    """Whether binding a program on `inputs` may keep them for a backward pass."""
    grad = _grad_enabled.get()
    for x in inputs:
        if isinstance(x, Tensor):
            if (x.requires_grad and grad) or isinstance(x.data, Tracer):
                return True
        elif isinstance(x, Tracer):
            return True
    return False


def collect(trace, ins, faced_ins, leaves):
    """At the end of a jit trace: the `Writes` it staged and their values (to append to the
    program's outputs), or `(None, [])`. `ins` are the trace's argument tracers, `faced_ins`
    what the function got (Tensors where the caller passed Tensors), `leaves` the caller's
    leaves (a Tensor that requires grad is kept as one)."""
    st = trace.writes
    pos, counts, grad, values = [], [], [], []
    for i, (x, fx) in enumerate(zip(ins, faced_ins)):
        if fx is x or not isinstance(fx, Tensor) or fx.data is x:
            continue
        g = st is not None and id(fx) in st.grad_args
        leaf = leaves[i]
        if g and isinstance(leaf, Tensor) and leaf.requires_grad and leaf.is_leaf:
            raise GradientError(
                'jit: the jitted function changes an argument in place, a leaf Tensor of shape '
                f'{leaf.shape} that requires grad, while grad mode is on (its gradient would be '
                'lost). Wrap the update in `with cr.no_grad():`, as optimizers do.')
        v = _lower(fx.data, trace, 'jit')
        pos.append(i)
        counts.append(fx._version[0])
        grad.append(g)
        values.append(v if g else bind(stop_gradient_p, v))
    captured = []
    if st is not None and st.roots:
        roots, cs, gs, vs = st.targets()
        captured, counts, grad, values = roots, counts + cs, grad + gs, values + vs
    if not counts:
        return None, []
    return Writes(pos, captured, counts, grad), values
