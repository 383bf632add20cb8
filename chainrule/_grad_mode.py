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
    """Context manager (and decorator) setting grad mode on or off for the enclosed code.

    Grad mode off also hides the block's operations from the reverse-mode transforms active
    where it begins (`grad`, `vjp`, `jacrev` of a function holding a `no_grad()` block treat
    what it computes as constants, as torch.func's do); a transform begun inside the block
    differentiates as usual, and forward mode ignores grad mode."""

    _hides = True       # (False: the tape's switch only; see _tape_off)

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self._tokens = []

    def __enter__(self):
        # which transforms the block's operations are hidden from: those up to this level
        if self.mode:
            level = None
        elif self._hides:
            tr = _innermost.get()
            level = 0 if tr is None else tr.level
        else:
            level = _no_grad_level.get()
        self._tokens.append((_grad_enabled.set(self.mode), _no_grad_level.set(level)))
        return self

    def __exit__(self, *exc):
        mode, level = self._tokens.pop()
        _no_grad_level.reset(level)
        _grad_enabled.reset(mode)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)(self.mode) if type(self) is set_grad_enabled else type(self)():
                return fn(*args, **kwargs)
        return wrapper


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
