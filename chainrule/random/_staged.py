"""Randomness at the `jit` boundary: nothing random is frozen at trace time.

`jit` traces a function once and replays the program. Random numbers drawn in Python while it
traces would be baked into the program as constants and replayed at every call. Two cases:

- chainrule's own eager generators (`cr.randn`, `cr.rand`, `cr.randint`, `cr.randperm`,
  `cr.normal`, `F.dropout`/`nn.Dropout`, `nn.init`; the global one that `cr.manual_seed` seeds,
  a `cr.Generator`, or a NumPy `Generator` handed to them as `rng=`) draw, while `jit` traces,
  through a hidden key input of the program -- one per generator, each draw a `fold_in` of it
  with the draw's number -- using `chainrule.random`. At every call `jit` fills those inputs
  with two fresh words from the generator itself, so the numbers change from call to call, and
  reseeding the generator makes the jitted run reproducible.
- NumPy's generators used directly (`np.random.normal`, a `np.random.Generator` or
  `RandomState` held by the function) cannot be staged: `jit` compares the state of NumPy's
  global generator, and of the generators reachable from the function (its closure, the
  globals it names, a bound method's object, a `functools.partial`'s arguments, and their
  attributes), before and after tracing, and raises `FrozenRandomnessError` naming the function
  when tracing consumed any of them.

`grad`, `vmap` and the other transforms run the function at every call, so they need neither.

The draw sites call `generator(np_generator, source)`: outside a `jit` trace it returns the
NumPy generator unchanged (one context-variable read); inside, a `StagedGenerator` with the
NumPy `Generator` methods that chainrule uses. `source` says where the generator comes from
at call time: a `cr.Generator` (its current `._np`), a NumPy `Generator` (itself), or a
function returning the current default generator (`nn.init.get_rng`), so that `manual_seed`,
which replaces the NumPy generator object, reaches a program traced before it.
"""

import contextlib
import contextvars
import ctypes
import functools
import itertools
import types

import numpy as np

from chainrule.core import ChainruleError, innermost_trace

__all__ = ['FrozenRandomnessError', 'generator', 'recording', 'fresh_keys', 'rng_snapshot',
           'check_rng_unchanged', 'RngStates', 'RandomnessError', 'VmapRandomness']


class FrozenRandomnessError(ChainruleError, RuntimeError):
    """Tracing a function for `jit` drew numbers from a NumPy random generator: the program
    would replay those numbers at every call."""


_recorder = contextvars.ContextVar('chainrule_rng_recorder', default=None)


class KeyRecorder:
    """The hidden key inputs of one `jit` trace: one per generator drawn from."""

    __slots__ = ('trace', 'sources', 'tracers', 'index', 'draws')

    def __init__(self, trace):
        self.trace = trace          # the staging trace of the jit being traced
        self.sources = []           # where each hidden key's bits come from at call time
        self.tracers = []           # the hidden key inputs, uint32 (2,)
        self.index = {}
        self.draws = 0

    def key(self, source):
        """A fresh key for one draw from `source`: `fold_in(hidden key, draw number)`."""
        from chainrule.interpreters.staging import ShapedArray
        from chainrule.random import fold_in
        i = self.index.get(id(source))
        if i is None:
            i = self.index[id(source)] = len(self.sources)
            self.sources.append(source)
            self.tracers.append(self.trace.new_arg(ShapedArray((2,), np.dtype(np.uint32))))
        self.draws += 1
        return fold_in(self.tracers[i], self.draws)


class recording:
    """Context manager for the body of a `jit` trace: chainrule's generators drawn from
    inside it draw through hidden key inputs (`KeyRecorder`), available as `.recorder`."""

    __slots__ = ('recorder', 'token')

    def __enter__(self):
        self.recorder = KeyRecorder(innermost_trace())
        self.token = _recorder.set(self.recorder)
        return self.recorder

    def __exit__(self, *exc):
        _recorder.reset(self.token)
        return False


def current_generator(source):
    """The NumPy generator `source` stands for now (see the module docstring)."""
    if isinstance(source, np.random.Generator):
        return source
    if callable(source):
        return source()
    return source._np


_loop_body = contextvars.ContextVar('chainrule_rng_loop_body', default=None)


class in_loop_body:
    """Context manager around the staging of a loop body (`lax.scan`, `lax.while_loop`,
    `lax.fori_loop`): the body is staged once and its program run at every iteration, so a
    draw from chainrule's eager generators there would repeat in every iteration; refused."""

    __slots__ = ('kind', 'token')

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        self.token = _loop_body.set(self.kind)

    def __exit__(self, *exc):
        _loop_body.reset(self.token)
        return False


def _refuse_in_loop_body():
    kind = _loop_body.get()
    if kind is not None:
        raise FrozenRandomnessError(
            f'a draw from chainrule\'s random generator (cr.randn, dropout, nn.init, ...) inside '
            f'the body of {kind}: the body is staged once, so the same numbers would come back '
            'at every iteration. Carry a key instead (chainrule.random: split it, or fold_in '
            'the iteration number) and draw with chainrule.random.normal/uniform/bernoulli.')


def fresh_keys(sources):
    """One key per source for a call of a program with hidden key inputs: two fresh words
    from each generator; inside another `jit` trace, staged keys of that trace instead (a
    jitted function called while another is traced)."""
    _refuse_in_loop_body()
    rec = _recorder.get()
    vm = _vmap_randomness.get()
    if vm is not None and vm.mode != 'same' and sources and \
            (rec is None or rec.trace.level < vm.trace.level):
        vm.refuse()
        return [_batched(vm.trace, current_generator(s).integers(
            0, 2 ** 32, size=(vm.trace.size, 2), dtype=np.uint32)) if rec is None else
            _batched(vm.trace, _split(rec.key(s), vm.trace.size)) for s in sources]
    if rec is not None:
        return [rec.key(s) for s in sources]
    return [current_generator(s).integers(0, 2 ** 32, size=2, dtype=np.uint32)
            for s in sources]


def _split(key, n):
    from chainrule.random import split
    return split(key, n)


def generator(g, source):
    """`g` (a NumPy Generator) outside a `jit` trace; a `StagedGenerator` drawing through a
    hidden key input for `source` inside one (and under `chainrule.func.vmap`, what its
    `randomness=` asks for)."""
    rec = _recorder.get()
    if rec is None and _loop_body.get() is None:
        watching = _watchers.get()
        if watching:
            for w in watching:
                w.see(g)
        vm = _vmap_randomness.get()
        return g if vm is None else vm.generator(g, None, source)
    _refuse_in_loop_body()
    vm = _vmap_randomness.get()
    if vm is not None:
        return vm.generator(g, rec, source)
    return StagedGenerator(rec, source)


# --- chainrule.func.vmap(randomness=...) ------------------------------------------------------
#
# PyTorch's torch.func.vmap says what a random draw inside the mapped function means: 'error'
# (the default) refuses it, 'same' makes one draw for the whole batch (what chainrule.vmap does),
# 'different' one draw per example. For 'different' the draw site gets a generator whose numbers
# carry the batch axis: a NumPy draw of (batch,) + shape outside jit, or, inside a jit trace,
# the staged draw on one key per example (split from the hidden key).

class RandomnessError(ChainruleError, RuntimeError):
    """A random draw inside `chainrule.func.vmap(..., randomness='error')`."""


_vmap_randomness = contextvars.ContextVar('chainrule_vmap_randomness', default=None)


class VmapRandomness:
    """The `randomness=` of the innermost `chainrule.func.vmap`, with its batching trace."""

    __slots__ = ('mode', 'trace', 'token')

    def __init__(self, mode, trace):
        self.mode, self.trace = mode, trace

    def __enter__(self):
        self.token = _vmap_randomness.set(self)

    def __exit__(self, *exc):
        _vmap_randomness.reset(self.token)
        return False

    def generator(self, g, rec, source):
        if self.mode == 'same' or (rec is not None and rec.trace.level > self.trace.level):
            # (a function jitted inside the vmap draws through its hidden keys, which its calls
            # fill per `fresh_keys` below)
            return g if rec is None else StagedGenerator(rec, source)
        self.refuse()
        if rec is None:
            return _PerExample(g, self.trace)
        return _StagedPerExample(rec, source, self.trace)

    def refuse(self):
        """Raise for randomness='error'."""
        if self.mode == 'error':
            raise RandomnessError(
                "a random draw (dropout, cr.randn, nn.init, ...) inside chainrule.func.vmap "
                "with randomness='error' (the default, as PyTorch's): pass randomness='same' "
                "(one draw shared by the batch) or 'different' (one per example), or draw "
                'outside vmap, or map over chainrule.random keys')


def _batched(trace, value):
    from chainrule.interpreters.batching import BatchTracer
    return BatchTracer(trace, value)


class _PerExample:
    """A NumPy generator's draws, one per example of a `vmap` batch."""

    __slots__ = ('_g', '_trace')

    def __init__(self, g, trace):
        self._g, self._trace = g, trace

    def _size(self, size, *params):
        return (self._trace.size,) + _size(size, *params)

    def random(self, size=None, dtype=np.float64):
        return _batched(self._trace, self._g.random(self._size(size), dtype))

    def standard_normal(self, size=None, dtype=np.float64):
        return _batched(self._trace, self._g.standard_normal(self._size(size), dtype))

    def uniform(self, low=0.0, high=1.0, size=None):
        return _batched(self._trace, self._g.uniform(low, high, self._size(size, low, high)))

    def normal(self, loc=0.0, scale=1.0, size=None):
        return _batched(self._trace, self._g.normal(loc, scale, self._size(size, loc, scale)))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _batched(self._trace, self._g.integers(low, high, self._size(size, low, high),
                                                      dtype, endpoint))

    def permutation(self, x):
        return _batched(self._trace, np.stack([self._g.permutation(x)
                                               for _ in range(self._trace.size)]))

    def __getattr__(self, name):
        raise RandomnessError(
            f"Generator.{name} is not available per example (chainrule.func.vmap with "
            "randomness='different'); draw with chainrule.random and mapped keys instead")


class _StagedPerExample:
    """`StagedGenerator` with one key per example of a `vmap` batch (inside a `jit` trace)."""

    __slots__ = ('_staged', '_trace')

    def __init__(self, recorder, source, trace):
        self._staged, self._trace = StagedGenerator(recorder, source), trace

    def __getattr__(self, name):
        method = getattr(self._staged, name)

        def per_example(*args, **kwargs):
            from chainrule.random import split
            keys = _batched(self._trace, split(self._staged._key(), self._trace.size))
            per = StagedGenerator.__new__(_FixedKey)
            per._key_value = keys
            return getattr(per, name)(*args, **kwargs)
        return per_example if callable(method) else method


# --- replaying a function's draws (gradient checkpointing) --------------------------------------
#
# A checkpointed function runs twice: forward, then again in the backward pass. If it draws from
# an eager generator (dropout), the re-run must draw the same numbers, or the gradient belongs to
# another mask than the value (PyTorch's checkpoint restores its generator's state likewise). An
# `RngStates` watches the first run: the state of every NumPy generator handed to a draw site,
# taken when it is first handed out, which is before its first draw. `replaying()` puts those
# states back for the re-run and afterwards restores the states the generators had reached, so
# the stream outside goes on as if the re-run had not happened.

_watchers = contextvars.ContextVar('chainrule_rng_watchers', default=())


class RngStates:
    """The states, at their first use, of the generators a function draws from."""

    __slots__ = ('states',)

    def __init__(self):
        self.states = {}

    def see(self, g):
        if id(g) not in self.states:
            self.states[id(g)] = (g, g.bit_generator.state)

    def watching(self):
        """Context manager: record the generators drawn from inside (nested watches all see
        every draw)."""
        return _Setting(_watchers, _watchers.get() + (self,))

    def rewind(self):
        """Put every recorded generator back to its recorded state (draws made only to look
        at a function, such as staging it, must not use up numbers)."""
        for g, state in self.states.values():
            g.bit_generator.state = state

    @contextlib.contextmanager
    def replaying(self):
        """Context manager: inside, each recorded generator starts from its recorded state;
        after, it is back where it was before."""
        now = [(g, g.bit_generator.state) for g, _ in self.states.values()]
        self.rewind()
        try:
            yield
        finally:
            for g, state in now:
                g.bit_generator.state = state


class _Setting:
    __slots__ = ('var', 'value', 'token')

    def __init__(self, var, value):
        self.var, self.value = var, value

    def __enter__(self):
        self.token = self.var.set(self.value)

    def __exit__(self, *exc):
        self.var.reset(self.token)
        return False


class StagedGenerator:
    """The NumPy `Generator` methods chainrule's draw sites use, staged with
    `chainrule.random` on keys from a `KeyRecorder`."""

    __slots__ = ('_rec', '_source')

    def __init__(self, recorder, source):
        self._rec = recorder
        self._source = source

    def _key(self):
        return self._rec.key(self._source)

    def random(self, size=None, dtype=np.float64):
        from chainrule.random import uniform
        return uniform(self._key(), _size(size), dtype)

    def standard_normal(self, size=None, dtype=np.float64):
        from chainrule.random import normal
        return normal(self._key(), _size(size), dtype)

    def uniform(self, low=0.0, high=1.0, size=None):
        from chainrule.random import uniform
        return uniform(self._key(), _size(size, low, high), np.float64, low, high)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * self.standard_normal(_size(size, loc, scale))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        from chainrule.random import randint
        if high is None:
            low, high = 0, low
        return randint(self._key(), _size(size, low, high), low,
                       high + 1 if endpoint else high, dtype)

    def permutation(self, x):
        from chainrule.random import permutation
        return permutation(self._key(), x)

    def __getattr__(self, name):
        raise FrozenRandomnessError(
            f'Generator.{name} is not available while jit traces (only random, '
            'standard_normal, uniform, normal, integers and permutation are staged): draw with '
            'chainrule.random and an explicit key instead')


def _size(size, *params):
    if size is None:
        return np.broadcast_shapes(*(np.shape(p) for p in params)) if params else ()
    return (size,) if isinstance(size, (int, np.integer)) else tuple(size)


# --- NumPy's generators: detect consumption during a trace ---------------------------------------

_MAX_ITEMS = 64     # entries looked at per container: a big list of data holds no generator
_RNG_TYPES = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)


def _reachable_generators(fun, depth=3):
    """[(description, generator)] for NumPy generators reachable from `fun`: its closure,
    the globals its code names, a bound method's object, a partial's arguments, and the
    attributes of those objects, `depth` levels deep (an explicit stack; modules, classes and
    functions of other modules are not entered)."""
    found, seen = [], set()
    stack = [(fun, getattr(fun, '__name__', 'the function'), 0)]
    while stack:
        obj, where, d = stack.pop()
        if id(obj) in seen or d > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, _RNG_TYPES):
            found.append((where, obj))
            continue
        if isinstance(obj, (types.ModuleType, type, str, bytes, int, float, complex, bool,
                            np.ndarray, np.generic)) or obj is None:
            continue
        children = []
        if isinstance(obj, functools.partial):
            children += [(obj.func, where)] + [(a, where) for a in obj.args] + \
                [(v, f'{where}.{k}') for k, v in obj.keywords.items()]
        elif isinstance(obj, types.MethodType):
            children += [(obj.__func__, where), (obj.__self__, where)]
        elif isinstance(obj, types.FunctionType):
            code = obj.__code__
            for name, cell in zip(code.co_freevars, obj.__closure__ or ()):
                try:
                    children.append((cell.cell_contents, name))
                except ValueError:          # an empty cell
                    pass
            g = obj.__globals__
            children += [(g[n], n) for n in code.co_names if n in g]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += [(v, where) for v in itertools.islice(obj, _MAX_ITEMS)]
        elif isinstance(obj, dict):
            children += [(v, f'{where}[{k!r}]')
                         for k, v in itertools.islice(obj.items(), _MAX_ITEMS)]
        else:
            try:
                attrs = vars(obj)
            except TypeError:
                attrs = {}
            children += [(v, f'{where}.{k}') for k, v in attrs.items()]
            if callable(obj) and not isinstance(obj, types.BuiltinFunctionType):
                fn = getattr(type(obj), 'forward', None) or getattr(type(obj), '__call__', None)
                if isinstance(fn, types.FunctionType):
                    children.append((fn, where))
        stack.extend((c, w, d + 1) for c, w in children)
    return found


def _state(g):
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    if isinstance(g, np.random.RandomState):
        return g.get_state(legacy=False)
    return g.state


def _same(a, b):
    """Equality of two generator states (nested dicts, tuples, arrays, numbers)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict):
            if not isinstance(y, dict) or x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, (list, tuple)):
            if not isinstance(y, (list, tuple)) or len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _global_state():
    """A fingerprint of NumPy's global generator (what `np.random.*` draws from): for its
    usual MT19937, the 624 words and the position of its C state, read in place (half a
    microsecond; `np.random.get_state()` builds a dict in hundreds of microseconds, which every
    `jit` trace would pay twice). Any draw moves the position or regenerates the words. Only a
    scalar `np.random.normal()` served from the legacy generator's cached second Gaussian
    escapes it."""
    bg = np.random.get_bit_generator()
    if type(bg) is np.random.MT19937:
        return bytes((ctypes.c_uint32 * 625).from_address(bg.ctypes.state_address))
    return bg.state


def rng_snapshot(fun):
    """The states of NumPy's global generator and the generators reachable from `fun`, as
    `[(description, read the state, state)]`."""
    snap = [("NumPy's global generator (np.random.*)", _global_state)]
    try:
        reachable = _reachable_generators(fun)
    except Exception:       # noqa: BLE001 - a diagnostic must never stop a jit from working
        reachable = []
    snap += [(f'the NumPy generator {where!r}', functools.partial(_state, g))
             for where, g in reachable]
    return [(what, read, read()) for what, read in snap]


def check_rng_unchanged(snapshot, name):
    """Raise `FrozenRandomnessError` if the trace consumed a generator of `snapshot`."""
    for what, read, before in snapshot:
        if not _same(before, read()):
            raise FrozenRandomnessError(
                f'{name}: tracing drew random numbers from {what}; jit would bake those '
                'numbers into the compiled program and replay them at every call. Inside '
                'jitted code draw with chainrule.random and a key argument (key = '
                'cr.random.key(0); cr.random.normal(key, shape)), or with chainrule\'s own '
                'generator (cr.randn, cr.rand, cr.randint, dropout), which jit feeds fresh '
                'bits at every call; or draw outside and pass the numbers in as arguments.')


class _FixedKey(StagedGenerator):
    """A `StagedGenerator` drawing on one given key (a batch of keys, per example)."""

    __slots__ = ('_key_value',)

    def _key(self):
        return self._key_value
