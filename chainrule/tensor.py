"""`Tensor`: eager arrays that record their history, PyTorch style, on chainrule's engine.

What you can do with it:

    >>> import chainrule as cr
    >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = (w * w).sum()
    >>> loss.backward()
    >>> w.grad
    Tensor([2., 4.])

A `Tensor` is a tracer of the *eager trace*, whose level is above every transform: an operation
on Tensors unboxes their `data`, binds the primitive on it (so `data` may itself be a tracer of
`grad`, `vmap` or `jit`, and Tensor code runs inside those transforms), and wraps the result.
A tape `Node` is recorded only when grad mode is on and some input requires grad; the node
holds the primitive, the parent nodes and the raw arrays its VJP needs -- never the output
Tensor -- so graphs free themselves by reference counting. `backward()` is
`chainrule.interpreters.reverse.backprop`, the same backward pass as `grad`.

Grad mode lives in a `contextvars.ContextVar`: `no_grad()` in one thread (or asyncio task)
does not affect another. Several threads may run `backward()` into the same leaves: adding to
`.grad` holds a lock, so every contribution arrives.

Views, version counters and in-place operations follow PyTorch; the machinery and what it can
and cannot detect are described in `chainrule._views`.

The class is here; its machinery lives in modules by topic: grad mode in `chainrule._grad_mode`,
the eager trace that runs and records operations in `chainrule._eager_trace`, the operators'
fast path in `chainrule._eager_ops`, and the delivery of gradients into leaves' `.grad` (and
hooks, `create_graph`) in `chainrule._leaf_grads`. Their public names are importable from here.
"""

import copy
import functools
import weakref

import numpy as np

from chainrule import _hooks, ops
from chainrule.core import ConcretizationError, DTypeError, GradientError, ShapeError, Tracer
from chainrule.interpreters.reverse import backprop
# grad mode (its own module; these names are imported from here too)
from chainrule._grad_mode import (_grad_enabled, _tape_off, enable_grad,  # noqa: F401
                                  is_grad_enabled, no_grad, set_grad_enabled)

__all__ = ['Tensor', 'tensor', 'no_grad', 'enable_grad', 'set_grad_enabled', 'is_grad_enabled']


class Tensor(Tracer):
    """An array that can record the operations applied to it, for `backward()`.

    Args:
        data: anything `np.asarray` accepts (a Python float gives float64, a float32 array stays
            float32), another `Tensor` (its data is shared, not its history), or a tracer.
        requires_grad: record operations on this tensor so `backward()` fills `.grad`. Only
            floating and complex tensors can require grad.
        dtype: optional NumPy dtype to convert `data` to.

    Methods follow PyTorch wherever `torch.Tensor` defines the name (`transpose(d0, d1)`,
    `repeat`, `size()`, `sum(dim, keepdim)`, `std()` with `correction=1`, `max(dim)` giving
    `(values, indices)`, ...; see `chainrule._torch_face`); NumPy-only names (`astype`,
    `swapaxes`, ...) keep working. Inside `grad`/`vmap`/`jit` the traced values themselves keep
    NumPy's methods; a Tensor there keeps PyTorch's.

    Attributes:
        data: the values, a NumPy array (or a tracer inside a transform). It is the raw array:
            a write into it (`t.data[...] = v`, `t.data += 1`) bypasses the version counter,
            as writes through PyTorch's `.data` do; write through the Tensor (`t[...] = v`,
            `t += 1`, or `t.detach()` for an alias without history) to have it detected.
        grad: the gradient `backward()` accumulated, a `Tensor` (or None). For a complex
            tensor it follows JAX's convention, the same as `cr.grad`: for a real loss it is
            the conjugate of PyTorch's `.grad` (`abs(z)**2` at `1+2j` gives `2-4j`, PyTorch
            `2+4j`). The optimizers in `chainrule.optim` step along `conj(grad)`, so complex
            parameters follow PyTorch's iterates exactly; step by hand along it too
            (`z -= lr * conj(z.grad)`).
    """

    # `_view` (a view's base and path) and `_views` (a base's live views) stay unset on Tensors
    # that are neither, so the eager path does not pay for them (see chainrule._views)
    # `_vbox` holds the version counter once it exists; see the `_version` property
    __slots__ = ('data', 'grad', 'requires_grad', '_node', '_vbox', '_trace', '_view',
                 '_views', '__weakref__')
    _is_tensor = True

    def __init__(self, data, requires_grad=False, dtype=None):
        version = [0]
        if isinstance(data, Tensor):
            version = data._version
            data = data.data
        if isinstance(data, Tracer):
            if dtype is not None:
                data = ops.astype(data, dtype)
        else:
            new = np.asarray(data, dtype=dtype)
            if new is not data:
                version = [0]
            data = new
        self.data = data
        self.grad = None
        self.requires_grad = False
        self._node = None
        self._vbox = version        # shared with the Tensor whose array this one shares
        self._trace = eager_trace()
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data, node, trace=None):
        """A Tensor holding `data`, made by `node` (None: no history), of the eager `trace`
        (by default the one of the current context, see `eager_trace`)."""
        return _wrap_in(eager_trace() if trace is None else trace, data, node, cls)

    @property
    def _version(self):
        """The version counter: a one-element list, shared by every Tensor viewing the same
        memory, that each in-place write bumps (see `chainrule._views`).

        A result of a recorded operation gets its counter only when something asks for it (an
        in-place write, a view, `detach()`): until then it is at version 0, and it belongs to
        the node that made the result (`out_version`), where the nodes that saved the result
        find it. So recording an operation allocates no counter, and a tape of a thousand
        operations holds a thousand nodes and nothing else the cyclic garbage collector tracks
        (see `chainrule.interpreters.reverse`)."""
        v = self._vbox
        if v is None:
            node = self._node
            if node is None:
                v = [0]
            else:
                v = node.out_version
                if v is None:
                    v = node.out_version = [0]
            self._vbox = v
        return v

    @_version.setter
    def _version(self, box):
        self._vbox = box

    # --- basic properties ---------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self._node is None or self._node.prim is None

    @property
    def grad_fn(self):
        """The node that produced this tensor (`None` for leaves)."""
        n = self._node
        return None if n is None or n.prim is None else n

    def _concrete(self):
        if captured_by_jit(self):
            # its value is an input of the program being staged, read on every call: code that
            # needs a value now (batch statistics, an index, a branch) must stage it instead
            raise ConcretizationError(
                f'a Tensor of shape {tuple(self.data.shape)} that a jitted function closes over '
                'is read as a concrete value while the function is traced: the value would be '
                'baked into the compiled program and go stale when the Tensor changes. Pass it '
                'as an argument, or use chainrule operations on it (they are staged).')
        return self.data

    def dim(self):
        return self.data.ndim

    def numel(self):
        return int(np.prod(self.data.shape))

    def __repr__(self):
        # (a NumPy scalar, which ufuncs return for 0-d inputs, prints like a 0-d array)
        body = np.array2string(np.asarray(self.data), separator=', ', prefix='Tensor(') \
            if isinstance(self.data, (np.ndarray, np.generic)) else repr(self.data)
        extra = ''
        if self.data.dtype not in (np.float64, np.int64, np.bool_, np.complex128):
            extra += f', dtype={self.data.dtype}'
        if self.requires_grad:
            n = self.grad_fn
            extra += f', grad_fn={n.prim.name}' if n is not None else ', requires_grad=True'
        return f'Tensor({body}{extra})'

    # --- conversion ---------------------------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array, sharing memory with this Tensor (no copy, no history).

        For a Tensor that requires grad the array is a **read-only** view: its values may be
        saved for a backward pass, and a write into them would make the gradient silently wrong
        (PyTorch refuses `numpy()` there; a read-only view still lets you look). To get a
        writable array that shares memory, use `t.detach().numpy()`, and modify it only when no
        backward pass needs the values: NumPy cannot tell chainrule about writes into a raw
        array, so they bypass the version counter (in-place operations on the Tensor or its
        views, `detach()` included, are detected). `t.numpy().copy()` gives a private copy.
        """
        return self.__array__()

    def _captured(self, what):
        """Raise if a `jit` being traced captures this Tensor (made outside it): its value is
        read when the compiled program runs, so reading it now would freeze it."""
        if captured_by_jit(self):
            raise ConcretizationError(
                f'{what} of a Tensor that a jitted function closes over (a parameter or '
                'buffer made outside it): the compiled program reads its current value on every '
                'call, so it has no value while the function is traced. Compute with it as an '
                'array (chainrule.numpy / Tensor operations), or read the number outside the '
                'jitted function and pass it in.')

    def item(self):
        self._captured('item()')
        d = np.asarray(self.data)
        if d.size != 1:
            raise ShapeError(f'item(): only a Tensor with one element can be converted to a '
                             f'Python scalar, this one has shape {d.shape}')
        return d.item()

    def tolist(self):
        self._captured('tolist()')
        return np.asarray(self.data).tolist()

    def __array__(self, dtype=None, copy=None):
        # np.asarray(t) follows numpy(): read-only where the values may be saved for backward
        self._captured('A NumPy conversion (np.asarray, numpy(), a NumPy function)')
        a = np.asarray(self.data)
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        if copy:
            return a.copy()
        if self.requires_grad and a.flags.writeable:
            a = a.view()
            a.flags.writeable = False
        return a

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __complex__(self):
        return complex(self.item())

    def __index__(self):
        if np.asarray(self.data).dtype.kind not in 'iu':
            raise TypeError('only integer Tensors can be used as an index')
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    # --- history ------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad:
            if not self.is_leaf:
                self.requires_grad = True
                return self
            dt = self.data.dtype
            if dt.kind not in 'fc':
                raise DTypeError(f'only floating and complex Tensors can require grad; this one '
                                 f'has dtype {dt}. Convert it first, e.g. '
                                 'Tensor(x, dtype=np.float32, requires_grad=True)')
            if self._node is None:
                self._node = _leaf_node(self)
            self.requires_grad = True
        else:
            if not self.is_leaf:
                raise GradientError('requires_grad_(False) works only on leaf Tensors; use '
                                    'detach() to cut a non-leaf Tensor from its history')
            self._node = None
            self.requires_grad = False
        return self

    def detach(self):
        """The same data (shared), cut from the graph: a leaf that does not require grad. It
        shares the version counter too (as in PyTorch), so modifying it in place is detected by
        a backward pass that saved this tensor; it is no view for autograd (an in-place
        operation on it is not recorded on this tensor)."""
        if captured_by_jit(self):
            return ops.stop_gradient(self)      # staged by the jit that captures this Tensor
        d = self.data
        if isinstance(d, Tracer):
            # traced by a transform (Tensor code under grad/vmap/jit): cut that derivative too,
            # as torch.func's detach does (without it the transform differentiates through)
            d = ops.stop_gradient(d)
        t = Tensor._wrap(d, None, self._trace)
        t._version = self._version
        if d is not self.data:
            _views.traced_alias(t, self)        # inside jit: a write to t reaches self
        return t

    def view(self, *shape, **kwargs):
        """PyTorch's `view(*shape)` (or `view(size=shape)`): the same data with a new shape,
        always sharing memory (and the version counter) with this Tensor; raises where that
        needs a copy (`reshape` then copies instead)."""
        if kwargs:
            shape = ((kwargs['dtype'],) if not shape and list(kwargs) == ['dtype'] else
                     ops.methods.shape_keyword('view', 'size', shape, kwargs))
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
            if isinstance(shape, (type, np.dtype, str)):
                raise TypeError(f'view({shape!r}): reinterpreting the bytes as another dtype is '
                                'not differentiable and not supported; use astype() to convert')
        out = ops.reshape(self, shape)
        if not isinstance(out, Tensor) or captured_by_jit(self):
            return out                          # staged by the jit that captures this Tensor
        d, od = self.data, out.data
        if isinstance(d, np.ndarray) and out is not self and (
                not isinstance(od, np.ndarray) or _views._owner(od) is not _views._owner(d)):
            raise ShapeError(f'view{tuple(shape)}: a Tensor of shape {self.shape} and strides '
                             f'{d.strides} cannot be viewed with that shape without copying; '
                             'use reshape() (which copies when needed), or contiguous data')
        return out

    def clone(self):
        """A copy of the data, still connected to the graph (its gradient flows back here)."""
        if self.requires_grad or captured_by_jit(self) or isinstance(self.data, Tracer):
            return self + 0
        return Tensor._wrap(np.array(self.data), None, self._trace)

    def __deepcopy__(self, memo):
        """`copy.deepcopy`: a new leaf with copies of the data and `.grad`, requiring grad as
        this one does, in the current context's eager trace (as PyTorch's; `nn.TransformerEncoder`
        copies its layer this way). Only leaves can be copied, as in PyTorch."""
        if not self.is_leaf or isinstance(self.data, Tracer):
            raise GradientError('copy.deepcopy: only leaf Tensors holding arrays can be copied '
                                '(this one is the result of an operation); deep-copy its '
                                'detach() instead')
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        Tensor.__init__(new, np.array(self.data, copy=True))
        for klass in cls.__mro__[:cls.__mro__.index(Tensor)]:     # subclass state (a name)
            for s in klass.__dict__.get('__slots__', ()):
                if hasattr(self, s):
                    setattr(new, s, copy.deepcopy(getattr(self, s), memo))
        if hasattr(self, '__dict__'):
            new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        if self.requires_grad:
            new.requires_grad_(True)
        if self.grad is not None:
            new.grad = copy.deepcopy(self.grad, memo)
        return new

    def zero_grad(self):
        self.grad = None

    def register_hook(self, hook):
        """Call `hook(grad)` with this tensor's gradient during `backward()`; a Tensor it
        returns replaces the gradient. Returns a handle with `.remove()`."""
        if not self.requires_grad:
            raise GradientError('cannot register a hook on a Tensor that does not require grad')
        node = self._node
        wrapped = _tensor_hook(hook, self._trace)
        _hooks.add_hook(node, wrapped)      # (before a retain_grad's, as PyTorch runs them)
        return _HookHandle(node.hooks, wrapped)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(tensor)` each time `backward()` has accumulated a gradient into this
        leaf's `.grad` (PyTorch's name; `DistributedDataParallel` starts its all-reduces from
        it). Returns a handle with `.remove()`."""
        if not self.requires_grad or not self.is_leaf:
            raise GradientError('register_post_accumulate_grad_hook: only a leaf Tensor that '
                                'requires grad accumulates a gradient')
        key = id(self)
        hooks = _post_accumulate_hooks.get(key)
        if hooks is None:
            hooks = _post_accumulate_hooks[key] = []
            weakref.finalize(self, _post_accumulate_hooks.pop, key, None)
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` after `backward()` (after its other
        hooks have run; it follows the tensor through in-place operations: see
        chainrule._hooks)."""
        if self.is_leaf or _hooks.retain_hook_of(self._node, self) is not None:
            return
        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                with _grad_lock:
                    t.grad = _owned(g) if t.grad is None else t.grad + g

        wrapped = _tensor_hook(keep, self._trace)
        wrapped.retains = ref
        _hooks.add_retain_hook(self._node, wrapped)

    def backward(self, gradient=None, retain_graph=False, create_graph=False, steps=False):
        """Accumulate the gradient of this tensor into `.grad` of every leaf that requires it.

        Args:
            gradient: the cotangent of this tensor (its shape); may be omitted for a one-element
                tensor (then it is 1).
            retain_graph: keep the saved values so `backward()` can run again through this graph.
            create_graph: record the backward pass itself, so the gradients are differentiable
                (for second derivatives); implies `retain_graph`.

        Calling `backward()` twice (with `retain_graph=True`) accumulates, as in PyTorch; clear
        gradients with `zero_grad()` (on the tensor, a module or an optimizer).

        With `steps=True` it returns a generator of `chainrule.debug.stepping.Step`s, one per
        node in backward order (op, source line, upstream gradient, local derivative,
        contribution to each input); the `.grad`s are the same as `backward()`'s.
        """
        if not self.requires_grad:
            raise GradientError(
                'backward(): this Tensor does not require grad: no tensor with '
                'requires_grad=True reaches it through a differentiable operation. Either no '
                'input requires grad, it was computed under no_grad(), or every path to it goes '
                'through an operation whose derivative is zero wherever it exists (floor, '
                'round, sign, comparisons, argmax, integer casts): then every gradient is zero, '
                'which is what cr.grad returns for such a function.')
        if gradient is None:
            if self.numel() != 1:
                raise GradientError(
                    f'backward() without a gradient works only for one-element tensors; this '
                    f'one has shape {self.shape}. Pass gradient= (an array of that shape), or '
                    'reduce it first (e.g. loss.sum().backward()).')
            if self.dtype.kind == 'c':
                # PyTorch refuses too: the implicit seed 1 would silently pick the holomorphic
                # derivative, not the gradient of a real loss
                raise GradientError(
                    'backward() without a gradient needs a real scalar, but this tensor is '
                    f'{self.dtype}: reduce it to a real loss first (e.g. z.abs().sum() or '
                    '(z.conj() * z).real.sum()), or pass gradient= explicitly')
            g = np.ones(self.shape, self.dtype)
        else:
            g = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if g.shape != self.shape:
                raise ShapeError(f'backward(): gradient has shape {g.shape}, but the tensor has '
                                 f'shape {self.shape}')
        if steps:
            from chainrule.debug.stepping import tensor_steps
            return tensor_steps(self, g, retain_graph)
        if create_graph:
            retain_graph = True
            with enable_grad():
                backprop([self._node], [Tensor._wrap(g, None, self._trace)], retain_graph=True,
                         wrap=functools.partial(_wrap_differentiable, self._trace),
                         on_leaf=_accumulate)
        else:
            with _tape_off():
                backprop([self._node], [g], retain_graph=retain_graph, on_leaf=_accumulate)

    # --- drawing ------------------------------------------------------------------------------
    def _viz_graph(self):
        """`(nodes, edges)` of the recorded graph that produced this tensor, for
        `chainrule.viz.draw`: an 'op' node per recorded operation (its primitive's name) and a
        'value' node per result and leaf (shape, dtype, and the values when there are at most
        four; a leaf with a `name`, such as a module's `Parameter`, shows it). Constant inputs
        are not drawn; values freed by `backward()` show as freed."""
        from chainrule._graph import toposort
        root = self._node
        if root is None:
            return [('v0', _viz_label(self.data), 'value')], []
        order = toposort([root], lambda n: [p for p in n.parents if p is not None])
        index = {id(n): k for k, n in enumerate(order)}
        nodes, edges = [], []
        for k, n in enumerate(order):
            if n.prim is None:
                t = n.leaf() if n.leaf is not None else None
                # a module parameter is labelled with its name (nn.Parameter.name)
                kind = getattr(t, 'name', None) or 'leaf'
                nodes.append((f'v{k}', _viz_label(None if t is None else t.data, kind),
                              'value'))
                continue
            nodes.append((f'op{k}', n.prim.name, 'op'))
            edges.extend((f'v{index[id(p)]}', f'op{k}') for p in n.parents if p is not None)
            nodes.append((f'v{k}', _viz_label(self.data if n is root else n.out), 'value'))
            edges.append((f'op{k}', f'v{k}'))
        return nodes, edges

    # --- in-place operations (the machinery: chainrule._views) -------------------------------
    # (+=, -=, *=, /=, **=, //=, %=, &=, |=, ^= are installed below the class)
    def add_(self, other, alpha=1):
        return _views.inplace(self, ops.add, other if alpha == 1 else other * alpha, 'add_')

    def sub_(self, other, alpha=1):
        return _views.inplace(self, ops.sub, other if alpha == 1 else other * alpha, 'sub_')

    def mul_(self, other):
        return _views.inplace(self, ops.mul, other, 'mul_')

    def div_(self, other):
        return _views.inplace(self, ops.div, other, 'div_')

    def copy_(self, src):
        """Store `src`'s values (broadcast to this shape, cast to this dtype) in place. Its
        gradient flows to `src`; none reaches the overwritten values."""
        return _views.inplace(self, None, src, 'copy_', Ellipsis)

    def zero_(self):
        """Set every element to 0 in place (inf and nan too)."""
        return _views.inplace(self, None, 0, 'zero_', Ellipsis)

    def fill_(self, value):
        """Set every element to `value` in place."""
        return _views.inplace(self, None, value, 'fill_', Ellipsis)

    def __setitem__(self, idx, value):
        _views.inplace(self, None, value, '__setitem__', idx)

    # np.sin(t), np.sum(t) and np.asarray(t): __array_ufunc__ and __array_function__ are those
    # of every tracer (chainrule/ops/methods.py); __array__ above gives the data.


# The augmented assignments write in place, as NumPy's and PyTorch's do. Without them Python would
# run `t **= 2` as `t = t ** 2`: a new Tensor, leaving the base of a view (and every other alias)
# unchanged.
_AUGMENTED = {'__iadd__': (ops.add, '+='), '__isub__': (ops.sub, '-='),
              '__imul__': (ops.mul, '*='), '__itruediv__': (ops.div, '/='),
              '__ipow__': (ops.power, '**='), '__ifloordiv__': (ops.floor_divide, '//='),
              '__imod__': (ops.mod, '%='), '__iand__': (ops.bitwise_and, '&='),
              '__ior__': (ops.bitwise_or, '|='), '__ixor__': (ops.bitwise_xor, '^=')}


def _augmented(name, fn, symbol):
    def method(self, other):
        return _views.inplace(self, fn, other, symbol)
    method.__name__ = method.__qualname__ = name
    return method


for _name, (_fn, _symbol) in _AUGMENTED.items():
    setattr(Tensor, _name, _augmented(_name, _fn, _symbol))


def _viz_label(data, kind=''):
    """A value's label for a drawn graph: shape and dtype, plus the values if few."""
    if data is None:
        return f'{kind} (freed)'.strip()
    if isinstance(data, tuple):
        return f'{len(data)} results'
    shape, dtype = getattr(data, 'shape', ()), getattr(data, 'dtype', '')
    text = f'{kind} {tuple(shape)} {dtype}'.strip()
    if isinstance(data, (np.ndarray, np.generic)) and data.size <= 4:
        text += '\n' + np.array2string(np.asarray(data), precision=4, separator=', ')
    return text


def _tensor_hook(hook, trace):
    """`hook` (of a Tensor of `trace`) as the tape calls it: given the raw cotangent, it sees a
    Tensor, and what it returns replaces the cotangent. (It holds the trace, not the Tensor:
    the node would hold its Tensor, a cycle.)"""
    def wrapped(g):
        out = hook(g if isinstance(g, Tensor) else Tensor._wrap(g, None, trace))
        if out is None:
            return None
        return out if isinstance(g, Tensor) else (out.data if isinstance(out, Tensor) else out)
    return wrapped




def tensor(data, requires_grad=False, dtype=None):
    """Make a `Tensor` (a copy of `data`)."""
    if isinstance(data, Tensor):
        data = np.array(data.data)
    elif not isinstance(data, Tracer):
        if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
            from chainrule.factories import _default_for     # Python floats: the default dtype
            dtype = _default_for(data)
        try:
            array = np.array(data, dtype=dtype)
        except (ValueError, TypeError) as e:
            from chainrule.factories import unconvertible
            raise unconvertible(data, e) from e
        if array.dtype.kind in 'OSUV':          # (text, bytes, Python objects: PyTorch refuses)
            from chainrule.factories import unconvertible
            raise unconvertible(data)
        data = array
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


_wrap = Tensor._wrap


# The modules below need `Tensor`; the names they define that are used from here (or imported
# from here elsewhere) are re-exported.
from chainrule._eager_trace import (EagerTrace, _leaf_node, _saved_version,  # noqa: E402,F401
                                    _wrap_in, captured_by_jit, eager_trace)
from chainrule import _views  # noqa: E402
from chainrule._leaf_grads import (_HookHandle, _accumulate, _grad_lock,  # noqa: E402,F401
                                   _owned, _post_accumulate_hooks, _wrap_differentiable)
from chainrule import _eager_ops  # noqa: E402,F401  (Tensor's + - * / with their fast path)
