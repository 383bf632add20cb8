"""Views, version counters and in-place operations of `Tensor`, with PyTorch's semantics.

What this module gives `Tensor` (it holds the machinery; `Tensor`'s in-place methods are thin
calls into `inplace`):

- **One version counter per memory.** Every Tensor has a version counter, a one-element list
  `_version`, that each in-place write bumps. A tape node keeps `(counter, version)` for every
  Tensor it saved, and `backward()` refuses a node whose saved value was modified since and is
  read by a rule that will run (`chainrule.interpreters.reverse._check_versions`). A Tensor
  whose data is a NumPy view of another's shares that Tensor's counter: basic indexing,
  `reshape`/`view`/`flatten`/`ravel`, `transpose`/`T`/`mT`/`swapaxes`, `broadcast_to`,
  `real`/`imag`, and the aliases without history `detach()`, `stop_gradient` and `Tensor(t)`.
  A write through any alias is therefore seen by every node that saved any of them.

      >>> import chainrule as cr, chainrule.numpy as cnp
      >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
      >>> y = cnp.sin(x)                    # sin saves x for its backward pass
      >>> with cr.no_grad():
      ...     x[0:1] += 1                   # through a view: bumps x's counter
      >>> y.sum().backward()                # raises GradientError naming 'sin'

- **Views remember their base.** A view made with grad mode on keeps its *root base* (the
  Tensor whose memory it views: a view of a view points to the first Tensor) and the path of
  view operations from it. An in-place operation on a view that is recorded (something
  requires grad) is rebased onto the base, as PyTorch does: the base's history becomes "the
  old base with the view's region replaced by the new values" (an `at_set` node: no gradient
  to the overwritten region, the new values' gradient for it), and every live view of that
  base (the modified one too) gets its history regenerated as that view of the base's new
  history. So `y = x * 1; v = y[0:2]; v *= 10; y.sum().backward()` gives `x.grad` of
  `[10, 10, 1]`, and `v`, `y` and any other view stay consistent.
- **In-place operations write in place**, so every alias sees the new values. A recorded one is
  computed out of place first (that records its node), then written; when that node's rule
  needs the old value of the Tensor being overwritten (`y *= w` with `w` requiring grad needs
  the old `y`), the node keeps a copy of it (PyTorch's `original_self`).
- **Assignments are assignments**: `t[idx] = v`, `zero_()`, `fill_()` and `copy_()` store the
  values (NumPy's assignment: broadcasting, and casting like NumPy and PyTorch do), so inf and
  nan are overwritten, not multiplied by zero; recorded, their gradient is zero for the
  overwritten region and the identity (summed over broadcasting) for the value.

PyTorch's errors are kept: an in-place operation with grad mode on is refused on a leaf that
requires grad, on a view of one, and on a view made under `no_grad()` of a Tensor that requires
grad. What cannot be seen: writes into the raw NumPy array (`t.data[...] = ...`,
`np.asarray(t)` or `.numpy()` of a Tensor that does not require grad, then written) bypass the
counter -- NumPy has no hook for them. `numpy()` of a Tensor that requires grad is read-only
for that reason. Inside transforms (`grad`, `vmap`, `jit`) a Tensor's data is a tracer, not an
array: there in-place operations replace the Tensor's value and views are copies -- except
inside `jit`, where a view of an argument (or of a Tensor made in the jitted function) stays a
view: a write through it replaces its root's value too (`sync_traced`), and jit writes an
argument's new value back into the caller's Tensor.
"""

import weakref

import numpy as np

from chainrule import ops
from chainrule._hooks import move_retained
from chainrule.core import (ChainruleError, ConcretizationError, DTypeError, GradientError,
                            IndexOutOfRangeError, ShapeError, Tracer, bind, capturing_trace)
from chainrule.interpreters.reverse import Node, ReverseTracer, _uses_output, needs_value
from chainrule.ops.elementwise import imag_p, real_p, stop_gradient_p
from chainrule.ops.structural import (at_set_p, broadcast_to_p, getitem_p, reshape_p,
                                      transpose_p)
from chainrule._eager_trace import captured_by_jit
from chainrule._grad_mode import _grad_enabled
from chainrule.tensor import Tensor

# The primitives whose result may be a NumPy view of their argument; all of their VJP rules
# read only shapes and dtypes. `stop_gradient` returns its argument's array itself: an alias
# without history, like detach().
VIEW_PRIMS = frozenset([getitem_p, reshape_p, transpose_p, broadcast_to_p, real_p, imag_p,
                        stop_gradient_p])


# What a view Tensor keeps in `_view`, a tuple (cheaper to make than an object, and views can be
# made in loops): its root base, the path of `(primitive, params)` applied to the base's data to
# give the view's, and whether grad mode was on. A Tensor that is no view has `_view` None, or
# unset until it is first used as a base.
BASE, PATH, GRAD_MODE = 0, 1, 2


def _view_info(t):
    try:
        return t._view
    except AttributeError:      # never set: the slot is left unset on the eager path
        t._view = None
        return None


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def view_of(t, a, prim, params):
    """Called with `t`, the result of view primitive `prim` on the Tensor `a`: when t's data is
    a NumPy view of a's (not a copy, as advanced indexing and reshaping a non-contiguous array
    make), t shares a's version counter and remembers its root base. Returns `t`."""
    out, va = t.data, a.data
    if type(va) is not np.ndarray:
        if not isinstance(va, np.generic):
            return _traced_view(t, a, prim, params)
        # NumPy gives scalars, not 0-d arrays, for operations on 0-d arrays: for a view that
        # writes through (as PyTorch's do), the base's data becomes a 0-d array first
        va = a.data = np.array(va)
        out = t.data = prim.impl(va, **params)
    if type(out) is not np.ndarray or (out is not va and _owner(out) is not _owner(va)):
        return t
    t._version = a._version
    if prim is stop_gradient_p:
        return t
    grad = _grad_enabled.get()
    info = _view_info(a)
    if info is None:
        base = a
        t._view = (a, ((prim, params),), grad)
    else:
        base = info[BASE]
        grad = grad and info[GRAD_MODE]    # a view of a no_grad view is one too (PyTorch)
        t._view = (base, info[PATH] + ((prim, params),), grad)
    if grad:
        _register(base, t)
    return t


# Views of a Tensor a jit being traced captures (made outside it): the Tensor is an input of
# the program and its view a staged value, but in-place writes through the view must reach the
# base, as eagerly (`v = buf[0:2]; v += 1`). So such a view is a Tensor of the base's eager trace
# holding the staged value, sharing the base's version counter and remembering the base and the
# path, as an eager view does; `chainrule._functionalize` reads and writes through it. Only
# operations that give a NumPy view eagerly make one (`broadcast_to` and `.real`/`.imag`, whose
# in-place writes eager code treats apart, stay values).
_CAPTURED_VIEW_PRIMS = frozenset([getitem_p, reshape_p, transpose_p, stop_gradient_p])


def captured_view(out, a, prim, params):
    """`out`, the staged result of view primitive `prim` on captured Tensor `a`, as a view
    Tensor of `a`'s base when the same operation on `a`'s array gives a NumPy view; else
    `out` itself."""
    if prim not in _CAPTURED_VIEW_PRIMS or not isinstance(a, Tensor):
        return out
    info = _view_info(a)
    root, path = (a, ()) if info is None else (info[BASE], info[PATH])
    d = root.data
    if type(d) is not np.ndarray:
        return out
    if prim is not stop_gradient_p:
        path = path + ((prim, params),)
    v = d
    for p, ps in path:
        v = p.impl(v, **ps)
    if type(v) is not np.ndarray or _owner(v) is not _owner(d):
        return out                     # a copy (advanced indexing, ...): a value
    t = Tensor._wrap(out, None, a._trace)
    t._vbox = a._version
    t._view = (root, path, _grad_enabled.get())
    return t


def _traced_view(t, a, prim, params):
    """`t`, the result of view primitive `prim` on Tensor `a` whose data is a value of the jit
    being traced (an argument of the jitted function, or a Tensor made inside it): a view of
    `a`'s root when the same operation on an array gives a NumPy view, as eagerly, so an
    in-place write through it reaches the root (`sync_traced`) and is written back into the
    caller's Tensor. Elsewhere (grad, vmap) traced views stay values."""
    cap = capturing_trace.get()
    va = a.data
    if cap is None or getattr(va, '_trace', None) is not cap or \
            prim not in _CAPTURED_VIEW_PRIMS:
        return t
    info = _view_info(a)
    root, path = (a, ()) if info is None else (info[BASE], info[PATH])
    if prim is not stop_gradient_p:
        path = path + ((prim, params),)
    d = np.empty(root.shape, root.dtype)       # (no memory touched) the layout eager code sees
    v = d
    try:
        for p, ps in path:
            v = p.impl(v, **ps)
    except Exception:                          # e.g. an index traced by jit: a value
        return t
    if type(v) is not np.ndarray or _owner(v) is not _owner(d):
        return t                               # a copy (advanced indexing, ...): a value
    t._version = a._version
    t._view = (root, path, _grad_enabled.get())
    _register(root, t)
    return t


def traced_alias(t, a):
    """`t`, `a.detach()` of a Tensor `a` traced by jit: an alias of `a` (see `_traced_view`)."""
    return _traced_view(t, a, stop_gradient_p, {})


def sync_traced(t):
    """After an in-place write into Tensor `t` whose data is traced by a jit: when `t` is a
    view of a traced Tensor, the root gets "its value with the view's region replaced"; then
    every live view of the root is recomputed from it, so all aliases agree, as eagerly."""
    from chainrule._functionalize import _scatter as scatter_value
    info = _view_info(t)
    root = t
    if info is not None:
        root, path = info[BASE], info[PATH]
        if not isinstance(root.data, Tracer):
            return
        root.data = t.data if not path else scatter_value(root.data, root.shape, path, t.data)
    for v in _live_views(root):
        if v is not t:
            data = root.data
            for prim, params in v._view[PATH]:
                data = bind(prim, data, **params)
            v.data = data


def _register(base, view):
    """Keep a weak reference to `view` on its base, so an in-place operation can regenerate
    the history of every live view (dead references are pruned as the list doubles)."""
    views = getattr(base, '_views', None)
    if views is None:
        base._views = [weakref.ref(view)]
        return
    views.append(weakref.ref(view))
    n = len(views)
    if n >= 32 and not n & (n - 1):
        views[:] = [r for r in views if r() is not None]


# --- in-place operations -------------------------------------------------------------------------

def inplace(t, fn, other, name, idx=None):
    """Modify Tensor `t` in place: `t = fn(t, other)` with `fn` one of chainrule's binary ops, or
    with `fn=None` the assignment `t[idx] = other`. Recorded when grad mode is on and `t` (or its
    base, for a view) or `other` requires grad; the version counter is bumped either way.
    Returns `t`."""
    if captured_by_jit(t):
        # staged: the jitted program returns the new value and jit writes it into t after
        # every call (chainrule._functionalize)
        from chainrule._functionalize import stage_write
        return stage_write(capturing_trace.get(), t, fn, other, name, idx)
    if isinstance(t.data, Tracer) and _grad_enabled.get() and capturing_trace.get() is not None:
        from chainrule._functionalize import note_traced_write
        note_traced_write(t)
    if _grad_enabled.get() and _must_record(t, other, name):
        node = _assign_recorded(t, other, idx, name) if fn is None else \
            _apply_recorded(t, fn, other, name)
        t._version[0] += 1
        _rebase(t, node)
        return t
    o = other.data if isinstance(other, Tensor) else other
    if fn is None:
        _assign(t, o, idx, name)
    else:
        _apply(t, fn, o, name)
    t._version[0] += 1
    if isinstance(t.data, Tracer):
        sync_traced(t)
    return t


def _must_record(t, other, name):
    """Whether the in-place operation must be recorded (grad mode is on); raises PyTorch's
    errors for the cases it refuses."""
    other_rg = isinstance(other, Tensor) and other.requires_grad
    info = _view_info(t)
    if info is None:
        if t.requires_grad and t.is_leaf:
            raise GradientError(
                f'{name}: a leaf Tensor that requires grad cannot be modified in place while '
                'grad mode is on (its gradient would be lost). Wrap the update in '
                '`with cr.no_grad():`, as optimizers do.')
        return t.requires_grad or other_rg
    base = info[BASE]
    if (base.requires_grad and base.is_leaf) or (t.requires_grad and t.is_leaf):
        raise GradientError(
            f'{name}: a view of a leaf Tensor that requires grad is being used in an in-place '
            'operation while grad mode is on (the leaf would change without its gradient '
            'knowing). Wrap the update in `with cr.no_grad():`, or modify a clone().')
    if not (base.requires_grad or t.requires_grad or other_rg):
        return False
    if not info[GRAD_MODE]:
        raise GradientError(
            f'{name}: this Tensor is a view made under no_grad() and is being modified in place '
            'with grad mode on, while its base or the value requires grad: the change could '
            'not be recorded on the base. Make the view with grad mode on, do the update '
            'under no_grad() too, or modify a clone().')
    if base.dtype.kind == 'c' and any(p is real_p or p is imag_p for p, _ in info[PATH]):
        raise GradientError(
            f'{name}: in-place operations on .real or .imag of a complex Tensor are not '
            'recorded; write the whole Tensor instead, e.g. z = z + 1 (or z.real[...] under '
            'no_grad())')
    return True


def _apply(t, fn, o, name):
    """Unrecorded `t = fn(t, o)`, written into t's array (the fast path optimizers take)."""
    d = t.data
    ufunc = _INPLACE_UFUNCS.get(fn)
    if ufunc is not None and isinstance(d, np.ndarray) and d.flags.writeable and \
            not isinstance(o, Tracer):
        try:     # one NumPy call writing into the array
            ufunc(d, o, out=d, casting='same_kind')
            return
        except (TypeError, ValueError):     # e.g. a float result into an int array: the
            pass                            # general path below gives the clear error
    res = fn(d, o)
    if isinstance(res, Tensor):
        res = res.data
    _store(t, _inplace_result(name, t, res), name)


def _apply_recorded(t, fn, other, name):
    """Recorded `t = fn(t, other)`: computed out of place (which records the node), then
    written. Returns the node of t's new value."""
    res = fn(t, other)
    if res._node is not None:
        _keep_overwritten(res._node, t.data)
    res = _inplace_result(name, t, res)
    _store(t, res.data, name)
    node = res._node
    if node is not None and node.out is res.data and not _uses_output(node.prim):
        node.out = t.data        # no rule reads it: keep no second copy of the new value
    return node


def _keep_overwritten(node, data):
    """`node` saved `data` as its first argument, and `data` is about to be overwritten: if a
    rule that will run reads it, the node keeps a copy instead (PyTorch's `original_self`). The
    other argument is left alone: when it shares memory with `data` (`y *= y`), its version
    counter moves on and backward raises, as PyTorch's does."""
    args = node.args
    if not args or args[0] is not data or not needs_value(node, 0):
        return
    node.args = (np.array(data, copy=True),) + tuple(args[1:])
    if node.versions is not None:
        node.versions = (None,) + tuple(node.versions[1:])


def _index(idx):
    try:
        return ops.normalize_index(idx)
    except ConcretizationError:             # an index traced by vmap or jit
        return None


def _assign(t, o, idx, name):
    """Unrecorded `t[idx] = o`."""
    d = t.data
    nidx = _index(idx)
    if nidx is not None and isinstance(d, np.ndarray) and d.flags.writeable and \
            not isinstance(o, Tracer):
        _write(d, nidx, o, name)
        return
    _read_only_view(t, name)
    res = ops.at_set(d, o, idx if nidx is None else nidx)      # traced data: a new value
    _store(t, res, name) if isinstance(res, Tracer) else setattr(t, 'data', res)


def _assign_recorded(t, value, idx, name):
    """Recorded `t[idx] = value`: the values are stored, and the node is an `at_set` of t's old
    history (no gradient reaches the overwritten region) and the value's. Returns that node."""
    d = t.data
    nidx = _index(idx)
    if nidx is None or not isinstance(d, np.ndarray) or not d.flags.writeable or \
            (isinstance(value, Tensor) and isinstance(value.data, Tracer)):
        _read_only_view(t, name)
        res = ops.at_set(t, value, idx if nidx is None else nidx)   # traced: a new value
        t.data = _own_level(t, res.data, name) if isinstance(res.data, Tracer) else res.data
        return res._node
    vnode, vdata = None, value
    if isinstance(value, Tensor):
        vdata = value.data
        if value.requires_grad:
            try:
                target = np.broadcast_to(np.empty((), np.bool_), d.shape)[nidx].shape
            except IndexError as e:
                raise IndexOutOfRangeError(f'{name}: index {idx!r} does not fit shape '
                                           f'{d.shape}: {e}') from None
            v = value if value.dtype == d.dtype else ops.astype(value, d.dtype)
            try:
                v = ops.broadcast_to(v, target)
            except ShapeError:
                raise ShapeError(f'{name}: a value of shape {value.shape} cannot be broadcast to '
                                 f'the shape {target} of the region it is assigned to (Tensor '
                                 f'of shape {d.shape})') from None
            vnode, vdata = v._node, v.data
    _write(d, nidx, vdata, name)
    parent = t._node if t.requires_grad else None
    if parent is None and vnode is None:
        return None
    # at_set's rules read neither value (the old one only for its shape): nothing is saved
    return _made(Node(at_set_p, {'idx': nidx}, (parent, vnode), (_placeholder(d), vdata), d))


# `chainrule.debug` sets this to `hook(node)` while it records source lines: the in-place nodes
# made here do not pass through EagerTrace.process, and their output is the base's own array
_node_hook = None


def _made(node):
    if _node_hook is not None:
        _node_hook(node)
    return node


def _write(d, nidx, value, name):
    try:
        d[nidx] = value
    except ValueError as e:
        if 'broadcast' not in str(e):
            raise
        raise ShapeError(f'{name}: a value of shape {np.shape(value)} cannot be broadcast to '
                         f'the shape {d[nidx].shape} of the region it is assigned to (Tensor of '
                         f'shape {d.shape})') from None


def _store(t, value, name):
    """Write `value` (t's shape and dtype) into t's array, so every alias sees it. A Tensor
    whose data cannot be written in place (a NumPy scalar, a read-only array that is no view,
    a tracer) gets the value as its new data."""
    d = t.data
    if isinstance(value, Tracer):
        value = _own_level(t, value, name)
    if isinstance(d, np.ndarray) and not isinstance(value, Tracer):
        if d.flags.writeable:
            d[...] = value
            return
        _read_only_view(t, name)
    t.data = value if isinstance(value, Tracer) else np.array(value, dtype=d.dtype)


_TRANSFORM_OF = {'ReverseTracer': 'grad/vjp', 'JVPTracer': 'jvp', 'BatchTracer': 'vmap',
                 'StagingTracer': 'staged function (a lax loop or branch body, make_graph)'}


def _own_level(t, value, name):
    """`value`, about to become Tensor `t`'s contents, checked against the transforms `t` was
    made outside of. A traced value of such a transform (an in-place write of `x * 2` into a
    Tensor the function closes over, inside `grad` or `vmap`) would stay inside `t` after the
    transform returns: every later use of `t` would compute with a dead tracer. Where the value
    carries nothing of the transform but its value (grad/jvp tracers under `no_grad()`, or a
    constant of the trace, like `x.detach()`), its value is written, as eagerly; a gradient
    still flowing, a per-example value or a staged one is refused with the fix."""
    level = t._trace.level
    while isinstance(value, Tracer) and value._trace.level > level:
        kind = type(value).__name__
        constant = type(value) is ReverseTracer and value.node is None
        if not (constant or (kind in ('ReverseTracer', 'JVPTracer') and not _grad_enabled.get())):
            why = {'BatchTracer': 'differs from one example to the next',
                   'StagingTracer': 'is only known when the staged program runs'}.get(
                       kind, 'carries a derivative of the inputs')
            raise ChainruleError(
                f'{name}: in-place change of a Tensor of shape {tuple(np.shape(t.data))} that '
                f'was made outside the {_TRANSFORM_OF.get(kind, "transform")} being traced, with '
                f'a value that {why}: the Tensor would keep a traced value after the transform '
                'returns. Pass the Tensor to the function as an argument and return its new '
                'value (write it outside, t.copy_(new)); under grad, a value written under '
                'cr.no_grad() or detach()ed is written as its value; inside jit such writes '
                'are staged and written back after every call.')
        value = value._concrete()
    return value


def _read_only_view(t, name):
    d = t.data
    if isinstance(d, np.ndarray) and not d.flags.writeable and _view_info(t) is not None:
        raise ChainruleError(
            f'{name}: this Tensor is a read-only view (of shape {d.shape}; a broadcast view '
            'repeats elements of its base in memory), so it cannot be modified in place. '
            'Modify a clone() instead.')


def _inplace_result(name, t, res):
    """`res` checked as the new contents of `t` in place: the same shape (an in-place operation
    cannot broadcast its target), and a dtype NumPy's same_kind rule casts to t's (a float
    result does not go into an integer Tensor, as NumPy and PyTorch refuse; float64 into float32
    is cast, so float32 stays float32)."""
    shape, dt = ops.shape_of(res), ops.dtype_of(res)
    if shape != t.shape:
        raise ShapeError(f'{name}: the result has shape {shape}, but an in-place operation cannot '
                         f'change the shape {t.shape} of the Tensor it modifies')
    if dt != t.dtype:
        if not np.can_cast(dt, t.dtype, 'same_kind'):
            raise DTypeError(f'{name}: a {dt} result cannot be stored in place in a {t.dtype} '
                             "Tensor (NumPy's same_kind casting rule); use an out-of-place "
                             'operation, e.g. x = x + y')
        res = ops.astype(res, t.dtype)
    return res


_INPLACE_UFUNCS = {ops.add: np.add, ops.sub: np.subtract, ops.mul: np.multiply,
                   ops.div: np.true_divide, ops.power: np.power, ops.floor_divide: np.floor_divide,
                   ops.mod: np.remainder, ops.bitwise_and: np.bitwise_and,
                   ops.bitwise_or: np.bitwise_or, ops.bitwise_xor: np.bitwise_xor}


def _placeholder(d):
    """An array with d's shape and dtype and no memory, for a node argument whose rules read
    only its shape and dtype."""
    return np.broadcast_to(np.zeros((), d.dtype), d.shape)


# --- rebasing a view's in-place operation onto its base ------------------------------------------

def _rebase(t, node):
    """`node` is the history of t's new value: make it t's, or, for a view, make the base's
    history "old base with the view's region replaced"; then regenerate every live view's."""
    info = _view_info(t)
    if info is None:
        move_retained(t, t._node, node)
        t._node, t.requires_grad = node, node is not None
        root = t
    else:
        root = info[BASE]
        new = _scatter(root, info[PATH], node, t.data)
        move_retained(root, root._node, new)
        root._node = new
        root.requires_grad = root._node is not None
    _regenerate(root)


def _scatter(root, path, node, view_data):
    """The node of `root` after its view (reached by `path`, holding `view_data`, with history
    `node`) was given new values."""
    if node is None and root._node is None:
        return None
    d = root.data
    if len(path) == 1 and path[0][0] is getitem_p:
        idx = path[0][1]['idx']
    elif d.ndim == 0:         # the view covers the whole 0-d base: its values are the base's
        return None if node is None else Node(reshape_p, {'shape': ()}, (node,), (view_data,), d)
    else:
        # where each element of the view lives in the base: the path applied to positions
        pos = np.arange(d.size).reshape(d.shape)
        for prim, params in path:
            pos = prim.impl(pos, **params)
        idx = np.unravel_index(pos, d.shape)
    return _made(Node(at_set_p, {'idx': idx}, (root._node, node), (_placeholder(d), view_data),
                      d))


def _regenerate(root):
    """Give every live view of `root` the history "this view of root's current history"."""
    for v in _live_views(root):
        node, data = root._node, root.data
        for prim, params in v._view[PATH]:
            out = prim.impl(data, **params)
            if node is not None:
                # view rules read only shapes and dtypes: nothing to check at backward time
                node = Node(prim, params, (node,), (data,), out)
            data = out
        move_retained(v, v._node, node)
        v._node, v.requires_grad = node, node is not None


def _live_views(root):
    """The live views registered on `root` (the dead references are dropped)."""
    views = getattr(root, '_views', None)
    if not views:
        return []
    pairs = [(ref, ref()) for ref in views]
    root._views = [ref for ref, v in pairs if v is not None]
    return [v for _, v in pairs if v is not None]
