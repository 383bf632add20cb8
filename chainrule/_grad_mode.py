"""Grad mode: whether `Tensor` operations are recorded for `backward()`.

What you can do with it: `no_grad()`, `enable_grad()` and `set_grad_enabled(mode)` as context
managers or decorators, and `is_grad_enabled()`; all are re-exported by `chainrule.tensor` and
`chainrule`. The mode lives in a `contextvars.ContextVar`: `no_grad()` in one thread (or asyncio
task) does not affect another.
"""

import contextvars
import functools

from chainrule.core import _innermost
from chainrule.interpreters.reverse import no_grad_level as _no_grad_level

__all__ = ['no_grad', 'enable_grad', 'set_grad_enabled', 'is_grad_enabled']

_grad_enabled = contextvars.ContextVar('chainrule_grad_enabled', default=True)


def is_grad_enabled():
    return _grad_enabled.get()


class set_grad_enabled:
    """Set grad mode on or off: as a call (`cr.set_grad_enabled(False)` turns recording off
    until it is turned on again, as PyTorch's does), as a context manager (`with`: the mode
    before the call is restored on exit) or as a decorator (the mode applies while the function
    runs; decorating changes nothing).

    Grad mode off also hides the block's operations from the reverse-mode transforms active
    where it begins (`grad`, `vjp`, `jacrev` of a function holding a `no_grad()` block treat
    what it computes as constants, as torch.func's do); a transform begun inside the block
    differentiates as usual, and forward mode ignores grad mode."""

    _hides = True       # (False: the tape's switch only; see _tape_off)

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self._tokens = []
        # PyTorch: set_grad_enabled's constructor sets the mode; no_grad()'s, enable_grad()'s
        # and inference_mode()'s (subclasses) do not
        self._sets_now = type(self) is set_grad_enabled
        if self._sets_now:
            self._prev = (_grad_enabled.get(), _no_grad_level.get())
            _grad_enabled.set(self.mode)
            _no_grad_level.set(self._level())

    def _level(self):
        # which transforms the block's operations are hidden from: those up to this level
        if self.mode:
            return None
        if self._hides:
            tr = _innermost.get()
            return 0 if tr is None else tr.level
        return _no_grad_level.get()

    def __enter__(self):
        self._tokens.append((_grad_enabled.set(self.mode), _no_grad_level.set(self._level())))
        return self

    def __exit__(self, *exc):
        mode, level = self._tokens.pop()
        _no_grad_level.reset(level)
        _grad_enabled.reset(mode)
        if self._sets_now and not self._tokens:
            # PyTorch restores the mode from before the constructor (which set it already)
            _grad_enabled.set(self._prev[0])
            _no_grad_level.set(self._prev[1])
        return False

    def __call__(self, fn):
        if self._sets_now:          # as a decorator: undo the constructor's switch (PyTorch)
            _grad_enabled.set(self._prev[0])
            _no_grad_level.set(self._prev[1])

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)(self.mode) if type(self) is set_grad_enabled else type(self)():
                return fn(*args, **kwargs)
        return wrapper

    def __repr__(self):
        return f'{type(self).__name__}(mode={self.mode})'


class no_grad(set_grad_enabled):
    """Within `with cr.no_grad():` (or a function decorated `@cr.no_grad()`), no Tensor
    operation is recorded: results do not require grad, and nothing is saved."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turn recording back on inside a `no_grad` block."""

    def __init__(self):
        super().__init__(True)


class _tape_off(no_grad):
    """`no_grad()` for the tape only, for the library's own backward passes (`backward()`,
    `autograd.grad`, a checkpoint's re-run): a transform around them still differentiates
    through them (`cr.grad` of code that calls `backward()`)."""

    _hides = False
