"""Reading and writing chainrule's files safely: the pieces `chainrule.io` and `chainrule.export`
share.

What this module lets you do:
- `atomic_write(path, write)`: `write(f)` fills a fresh temporary file next to `path`, which then
  replaces `path` in one rename. A failure midway (disk full, a crash, an exception in `write`)
  leaves the old file as it was; two threads or processes saving to one path each write their
  own temporary file (unique names), and the last rename wins with a complete file.
- `write_npz(f, arrays)`: a `.npz` archive (uncompressed zip of `.npy` entries, NumPy's format)
  written entry by entry.
- `NpzReader(data, kinds)`: the arrays of such an archive, each checked before anything is
  allocated for it: the member is stored uncompressed within the file's bytes, its `.npy`
  header has a plain dtype (never objects, so nothing is unpickled), and the shape the header
  declares is exactly what the member holds -- a 100-byte file declaring 2**40 elements is
  refused, not allocated.
- `parse_json(raw)`: JSON text, refusing documents nested deeper than `MAX_DEPTH` (Python's
  parser would otherwise recurse until RecursionError).

Every problem with a file's content raises `FormatProblem` with a sentence saying what is wrong;
the callers turn it into their documented error (`LoadError`, `GraphFormatError`) naming the
file.
"""

import io
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ['FormatProblem', 'atomic_write', 'write_npz', 'NpzReader', 'parse_json', 'json_depth',
           'MAX_DEPTH']

MAX_DEPTH = 256           # JSON nesting accepted (a saved state or graph is far shallower)

# the permissions a file made by open() would get: mkstemp's temporary files are private (0600),
# so the saved file is given these before it replaces the destination (the umask is read once,
# here, at import: setting it to read it is not thread-safe)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


class FormatProblem(Exception):
    """What is wrong with a file's content (internal: callers re-raise their own error)."""


# --- writing -----------------------------------------------------------------------------------

def atomic_write(path, write):
    """Run `write(f)` on a new temporary file in `path`'s directory, then rename it to `path`.

    Args:
        path: the destination.
        write: a function filling the binary file object it is given.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def write_npz(f, arrays):
    """Write `arrays` (name -> array) as an uncompressed `.npz` archive to the file `f`."""
    with zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + '.npy', 'w', force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)


# --- reading -----------------------------------------------------------------------------------

def parse_json(raw):
    """The JSON value in the bytes `raw` (UTF-8), nested at most `MAX_DEPTH` deep."""
    try:
        text = raw.decode('utf-8') if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as e:
        raise FormatProblem(f'its text is not UTF-8 ({e})') from None
    depth = 0
    in_str = escaped = False
    for ch in text:                      # brackets outside strings give the nesting depth
        if in_str:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in '[{':
            depth += 1
            if depth > MAX_DEPTH:
                raise FormatProblem(f'its JSON is nested more than {MAX_DEPTH} levels deep')
        elif ch in ']}':
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatProblem(f'it is not a complete JSON document (truncated or corrupted?): '
                            f'{e}') from None


def json_depth(value):
    """The nesting depth of a JSON-able value (lists and dicts), found without recursion."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (list, tuple)):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in v)
        elif isinstance(v, dict):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in v.values())
    return deepest


def _npy_header(member):
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise FormatProblem(f'unsupported .npy version {version}')
    except FormatProblem:
        raise
    except Exception as e:   # noqa: BLE001 - NumPy's header parser raises several types
        raise FormatProblem(f'a damaged .npy header ({type(e).__name__}: {e})') from None
    return shape, fortran, dtype


class NpzReader:
    """The `.npz` archive in the bytes `data`: `.files` lists its entries, `.read(name)` gives
    one array, checked before anything is allocated for it.

    Args:
        data: the archive's bytes.
        kinds: the dtype kinds accepted (`'biufc'`: numbers and booleans; add `'SU'` for text).

    Checks, per entry read: it is stored uncompressed within the archive's bytes, its `.npy`
    header has a plain dtype of `kinds` (never an object dtype: nothing is unpickled), and the
    number of bytes the header's shape and dtype declare is what the entry holds. Arrays
    returned are fresh and writable.
    Entries never read are never parsed.
    """

    def __init__(self, data, kinds='biufc'):
        self.kinds = kinds
        self.size = len(data)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except Exception as e:   # noqa: BLE001 - zipfile raises many types on damaged input
            raise FormatProblem(f'it is not a readable zip archive ({type(e).__name__}: {e})') \
                from None
        self.infos = {}
        for info in infos:
            name = info.filename
            if not name.endswith('.npy') or name[:-4] in self.infos:
                raise FormatProblem(f'unexpected or repeated entry {name!r:.60} in the archive')
            self.infos[name[:-4]] = info
        self.files = list(self.infos)

    def read(self, key):
        info = self.infos[key]
        name = info.filename
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatProblem(f'entry {name!r:.60} uses compression method '
                                f'{info.compress_type}; chainrule writes and reads uncompressed '
                                'archives only (so every size can be checked against the file)')
        if info.file_size != info.compress_size or info.compress_size > self.size:
            raise FormatProblem(f'entry {name!r:.60} declares {info.file_size} bytes, more '
                                'than the archive holds')
        try:
            with self.zip.open(info) as member:
                shape, fortran, dtype = _npy_header(member)
                return _read_array(member, info.file_size - member.tell(), shape, fortran,
                                   dtype, self.kinds, name)
        except FormatProblem:
            raise
        except Exception as e:   # noqa: BLE001 - CRC errors, truncation, bad flags, ...
            raise FormatProblem(f'entry {name!r:.60} is damaged ({type(e).__name__}: {e})') \
                from None

    def read_all(self):
        return {k: self.read(k) for k in self.files}


def _read_array(member, available, shape, fortran, dtype, kinds, name):
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None or \
            dtype.subdtype is not None:
        raise FormatProblem(f'entry {name!r:.60} has dtype {dtype}, which is not accepted '
                            f'(plain {"/".join(kinds)} dtypes only)')
    if not all(type(d) is int and d >= 0 for d in shape):
        raise FormatProblem(f'entry {name!r:.60} declares the invalid shape {shape!r:.60}')
    count = 1
    for d in shape:
        count *= d
    need = count * dtype.itemsize
    if need != available:
        raise FormatProblem(f'entry {name!r:.60} declares shape {shape} of {dtype} '
                            f'({need} bytes) but holds {available} bytes')
    buf = bytearray(need)
    view, got = memoryview(buf), 0
    while got < need:                    # in chunks: never a second copy of a large array
        chunk = member.read(min(need - got, 1 << 24))
        if not chunk:
            raise FormatProblem(f'entry {name!r:.60} is truncated')
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    flat = np.frombuffer(buf, dtype=dtype, count=count)
    if fortran:
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)

