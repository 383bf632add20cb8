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
execute code; a damaged, truncated or foreign file raises `LoadError` saying so.
"""

import io as _io
import json
import os
import zipfile

import numpy as np

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
    from chainrule.tensor import Tensor

    def dec(s):
        if s is None or isinstance(s, (bool, str, int, float)):
            return s
        if isinstance(s, list) or not isinstance(s, dict) or len(s) not in (1, 2):
            raise LoadError('the structure entry is malformed')
        if 'array' in s:
            a = arrays(s['array'])
            return a[()] if s.get('scalar') else a
        (kind, v), = s.items()
        if kind == 'tensor':
            return Tensor(arrays(v))
        if kind == 'float':
            return float(v)
        if kind == 'dict':
            return {k: dec(x) for k, x in v}
        if kind == 'list':
            return [dec(x) for x in v]
        if kind == 'tuple':
            return tuple(dec(x) for x in v)
        raise LoadError(f'unknown entry kind {kind!r}')

    return dec(skel)


def save(path, state):
    """Write `state` to `path` (a file name, written as given, or a binary file object).

    Args:
        path: where to write; an existing file is replaced only once the new one is complete.
        state: nested dicts (keys str, int, float, bool or None), lists and tuples of NumPy
            arrays, `Tensor`s (their data), Python numbers, strings, booleans and `None`.
    """
    arrays = {}
    skel = _encode(state, arrays)
    meta = json.dumps({'format': _FORMAT, 'version': _VERSION, 'state': skel})
    entries = dict(arrays)
    entries[_META] = np.frombuffer(meta.encode('utf-8'), dtype=np.uint8)
    if hasattr(path, 'write'):
        np.savez(path, **entries)
        return
    path = os.fspath(path)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            np.savez(f, **entries)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path):
    """Read state written by `save`.

    Args:
        path: a file name or a binary file object.

    Returns:
        The state, with the types it was saved with (a `Tensor` comes back as a `Tensor`
        without history; NumPy arrays as arrays).

    Raises:
        LoadError: the file is damaged, truncated, or was not written by `save`.
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
        npz = np.load(_io.BytesIO(data), allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise LoadError('it holds a single array, not a chainrule .npz archive')
        with npz:
            if _META not in npz.files:
                raise LoadError(f'it has no {_META!r} entry (it is an .npz archive, but not '
                                'one written by chainrule.save)')
            meta = json.loads(bytes(npz[_META]).decode('utf-8'))
            if not isinstance(meta, dict) or meta.get('format') != _FORMAT:
                raise LoadError('its structure entry is not chainrule state')
            if meta.get('version', 0) > _VERSION:
                raise LoadError(f'it was written by a newer chainrule (format version '
                                f'{meta["version"]}; this one reads up to {_VERSION})')
            cache = {}

            def arrays(k):
                if k not in cache:
                    if k not in npz.files:
                        raise LoadError(f'the array entry {k!r} is missing')
                    cache[k] = npz[k]
                return cache[k]

            return _decode(meta['state'], arrays)
    except LoadError as e:
        raise LoadError(f'load: cannot read {name!r}: {e}') from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
            UnicodeDecodeError, zipfile.LargeZipFile) as e:
        raise LoadError(f'load: cannot read {name!r}: the file is damaged, truncated or not '
                        f'written by chainrule.save ({type(e).__name__}: {e})') from None
