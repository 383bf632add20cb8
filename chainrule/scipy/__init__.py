"""SciPy's API, differentiable (`chainrule.scipy.optimize`, ...), with SciPy's module layout.

(A minimal package file for the `optimize` glue: submodules are imported on first access, so
`import chainrule.scipy` needs no SciPy. The full `chainrule.scipy` package replaces it.)
"""

import importlib

__all__ = ['optimize']

_SUBMODULES = frozenset(__all__)


def __getattr__(name):
    if name in _SUBMODULES:
        mod = importlib.import_module(f'{__name__}.{name}')
        globals()[name] = mod
        return mod
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
