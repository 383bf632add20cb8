"""The `jit` front end: trace once per input signature, cache, and call the compiled code.

What you can do with it: `jit(f)` returns a `Jitted` function that traces `f` once per input
signature (the pytree structure, shapes and dtypes of the array arguments, the values of the
`static_argnums`, and grad mode) into a `Graph`, optimises it (`chainrule.jit.passes`) and runs
the generated code (`chainrule.jit.numpy_codegen`). Later calls with the same signature run that
code: `.cache_info()` counts hits and traces, and each retrace is logged on the `chainrule.jit`
logger (at INFO, with the signature that changed), because silent recompilation is a common
surprise. Calls whose arguments are lists and tuples of arrays with a signature seen before skip
the pytree machinery (~35 -> 3 us per call). Called on tracers of another transform, a jitted
function binds `jit_call_p` (`chainrule.jit.call`) instead.

`make_graph(f)` returns the unoptimised graph `f` stages, for reading or saving.
"""

import logging
import time

import numpy as np

from chainrule import _args, _functionalize
from chainrule.core import ChainruleError, Tracer, bind, capturing_trace
from chainrule.interpreters.staging import Graph, ShapedArray, lift_closure, trace_to_graph
from chainrule.jit import call     # (the module: the registry finds `jit_call_p` there)
from chainrule.jit import guards
from chainrule.jit.call import _aval_of_leaf
from chainrule.jit.numpy_codegen import compiled
from chainrule.jit.passes import optimize
from chainrule.random import _staged
from chainrule._tensor_face_args import face, tensor_leaves, traced_out
from chainrule.tensor import _grad_enabled
from chainrule.tree import tree_flatten, tree_map, tree_unflatten

__all__ = ['jit', 'make_graph', 'Jitted', 'CacheInfo']

logger = logging.getLogger('chainrule.jit')


class CacheInfo(tuple):
    """`(hits, misses, size)`: calls served from the cache, calls that traced (`.traces` is
    another name for `misses`), and signatures cached."""

    __slots__ = ()

    def __new__(cls, hits, misses, size):
        return tuple.__new__(cls, (hits, misses, size))

    hits = property(lambda s: s[0])
    misses = property(lambda s: s[1])
    size = property(lambda s: s[2])
    traces = misses

    def __repr__(self):
        return f'CacheInfo(hits={self[0]}, misses={self[1]}, size={self[2]})'


def _leaf_sig(x):
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return (x.shape, x.dtype)
    if isinstance(x, (bool, int, float, complex)):
        return (type(x),)
    if getattr(x, '_is_tensor', False):
        return (x.shape, x.dtype)
    raise TypeError(f'jit: an argument of type {type(x).__name__} is neither an array nor a '
                    'number; pass it through static_argnums (if hashable) or close over it')


class _Entry:
    __slots__ = ('graph', 'fn', 'out_tree', 'closure', 'rng', 'writes', 'guards')

    def __init__(self, graph, fn, out_tree, closure, rng=(), writes=None):
        self.graph = graph
        self.fn = fn
        self.out_tree = out_tree
        self.closure = closure
        # the generators the program draws from through hidden key inputs (after the
        # arguments, before the closure), filled with fresh bits at every call
        self.rng = rng
        # in-place writes to Tensors (captured, or Tensor arguments): the program's last
        # outputs are their new values, written back after each call (`_functionalize`)
        self.writes = writes
        # where the function reaches the Tensors it captured (`chainrule.jit.guards`): one
        # replaced by another object means a new trace
        self.guards = None


class Jitted:
    """A jitted function (see `jit`)."""

    def __init__(self, fun, static_argnums, backend, optimize_graph, static_argnames=()):
        self.fun = fun
        self.static_argnums = static_argnums
        self.static_argnames = static_argnames
        self.backend = backend
        self.optimize = optimize_graph
        self._cache = {}
        # (shape, dtype) per array argument -> (fn, tree builder); one table per grad mode
        self._fast = ({}, {})
        self._hits = 0
        self._misses = 0
        self._signatures = []
        self.__name__ = f'jit({getattr(fun, "__name__", "fun")})'
        self.__doc__ = getattr(fun, '__doc__', None)
        self.__wrapped__ = fun

    def _split(self, args, kwargs):
        if self.static_argnums or self.static_argnames:
            statics, dyn, kwargs = _args.split_static(self.static_argnums, self.static_argnames,
                                                      args, kwargs)
        else:
            statics, dyn = (), args
        leaves, tree = tree_flatten((dyn, kwargs) if kwargs else dyn)
        return leaves, tree, statics, bool(kwargs)

    def _trace(self, leaves, tree, statics, has_kw, key, faced=None):
        t0 = time.perf_counter()

        def flat_fun(*xs):
            for x, leaf in zip(xs, leaves):
                if type(leaf) in (bool, int, float, complex):
                    x.weak = True       # a Python number stays weak, as it is in eager NumPy
            ins = xs
            if faced:       # a Tensor argument: the function is PyTorch code, it sees Tensors
                xs = [face(x) if is_tensor else x for x, is_tensor in zip(xs, faced)]
            dyn = tree_unflatten(tree, xs)
            kwargs = {}
            if has_kw:
                dyn, kwargs = dyn
            args, kwargs = _args.merge_static(statics, dyn, kwargs)
            with _staged.recording() as rec:
                out = self.fun(*args, **kwargs)
            if faced:
                out = tree_map(traced_out, out)
            out_leaves, out_tree = tree_flatten(out)
            # in-place writes to captured Tensors and Tensor arguments: extra outputs
            writes, values = _functionalize.collect(capturing_trace.get(), ins, xs, leaves)
            box.extend((out_tree, rec, writes))
            return out_leaves + values

        box = []
        # NumPy's generators cannot be staged: tracing must not consume them
        snapshot = _staged.rng_snapshot(self.fun)
        graph = trace_to_graph(flat_fun, [_aval_of_leaf(x) for x in leaves],
                               capture_tensors=True)
        _staged.check_rng_unchanged(snapshot, self.__name__)
        rec = box[1]
        if rec.tracers:     # chainrule's generators were drawn from: hidden key inputs
            graph = Graph(graph.constvars, graph.consts,
                          graph.invars + [t.var for t in rec.tracers], graph.eqns,
                          graph.outvars)
        # tracers of enclosing transforms that `fun` closed over become explicit inputs, so
        # those transforms see them
        graph, closure = lift_closure(graph)
        graph.in_tree, graph.out_tree = tree, box[0]
        if self.optimize:
            graph = optimize(graph)
        writes = box[2]
        if writes is not None:
            writes.finish(graph)
        self._misses += 1
        sig = _describe_key(key, leaves)
        if self._signatures:
            logger.info('%s: retracing (trace #%d) for %s; earlier signatures: %s',
                        self.__name__, self._misses, sig, '; '.join(self._signatures[-3:]))
        else:
            logger.debug('%s: tracing for %s', self.__name__, sig)
        self._signatures.append(sig)
        logger.debug('%s: traced and compiled in %.1f ms', self.__name__,
                     (time.perf_counter() - t0) * 1e3)
        entry = _Entry(graph, None, box[0], closure, tuple(rec.sources), writes)
        if closure or writes is not None:
            captured = [c for c in closure if getattr(c, '_is_tensor', False)]
            entry.guards = guards.find(self.fun, captured + (writes.captured if writes else []))
        return entry

    def _lookup(self, args, kwargs, count=True):
        leaves, tree, statics, has_kw = self._split(args, kwargs)
        # which arguments are Tensors: the function then sees them as Tensors (PyTorch's
        # method meanings), so the same arrays given as NumPy arrays are another trace
        faced = tensor_leaves(leaves)
        raw = leaves
        leaves = [x.data if getattr(x, '_is_tensor', False) and not x.requires_grad else x
                  for x in leaves]
        try:
            # grad mode is part of the signature: a trace made under no_grad bakes closed-over
            # parameters in as constants, which must not be reused when gradients are wanted
            key = (tree, tuple(map(_leaf_sig, leaves)), statics, _grad_enabled.get(), faced)
            entry = self._cache.get(key)
        except TypeError as e:
            if 'unhashable' in str(e):
                raise TypeError(f'{self.__name__}: static arguments must be hashable '
                                f'({e})') from None
            raise
        if entry is not None and (entry.closure and not _same_captures(entry) or
                                  entry.writes is not None and not entry.writes.same_types()):
            entry = None        # a captured Tensor's data changed shape or dtype: trace again
        if entry is not None and entry.guards is not None:
            moved = entry.guards.hold()
            if moved is not None:       # a captured Tensor was replaced: trace again
                logger.info('%s: retracing: %s is another object than the Tensor it was '
                            'when traced', self.__name__, moved)
                entry = None
        if entry is None:
            entry = self._trace(leaves, tree, statics, has_kw, key, faced)
            if not entry.closure or _captured_by_reference(entry.closure):
                self._cache[key] = entry
        elif count:
            self._hits += 1
        return entry, leaves, raw, faced

    def __call__(self, *args, **kwargs):
        # fast path: positional arguments made of lists, tuples and NumPy arrays only, a
        # signature seen before (no PyTreeDef, no per-leaf type dispatch: ~2 us, not ~35)
        if not kwargs and not self.static_argnums:
            fk = _fast_key(args)
            if fk is not None:
                fast = self._fast[_grad_enabled.get()].get(fk[0])
                if fast is not None:
                    self._hits += 1
                    return fast[1](fast[0](*fk[1]))
        entry, leaves, raw, faced = self._lookup(args, kwargs)
        arrays_out = False
        if entry.rng:
            leaves = leaves + _staged.fresh_keys(entry.rng)
        fn = entry.fn
        if not entry.closure and not any(isinstance(x, Tracer) for x in leaves):
            if fn is None:
                fn = entry.fn = compiled(entry.graph, self.backend)
            if not kwargs and not self.static_argnums and not entry.rng and \
                    entry.writes is None:
                fk = _fast_key(args)
                table = self._fast[_grad_enabled.get()]
                if fk is not None and fk[0] not in table:
                    table[fk[0]] = (fn, _tree_builder(entry.out_tree))
            outs = fn(*leaves)
            arrays_out = faced is not None
        elif entry.writes is None:
            outs = bind(call.jit_call_p, *leaves, *entry.closure, graph=entry.graph)
        else:
            outs = bind(call.jit_call_p, *entry.writes.inputs(leaves, entry.closure),
                        graph=entry.graph)
        w = entry.writes
        if w is not None:
            k = len(outs) - w.n
            w.apply(raw, leaves + list(entry.closure), outs[k:])
            outs = outs[:k]
        if arrays_out:      # given Tensors, the caller gets Tensors (PyTorch's method meanings)
            outs = [face(o, arrays=True) for o in outs]
        return tree_unflatten(entry.out_tree, outs)

    def graph(self, *args, **kwargs):
        """The optimised graph this function runs for these arguments."""
        return self._lookup(args, kwargs, count=False)[0].graph

    def source(self, *args, **kwargs):
        """The generated Python source this function runs for these arguments."""
        return compiled(self.graph(*args, **kwargs), self.backend).__source__

    def cache_info(self):
        """`CacheInfo(hits, misses, size)`; `misses` counts traces."""
        return CacheInfo(self._hits, self._misses, len(self._cache))

    def cache_clear(self):
        self._cache.clear()
        for table in self._fast:
            table.clear()
        self._hits = self._misses = 0
        self._signatures.clear()

    def __repr__(self):
        return f'<{self.__name__}>'


def _captured_by_reference(closure):
    """Whether every value the staged function closed over is a `Tensor` made outside the
    transforms (a module's parameter): such values are captured *by reference*, as
    `tf.function` captures variables -- the cached program takes the same Tensor objects as
    extra inputs on every call, so in-place updates (an optimizer's step) are seen, and
    `backward()` reaches them. Tracers of enclosing transforms differ from call to call, so a
    program closing over one is traced again each time."""
    return all(getattr(c, '_is_tensor', False) and not isinstance(c.data, Tracer)
               for c in closure)


def _same_captures(entry):
    """The captured Tensors still have the shapes and dtypes the program was traced for."""
    n = len(entry.closure)
    return all(c.shape == v.aval.shape and c.dtype == v.aval.dtype
               for c, v in zip(entry.closure, entry.graph.invars[-n:]))


def _fast_key(args):
    """`(key, leaves)` for arguments made only of lists, tuples and `np.ndarray`s (exact
    types), else None. The key is the pre-order sequence of node types and lengths and leaf
    shapes and dtypes, so equal keys mean the same `PyTreeDef` and the same leaf signatures;
    the leaves come in `tree_flatten`'s order. An explicit stack, no recursion."""
    key, leaves = [], []
    stack = [args]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is np.ndarray:
            leaves.append(x)
            key.append(x.shape)
            key.append(x.dtype)
        elif t is tuple or t is list:
            key.append((t, len(x)))
            stack.extend(x[::-1])
        else:
            return None
    return tuple(key), leaves


def _tree_builder(tree):
    """A function `outs -> pytree of structure tree`: for trees of tuples, lists, `None` and
    leaves, a generated expression such as `lambda o: ([(o[0], o[1])], o[2])` (no stack walk
    per call); for any other node type, `tree.unflatten`."""
    parts = []              # the pre-order nodes, rebuilt backwards as in PyTreeDef.unflatten
    n_leaves = 0
    for n in tree._nodes:
        if n is not None and n[0].type not in (tuple, list, type(None)) or \
                n is not None and n[0].name == 'namedtuple':
            return tree.unflatten
    for n in reversed(tree._nodes):
        if n is None:
            parts.append(None)
            continue
        nt, _, k = n
        children = parts[:-k - 1:-1] if k else []
        if k:
            del parts[-k:]
        if nt.type is type(None):
            parts.append('None')
        elif nt.type is list:
            parts.append(('[', children, ']'))
        else:
            parts.append(('(', children, ',)' if k == 1 else ')'))
    # leaves are numbered in pre-order: write the expression out front to back
    out = []
    stack = [parts[0]]
    while stack:
        x = stack.pop()
        if x is None:
            out.append(f'o[{n_leaves}]')
            n_leaves += 1
        elif isinstance(x, str):
            out.append(x)
        else:
            open_, children, close = x
            out.append(open_)
            seq = []
            for i, c in enumerate(children):
                if i:
                    seq.append(', ')
                seq.append(c)
            stack.append(close)
            stack.extend(reversed(seq))
    return eval('lambda o: ' + ''.join(out))     # noqa: S307 (source built above, no input)


def _describe_key(key, leaves):
    parts = []
    for x in leaves:
        if isinstance(x, (np.ndarray, np.generic, Tracer)):
            parts.append(str(ShapedArray(x.shape, x.dtype)))
        else:
            parts.append(type(x).__name__)
    s = f'({", ".join(parts)})'
    if key[2]:
        s += f' static {dict(key[2])}'
    return s


def jit(fun=None, *, static_argnums=(), static_argnames=(), backend='numpy', optimize=True):
    """Compile `fun`: trace it once per input signature and run generated NumPy code.

    Args:
        fun: a function of arrays (and pytrees of arrays) returning arrays or pytrees of them.
        static_argnums: positional arguments that are Python values, not arrays (sizes, flags,
            modes): each distinct value is traced separately, and code may branch on them.
        static_argnames: the same, by parameter name. Each completes the other through `fun`'s
            signature (as in JAX), so a static argument may be passed by position or keyword.
        backend: `'numpy'` (straight-line NumPy calls) or `'numba'` (fused elementwise loops
            when numba is installed, NumPy otherwise).
        optimize: run the graph passes (on by default; off shows the raw trace).

    Returns:
        A callable with `.source(*args)`, `.graph(*args)`, `.cache_info()`, `.cache_clear()`.
        It can be used as `@jit` or `@jit(static_argnums=...)`.

    Values `fun` closes over:
        - `Tensor`s made outside it (a module's parameters and buffers) are captured *by
          reference*: every operation on them is staged, and the compiled program reads them on
          each call -- an optimizer's in-place step or a BatchNorm's running statistics are seen
          by the next call (in grad mode or under `no_grad`), and `backward()` reaches them.
          Reading one as a Python value while tracing (`.item()`, `float()`, `.numpy()`) raises
          `ConcretizationError`. A capture whose shape or dtype changed, or that was replaced
          by another object where `fun` reaches it (`chainrule.jit.guards`), is traced again.
        - In-place changes of such Tensors (BatchNorm's running statistics, a counter, an
          optimizer's state), and of Tensor arguments, are staged and written back after every
          call, as they would happen eagerly (`chainrule._functionalize`).
        - NumPy arrays and Python numbers are constants of the program (as in `jax.jit`): what
          `fun` computes from them with NumPy is computed once, when it is traced. Pass values
          that change between calls as arguments (or keep them in Tensors).
    """
    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, static_argnames=static_argnames,
                             backend=backend, optimize=optimize)
    nums, names = _args.static_spec(fun, static_argnums, static_argnames)
    if backend not in ('numpy', 'numba'):
        raise ChainruleError(f"jit: backend must be 'numpy' or 'numba', got {backend!r}")
    return Jitted(fun, nums, backend, optimize, names)


def make_graph(fun, static_argnums=(), static_argnames=()):
    """A function returning the (unoptimised) graph `fun` stages for given arguments.

        >>> import numpy as np, chainrule as cr
        >>> print(cr.make_graph(lambda x: x * x)(np.ones(2)))
        { lambda ; a:f64[2]. let
            b:f64[2] = mul a a
          in (b) }

    Args:
        fun: the function to stage.
        static_argnums, static_argnames: as for `jit`.

    Returns:
        `make(*args) -> Graph`; the graph's `in_tree`/`out_tree` record the argument and result
        pytrees, and calling the graph on flat arrays evaluates it.
    """
    j = jit(fun, static_argnums=static_argnums, static_argnames=static_argnames,
            optimize=False)

    def make(*args, **kwargs):
        leaves, tree, statics, has_kw = j._split(args, kwargs)
        return j._trace(leaves, tree, statics, has_kw, (tree, (), statics),
                        tensor_leaves(leaves)).graph

    make.__name__ = f'make_graph({getattr(fun, "__name__", "fun")})'
    return make
