"""Guards on the Tensors a jitted function closes over.

What this module lets you do: replace a captured Tensor by another object (`model.bn.running_mean
= cr.zeros(5)`, `state['count'] = cr.tensor(0)`) and have the jitted function use the new one.
A compiled program takes the Tensors it captured as inputs, by reference; without a check it
would go on reading (and writing) the old objects. So after tracing, `find` looks for each
captured Tensor where the function can reach it -- its closure cells, `self` of a bound method,
the globals it names, and from there attributes, list and tuple items and dict values (a
breadth-first walk, bounded) -- and records the path. Before each call `Guards.hold()` follows
the paths again: if one now leads to another object, the program is traced again (torch.compile
guards its captures the same way). A Tensor reached some other way (through a function's return
value, say) is not guarded; it is still read by reference.
"""

import itertools
import keyword
import types
from collections import deque

import numpy as np

__all__ = ['Guards', 'find']

_MAX_OBJECTS = 20_000
_MAX_DEPTH = 10
_SKIP = (type, types.ModuleType, str, bytes, int, float, complex, bool, type(None), np.ndarray,
         np.generic, np.dtype, types.BuiltinFunctionType)


class Guards:
    """Paths from a jitted function to the Tensors it captured."""

    __slots__ = ('fun', 'paths', '_check', '_tensors')

    def __init__(self, fun, paths):
        self.fun = fun
        self.paths = paths       # [(steps, tensor)]
        self._tensors = tuple(t for _, t in paths)
        self._check = _compiled(paths)

    def hold(self):
        """None when every path still leads to the Tensor it led to when traced, else the
        description of the first that does not."""
        if self._check(self.fun, self._tensors):
            return None
        for steps, t in self.paths:
            try:
                x = _follow(self.fun, steps)
            except (AttributeError, LookupError, TypeError, ValueError):
                x = None
            if x is not t:
                return _describe(steps)
        return None


def _follow(fun, steps):
    x = fun
    for kind, key in steps:
        if kind == 'attr':
            x = getattr(x, key)
        elif kind == 'item':
            x = x[key]
        elif kind == 'cell':
            x = x.__closure__[key].cell_contents
        elif kind == 'global':
            x = x.__globals__[key]
        else:                     # 'self'
            x = x.__self__
    return x


def _expr(steps):
    """The Python expression following `steps` from the function `f`."""
    e = 'f'
    for kind, key in steps:
        if kind == 'attr':
            plain = key.isidentifier() and not keyword.iskeyword(key) and \
                (not key.startswith('__') or key == '__wrapped__')
            e += f'.{key}' if plain else f'.__dict__[{key!r}]'
        elif kind == 'item':
            e += f'[{key!r}]'
        elif kind == 'cell':
            e += f'.__closure__[{key}].cell_contents'
        elif kind == 'global':
            e += f'.__globals__[{key!r}]'
        else:
            e += '.__self__'
    return e


def _compiled(paths):
    """`check(f, tensors)`: one generated expression following every path (a few attribute
    loads each, no loop), true when each leads to its Tensor."""
    terms = [f'{_expr(steps)} is ts[{i}]' for i, (steps, _) in enumerate(paths)]
    src = ('def check(f, ts):\n    try:\n        return ' + ' and '.join(terms) +
           '\n    except Exception:\n        return False\n')
    ns = {}
    exec(src, ns)        # noqa: S102 (source built above from attribute names and numbers)
    return ns['check']


def _describe(steps):
    return f'{_expr(steps)} (f: the jitted function)'


def _global_names(code):
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _children(x):
    """`(step, child)` pairs of object `x` for the walk."""
    if isinstance(x, (types.FunctionType, types.MethodType)):
        if isinstance(x, types.MethodType):     # (a method forwards the attributes read
            yield ('self', None), x.__self__    # below to its function)
        for i, c in enumerate(x.__closure__ or ()):
            try:
                yield ('cell', i), c.cell_contents
            except ValueError:      # an empty cell
                pass
        g = x.__globals__
        for name in sorted(_global_names(x.__code__)):
            if name in g:
                yield ('global', name), g[name]
        if isinstance(x, types.FunctionType) and '__wrapped__' in x.__dict__:
            yield ('attr', '__wrapped__'), x.__wrapped__      # functools.wraps
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield ('item', i), v
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if isinstance(k, (str, int)):
                yield ('item', k), v
        return
    d = getattr(x, '__dict__', None)
    if isinstance(d, dict):
        for k, v in d.items():
            yield ('attr', k), v


def find(fun, tensors):
    """`Guards` with a path from `fun` to each of `tensors` it can reach, or None."""
    want = {id(t): t for t in tensors}
    if not want:
        return None
    paths, seen = [], {id(fun)}
    queue = deque([(fun, ())])
    while queue and want and len(seen) < _MAX_OBJECTS:
        x, steps = queue.popleft()
        if len(steps) >= _MAX_DEPTH:
            continue
        try:
            kids = list(itertools.islice(_children(x), _MAX_OBJECTS))
        except Exception:        # noqa: BLE001 - an object whose attributes cannot be walked
            continue
        for step, child in kids:
            i = id(child)
            if i in seen:
                continue
            seen.add(i)
            path = steps + (step,)
            if i in want:
                paths.append((path, want.pop(i)))
                continue
            if getattr(child, '_is_tensor', False) or isinstance(child, _SKIP):
                continue
            queue.append((child, path))
    return Guards(fun, paths) if paths else None
