"""The eager trace: how an operation on `Tensor`s runs and is recorded on the tape.

What it holds: `EagerTrace` (the trace `bind` hands an operation on Tensors to: it unboxes
their data, runs the primitive and, when grad mode is on and an input requires grad, records a
tape `Node` holding the primitive, the parent nodes and the raw arrays its VJP needs -- never the
output Tensor, so graphs free themselves by reference counting), what a node keeps of its
arguments' version counters (`_saved_version`), the trace a Tensor made here belongs to
(`eager_trace`), and the constructor of result Tensors on the hot path (`_wrap_in`). Names used
elsewhere are re-exported by `chainrule.tensor`.
"""

import weakref

from chainrule.core import Trace, Tracer, _innermost, bind, capturing_trace
from chainrule.interpreters.reverse import (SAVED_AT_0_BY_PARENT, SAVED_AT_0_BY_PARENTS,
                                             SAVED_AT_0_FIRST, SAVED_AT_0_SECOND, Node,
                                             _projection_node, _seq, new_node)
from chainrule.interpreters.reverse import _READS_NOTHING, reads_nothing as _reads_nothing
from chainrule._grad_mode import _grad_enabled
from chainrule.tensor import Tensor

class EagerTrace(Trace):
    """The trace of `Tensor`s. There is one at top level, below every transform, and one per
    active transform, one level above it (made when a Tensor is first made inside it). A trace
    unboxes only its own Tensors: a Tensor of a lower eager trace (a parameter closed over by
    a transformed function) is passed on as a value, so the transforms between the two
    differentiate through it and its operations are recorded on its own trace's tape."""

    __slots__ = ()

    def process(self, prim, args, params):
        cap = _capturing_get()
        if cap is not None and cap.level > self.level:
            # a Tensor made outside a jit being traced: stage the operation (the Tensor becomes
            # an input of the program, read on every call), never bake its result in; a view
            # of it stays a view, so in-place writes through it reach it
            if prim in _VIEW_PRIMS:
                return _views.captured_view(cap.process(prim, args, params), args[0], prim,
                                            params)
            return cap.process(prim, args, params)
        n = len(args)
        if n == 1:
            if prim in _VIEW_PRIMS:     # the result may share the argument's memory
                return _view_of(self._process1(prim, args[0], params), args[0], prim, params)
            return self._process1(prim, args[0], params)
        if n == 2:
            return self._process2(prim, args[0], args[1], params)
        vals = [a.data if isinstance(a, Tensor) and a._trace is self else a for a in args]
        lower = False
        for v in vals:
            if isinstance(v, Tracer):       # data traced by grad/vmap/jit, or an outer Tensor
                lower = True
                break
        out = bind(prim, *vals, **params) if lower else prim.impl(*vals, **params)
        return self._finish(prim, args, vals, out, params)

    # The same, unrolled for one and two arguments: most operations, and the eager path's cost
    # per op is mostly Python overhead (see bench/overhead.py).
    def _process1(self, prim, a, params):
        va = a.data            # (the one tracer argument: bind chose this trace for it)
        out = bind(prim, va, **params) if isinstance(va, Tracer) else prim.impl(va, **params)
        if prim.multiple_results:
            return self._finish(prim, (a,), (va,), out, params)
        if not a.requires_grad or prim.vjp is None or not _grad_enabled_get():
            return _wrap_in(self, out, None)         # nothing to record
        pa = a._node
        saved = (SAVED_AT_0_BY_PARENT if a._vbox is None and pa.out_version is None
                 else (_saved_version(a, pa),))
        return _wrap_in(self, out, new_node(prim, params, pa, None, 1, (va,), out, saved))

    def _process2(self, prim, a, b, params):
        ta = isinstance(a, Tensor) and a._trace is self
        tb = isinstance(b, Tensor) and b._trace is self
        va = a.data if ta else a
        vb = b.data if tb else b
        if isinstance(va, Tracer) or isinstance(vb, Tracer):
            out = bind(prim, va, vb, **params)
        else:
            out = prim.impl(va, vb, **params)
        if prim.multiple_results:
            return self._finish(prim, (a, b), (va, vb), out, params)
        if prim.vjp is None:
            return _wrap_in(self, out, None)         # nothing to record
        return self._record2(prim, params, a if ta else None, b if tb else None, va, vb, out)

    def _record2(self, prim, params, a, b, va, vb, out):
        """The result `out` of differentiable `prim` on `va` and `vb`, the data of this trace's
        Tensors `a` and `b` (None for a constant), recorded if grad mode is on and `a` or `b`
        requires grad. Shared by `_process2` and the operators' fast path
        (`chainrule._eager_ops`), so both record the same node."""
        pa = a._node if a is not None and a.requires_grad else None
        pb = b._node if b is not None and b.requires_grad else None
        if (pa is None and pb is None) or not _grad_enabled_get():
            return _wrap_in(self, out, None)         # nothing to record
        # what the node keeps of each argument's version counter (`_saved_version`, with its
        # common case inlined: an argument whose counter is its parent's)
        sa = sb = None
        rn = _READS_NOTHING_get(prim)     # (`reads_nothing`: its cache read inline)
        if rn is None:
            rn = _reads_nothing(prim)
        if rn:      # (add, sub) no version to keep: no check can fail
            a = b = None
        if a is not None:
            v, ov = a._vbox, (pa.out_version if pa is not None else None)
            sa = ((0 if ov is None else ov[0]) if pa is not None and (v is None or v is ov)
                  else _saved_version(a, pa))
        if b is not None:
            v, ov = b._vbox, (pb.out_version if pb is not None else None)
            sb = ((0 if ov is None else ov[0]) if pb is not None and (v is None or v is ov)
                  else _saved_version(b, pb))
        # `new_node` and `_wrap_in`, inlined (this is every recorded + - * / of the eager path)
        node = _object_new(Node)
        node.seq = _next_seq()
        node.prim = prim
        node.params = params
        node._p0 = pa
        node._p1 = pb
        node.nparents = 2
        node.args = (va, vb)
        node.out = out
        node.hooks = node.leaf = node.out_version = None
        if sa is None:
            node.versions = (None if sb is None else SAVED_AT_0_SECOND if sb == 0 else
                             (None, sb))
        elif sa == 0:
            node.versions = (SAVED_AT_0_FIRST if sb is None else SAVED_AT_0_BY_PARENTS if sb == 0
                             else (0, sb))
        else:
            node.versions = (sa, sb)
        t = _object_new(Tensor)
        t._trace = self
        t.data = out
        t.grad = t._vbox = None
        t.requires_grad = True
        t._node = node
        return t

    def _finish(self, prim, args, vals, out, params):
        node = None
        if prim.vjp is not None and _grad_enabled_get():
            own = [isinstance(a, Tensor) and a._trace is self for a in args]
            parents = tuple([a._node if o and a.requires_grad else None
                             for a, o in zip(args, own)])
            for p in parents:
                if p is not None:
                    versions = tuple([_saved_version(a, q) if o else None
                                      for a, o, q in zip(args, own, parents)])
                    node = Node(prim, params, parents, tuple(vals), out, versions)
                    break
        if prim.multiple_results:
            if node is None:
                return tuple(_wrap_in(self, o, None) for o in out)
            return tuple(_wrap_in(self, o, _projection_node(node, i, len(out)))
                         for i, o in enumerate(out))
        return _wrap_in(self, out, node)


# What a node keeps of an argument's version counter (`Node.versions`, checked by backward):
# `(counter, version)`, or, when the counter is the parent node's `out_version` (the argument
# is that node's output, a Tensor wrapping it, or a leaf), the version alone, an int: an
# argument without a counter of its own uses the node's, which starts at 0 when it is made. A
# recorded operation so keeps no container the cyclic collector tracks besides its node (a
# tuple holding the list would stay tracked; a tuple of ints is untracked at its first
# collection, and the common cases share the constants `SAVED_AT_0_*` of
# `chainrule.interpreters.reverse`, which the backward pass checks without a call).


def _saved_version(t, parent):
    v = t._vbox
    if parent is not None:
        ov = parent.out_version
        if v is None:         # t's counter is its node's, the parent (see Tensor._version)
            return 0 if ov is None else ov[0]
        if v is ov:
            return v[0]
    v = t._version
    return (v, v[0])


_object_new = object.__new__
_next_seq = _seq.__next__
# bound methods made once: `cv.get()` makes one per call (ContextVar's attribute lookup is not
# the generic one that the interpreter's method-call shortcut needs)
_grad_enabled_get = _grad_enabled.get
_capturing_get = capturing_trace.get
_innermost_get = _innermost.get
_READS_NOTHING_get = _READS_NOTHING.get

_EAGER = EagerTrace(1)      # top level: below every transform (their levels are 2, 4, ...)


def captured_by_jit(t):
    """Whether a `jit` being traced captures Tensor `t` (made outside it): operations on `t`
    are then staged into the program, which reads `t` on every call."""
    cap = _capturing_get()
    return cap is not None and cap.level > t._trace.level


def eager_trace():
    """The eager trace a `Tensor` made here belongs to: the top-level one, or, inside a
    transform, the one just above the innermost active transform."""
    tr = _innermost_get()
    if tr is None:
        return _EAGER
    e = tr.eager
    if e is None:
        e = tr.eager = EagerTrace(tr.level + 1)
    return e


def _leaf_node(t):
    node = Node(None, None, (), None, None)
    node.leaf = weakref.ref(t)
    node.out_version = t._version
    return node



def _wrap_in(trace, data, node, cls=Tensor):
    """`Tensor._wrap` for a result of `trace` (the eager hot path: no context lookup)."""
    t = object.__new__(cls)
    t._trace = trace
    t.data = data
    t.grad = None
    t.requires_grad = node is not None
    t._node = node
    t._vbox = None      # the version counter, made when first needed (see Tensor._version)
    return t



from chainrule import _views  # noqa: E402
from chainrule._views import VIEW_PRIMS as _VIEW_PRIMS, view_of as _view_of  # noqa: E402
