"""SciPy's API on chainrule: `chainrule.scipy.special`, `stats`, `linalg`, `signal`, `integrate`
and `optimize`, with SciPy's names, argument order and defaults, differentiable under every
transform. Submodules load on first use (`import chainrule.scipy as sp; sp.linalg.expm(a)`), so
importing this package costs nothing and SciPy itself, an optional dependency, is imported only
by the functions that need it.
"""

import importlib

__all__ = ['special', 'stats', 'linalg', 'signal', 'integrate', 'optimize']


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
