"""Save and load model and optimizer state in a file that cannot run code when loaded.

What this module lets you do: `cr.save(path, state)` writes nested dicts, lists and tuples of
NumPy arrays, `Tensor`s, numbers, strings, booleans and `None` -- a `state_dict()` of a module or
an optimizer, or a dict holding both -- and `cr.load(path)` reads them back:

    >>> import os, tempfile, numpy as np, chainrule as cr
    >>> path = os.path.join(tempfile.mkdtemp(), 'ckpt.npz')
    >>> cr.save(path, {'model': {'w': np.eye(2, dtype=np.float32)}, 'epoch': 3})
    >>> back = cr.load(path)
    >>> back['epoch'], back['model']['w'].dtype
    (3, dtype('float32'))

The format is a NumPy `.npz` archive read with `allow_pickle=False`: each array is stored as a
`.npy` entry named by its path in the nest (`model/w`), and the nest itself (dict keys with
their types, lists, tuples, numbers, strings) as JSON text in the entry `__chainrule__`. Nothing
in the file is ever unpickled or evaluated, so loading a file from an untrusted source cannot
execute code; a damaged, truncated, crafted or foreign file raises `LoadError` naming the file
and what is wrong, and nothing is allocated for an array before its declared size has been
checked against the bytes the file holds. Saving writes a temporary file and renames it over
the destination, so a failed save leaves the previous file intact.
"""

import json
import os

import numpy as np

from chainrule import _format
from chainrule.core import ChainruleError

__all__ = ['save', 'load', 'LoadError']

_META = '__chainrule__'
_FORMAT = 'chainrule-state'
_VERSION = 1


class LoadError(ChainruleError, ValueError):
    """A file could not be read as chainrule saved state (damaged, truncated or foreign)."""


def _encode(state, arrays):
    """The JSON skeleton of `state`; arrays go into `arrays` under their path names."""
    from chainrule.tensor import Tensor

    def enc(x, path):
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, (int, float)) and not isinstance(x, np.generic):
            if isinstance(x, float) and not np.isfinite(x):
                return {'float': repr(x)}
            return x
        if isinstance(x, Tensor):
            return {'tensor': enc(np.asarray(x.data), path)['array']}
        if isinstance(x, (np.ndarray, np.generic)):
            a = np.asarray(x)
            if a.dtype.kind not in 'biufcSU':
                raise TypeError(f'save: the array at {path or "the top"} has dtype {a.dtype}, '
                                'which cannot be stored without pickling')
            name = path or 'array'
            while name in arrays or name == _META:
                name += '_'
            arrays[name] = a
            return {'array': name, **({'scalar': True} if isinstance(x, np.generic) else {})}
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise TypeError(f'save: dict keys must be str, int, float, bool or None; '
                                    f'got {type(k).__name__} at {path or "the top"}')
                items.append([k, enc(v, f'{path}/{k}' if path else str(k))])
            return {'dict': items}
        if isinstance(x, (list, tuple)):
            kind = 'list' if isinstance(x, list) else 'tuple'
            return {kind: [enc(v, f'{path}/{i}' if path else str(i)) for i, v in enumerate(x)]}
        raise TypeError(f'save: cannot store a {type(x).__name__} at {path or "the top"}; '
                        'state may hold dicts, lists, tuples, arrays, Tensors, numbers, strings '
                        'and None')

    return enc(state, '')


def _decode(skel, arrays):
    """The state described by the JSON skeleton `skel`; `arrays(name)` gives each array.

    Every node is checked against the vocabulary `_encode` writes, so a damaged or crafted
    skeleton raises `LoadError` instead of loading as something else (`{'list': 'abc'}` is not
    a list of three characters). Recursion is bounded: the JSON was refused if nested deeper
    than `_format.MAX_DEPTH`."""
    from chainrule.tensor import Tensor

    def dec(s):
        if s is None or isinstance(s, (bool, str, int, float)):
            return s
        if not isinstance(s, dict):
            raise LoadError(f'the structure entry has a malformed node {s!r:.60}')
        if 'array' in s:
            if not (set(s) == {'array'} or (set(s) == {'array', 'scalar'} and
                                            s['scalar'] is True)):
                raise LoadError(f'malformed array node {s!r:.60}')
            a = arrays(s['array'])
            if s.get('scalar'):
                if a.ndim != 0:
                    raise LoadError(f'the scalar {s["array"]!r:.40} is stored with shape '
                                    f'{a.shape}')
                return a[()]
            return a
        if len(s) != 1:
            raise LoadError(f'malformed node {s!r:.60}')
        (kind, v), = s.items()
        if kind == 'tensor':
            a = arrays(v)
            if a.dtype.kind not in 'biufc':
                raise LoadError(f'the tensor {v!r:.40} has dtype {a.dtype}')
            return Tensor(a)
        if kind == 'float':
            if v not in ('inf', '-inf', 'nan'):
                raise LoadError(f'malformed float {v!r:.40}')
            return float(v)
        if kind == 'dict':
            if not isinstance(v, list) or not all(
                    isinstance(p, list) and len(p) == 2 and
                    (p[0] is None or isinstance(p[0], (str, int, float, bool))) for p in v):
                raise LoadError(f'malformed dict node {v!r:.60}')
            out = {k: dec(x) for k, x in v}
            if len(out) != len(v):
                raise LoadError('a dict node repeats a key')
            return out
        if kind in ('list', 'tuple'):
            if not isinstance(v, list):
                raise LoadError(f'malformed {kind} node {v!r:.60}')
            items = [dec(x) for x in v]
            return items if kind == 'list' else tuple(items)
        raise LoadError(f'unknown entry kind {kind!r:.40}')

    return dec(skel)


def _is_path(x):
    return isinstance(x, (str, bytes, os.PathLike)) or hasattr(x, 'write')


def _order(path, state):
    """(path, state) from either `save(path, state)` or PyTorch's `save(state, path)`."""
    if _is_path(path):
        return path, state
    if _is_path(state):
        return state, path
    raise ChainruleError(
        f'save: neither argument is a path: got a {type(path).__name__} and a '
        f'{type(state).__name__}; call cr.save(path, state) with a file name (str or '
        'os.PathLike) or a binary file object')


def save(path, state):
    """Write `state` to `path` (a file name, written as given, or a binary file object).

    Both orders are accepted: `save(path, state)` and PyTorch's `save(state, path)`; the path
    is the argument that is a `str`, `bytes`, `os.PathLike` or has a `write` method (when both
    are, the first is the path: `save('a.npz', 'some text')`).

    Args:
        path: where to write; an existing file is replaced only once the new one is complete,
            in one rename, so a failure midway leaves it intact.
        state: nested dicts (keys str, int, float, bool or None), lists and tuples of NumPy
            arrays, `Tensor`s (their data), Python numbers, strings, booleans and `None`.

    Raises:
        TypeError: `state` holds something that cannot be stored without pickling.
        ChainruleError: the arguments are not a path and a state.
    """
    path, state = _order(path, state)
    arrays = {}
    skel = _encode(state, arrays)
    if _format.json_depth(skel) > _format.MAX_DEPTH - 2:
        raise ChainruleError(f'save: the state is nested too deeply to be read back (its '
                             f'structure may be about {(_format.MAX_DEPTH - 2) // 3} levels '
                             'deep); flatten it')
    meta = json.dumps({'format': _FORMAT, 'version': _VERSION, 'state': skel})
    entries = dict(arrays)
    entries[_META] = np.frombuffer(meta.encode('utf-8'), dtype=np.uint8)
    if hasattr(path, 'write'):
        _format.write_npz(path, entries)
        return
    _format.atomic_write(path, lambda f: _format.write_npz(f, entries))


def load(path):
    """Read state written by `save`.

    Args:
        path: a file name or a binary file object.

    Returns:
        The state, with the types it was saved with (a `Tensor` comes back as a `Tensor`
        without history; NumPy arrays as fresh, writable arrays).

    Raises:
        LoadError: the file is damaged, truncated, crafted, or was not written by `save`; the
            message names the file and what is wrong. Every array's declared size is checked
            against what the file holds before anything is allocated.
        FileNotFoundError: there is no such file.
    """
    name = getattr(path, 'name', path)
    if not hasattr(path, 'read'):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f'load: no such file: {path!r}')
        with open(path, 'rb') as f:
            data = f.read()
    else:
        data = path.read()
    try:
        if not data.startswith(b'PK'):
            if data.startswith(b'\x93NUMPY'):
                raise LoadError('it holds a single array, not a chainrule .npz archive')
            raise LoadError('it is not a zip archive (not a file written by chainrule.save)')
        npz = _format.NpzReader(data, kinds='biufcSU')
        if _META not in npz.files:
            raise LoadError(f'it has no {_META!r} entry (it is an .npz archive, but not '
                            'one written by chainrule.save)')
        raw = npz.read(_META)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise LoadError('its structure entry is not text')
        meta = _format.parse_json(raw.tobytes())
        if not isinstance(meta, dict) or meta.get('format') != _FORMAT:
            raise LoadError('its structure entry is not chainrule state')
        version = meta.get('version')
        if type(version) is not int or version < 1:
            raise LoadError(f'malformed format version {version!r:.20}')
        if version > _VERSION:
            raise LoadError(f'it was written by a newer chainrule (format version '
                            f'{version}; this one reads up to {_VERSION})')
        if set(meta) != {'format', 'version', 'state'}:
            raise LoadError(f'unexpected fields {sorted(set(meta) - {"format", "version"})}')
        used = set()

        def take(k):
            if not isinstance(k, str) or k == _META or k not in npz.files:
                raise LoadError(f'the array entry {k!r:.60} is missing')
            if k in used:
                raise LoadError(f'the array entry {k!r:.60} is used twice')
            used.add(k)
            return npz.read(k)

        return _decode(meta['state'], take)
    except LoadError as e:
        raise LoadError(f'load: cannot read {name!r}: {e}') from None
    except _format.FormatProblem as e:
        raise LoadError(f'load: cannot read {name!r}: {e}') from None
