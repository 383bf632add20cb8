"""SciPy's API, differentiable: `chainrule.scipy.special`, `.stats`, `.linalg`, `.signal`,
`.integrate` and `.optimize`, with SciPy's module layout, names, argument order and defaults.

What this package lets you do: differentiate scientific code written against SciPy by changing
one import, as with HIPS autograd (`import chainrule.scipy.stats as stats`,
`stats.norm.logpdf(x, loc, scale)` under `grad`, `vmap` and `jit`).

SciPy is an optional dependency (`pip install chainrule[scipy]`): the submodules are imported
only when first used, and a missing SciPy raises an ImportError that says what to install.
"""

import importlib

__all__ = ['special', 'stats', 'linalg', 'signal', 'integrate', 'optimize']

_SUBMODULES = frozenset(__all__)


def __getattr__(name):
    # `chainrule.scipy.stats` etc. are imported on first access, so `import chainrule.scipy`
    # needs no SciPy and loads nothing it does not use
    if name in _SUBMODULES:
        mod = importlib.import_module(f'{__name__}.{name}')
        globals()[name] = mod
        return mod
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)


def require_scipy(what):
    """SciPy's module `what` (e.g. `"special"`), or an ImportError naming the extra to install."""
    try:
        return importlib.import_module(f'scipy.{what}')
    except ImportError as e:
        raise ImportError(
            f'chainrule.scipy.{what} computes its values with SciPy, which is not installed: '
            'pip install chainrule[scipy] (or pip install scipy)') from e
