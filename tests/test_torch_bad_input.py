"""Bad input to the PyTorch face, against PyTorch 2.13 on the same input.

Driven by `tests/torch_api_table.py`: each case of each name (method and top-level function
spelling) is turned into bad input -- integer or boolean arrays where floats were, size-0
dimensions, a second argument of a non-broadcastable shape, float indices, an unknown keyword,
extra positional arguments -- and every name that takes `dim=` is called with dims out of range,
repeated, of the wrong type, on 0-d and empty inputs. For each:

- where PyTorch raises, chainrule must raise a chainrule error (`chainrule.core.ChainruleError`)
  whose message names the op: never a NumPy or Python error from inside, never a value;
- where PyTorch returns a value, chainrule must return the same value (shape, kind of dtype,
  numbers; chainrule's default float dtype is float64 where PyTorch's is float32).

`KNOWN` lists the deliberate differences, each with its reason. The rest of the file checks the
same rules on the parts outside the table: `cr.linalg`, `DataLoader`, the LR schedulers and
`F.interpolate`, and that the messages say what to do.
"""

import copy
import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import _torch_functions
from chainrule.core import ChainruleError, DTypeError, ShapeError
from torch_api_table import TABLE, I, N, WithNan

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for the torch API')
torch.set_num_threads(1)


# --- the bad inputs ---------------------------------------------------------------------------

def _make(v, rng, mode=''):
    if isinstance(v, N):
        a = np.asarray(v.make(rng, np.float64))
        if mode == 'int' and a.dtype.kind == 'f':
            a = np.round(a * 3).astype(np.int64)
        elif mode == 'bool' and a.dtype.kind in 'fi':
            a = a > 0
        elif mode == 'float_index' and a.dtype.kind == 'i':
            a = a.astype(np.float64)
        return np.asarray(a)
    if isinstance(v, (tuple, list)) and any(isinstance(x, N) for x in v):
        return type(v)(_make(x, rng, mode) for x in v)
    return v


def _emptied(v):
    """`v` with its dimensions of size 3 made size 0."""
    if isinstance(v, N) and not isinstance(v, WithNan) and getattr(v, 'shape', None) and \
            getattr(v, 'values', None) is None:
        w = copy.copy(v)
        w.shape = tuple(0 if s == 3 else s for s in v.shape)
        return w
    return v


def _arrays(case, mode='', args=None, kwargs=None):
    rng = np.random.default_rng(0)
    args = case.args if args is None else args
    kwargs = case.kwargs if kwargs is None else kwargs
    return ([_make(a, rng, mode) for a in args],
            {k: _make(v, rng, mode) for k, v in kwargs.items()})


def _mutations(case):
    """(label, args, kwargs) of the bad inputs made from one table case."""
    yield 'int_dtype', *_arrays(case, 'int')
    yield 'bool_dtype', *_arrays(case, 'bool')
    if any(isinstance(a, I) for a in list(case.args) + list(case.kwargs.values())):
        yield 'float_index', *_arrays(case, 'float_index')
    yield 'empty', *_arrays(case, '', [_emptied(a) for a in case.args],
                            {k: _emptied(v) for k, v in case.kwargs.items()})
    shaped = [i for i, a in enumerate(case.args) if isinstance(a, N) and getattr(a, 'shape', 0)]
    if len(shaped) >= 2:
        args = list(case.args)
        args[shaped[1]] = N(5)
        yield 'mismatch', *_arrays(case, '', args)
    if 'dim' in case.kwargs:
        yield 'dim_oob', *_arrays(case, '', None, {**case.kwargs, 'dim': 7})
    yield 'unknown_kw', *_arrays(case, '', None, {**case.kwargs, 'foo': 1})
    yield 'extra_arg', *_arrays(case, '', list(case.args) + [1, 2, 3, 4, 5, 6])


_X = np.random.default_rng(0).standard_normal((3, 4))
_DIMS = [('dim7', 7), ('dim-3', -3), ('dim_dup', (0, 0)), ('dim_dup_neg', (1, -1)),
         ('dim_float', 1.5), ('dim_str', 'a'), ('dim_tuple_oob', (0, 5)), ('dimNone', None),
         ('dimlist', [0, 1]), ('dimempty', ())]


def _dim_probes(name):
    """(label, args, kwargs) of bad dims, for a name PyTorch calls as `x.name(dim=1)`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            getattr(torch.tensor(_X), name)(dim=1)
    except Exception:
        return
    for label, d in _DIMS:
        yield label, [_X], {'dim': d}
    yield 'dim0_on_0d', [np.array(2.0)], {'dim': 0}
    yield 'dim1_on_0d', [np.array(2.0)], {'dim': 1}
    yield 'empty_dim0', [np.zeros((0, 4))], {'dim': 0}
    yield 'empty_dim1', [np.zeros((0, 4))], {'dim': 1}
    yield 'int_dim1', [np.arange(12).reshape(3, 4)], {'dim': 1}
    yield 'bool_dim1', [np.arange(12).reshape(3, 4) % 3 == 0], {'dim': 1}


# --- where chainrule differs from PyTorch on purpose ----------------------------------------------

_LENIENT_DIM = 'dim=None (or a list) means every dimension, as NumPy reads it; PyTorch refuses'
_INT_SCALE = ('a float alpha/beta with integer tensors: chainrule computes in floating point '
              '(NumPy promotion); PyTorch refuses it or keeps int64')
KNOWN = {
    **{(n, 'dimNone'): _LENIENT_DIM for n in ('max', 'min', 'median', 'nanmedian', 'prod',
                                              'logsumexp', 'squeeze')},
    ('prod', 'dimlist'): _LENIENT_DIM, ('prod', 'dimempty'): _LENIENT_DIM,
    ('aminmax', 'dimlist'): _LENIENT_DIM, ('aminmax', 'dimempty'): _LENIENT_DIM,
    ('logsumexp', 'dimempty'): "PyTorch fails in its own out= check; chainrule reduces all",
    **{(n, 'int_dtype'): _INT_SCALE for n in ('add', 'sub', 'addr', 'addbmm', 'addcmul',
                                              'addmm', 'addmv', 'baddbmm')},
    ('add', 'bool_dtype'): _INT_SCALE, ('addr', 'bool_dtype'): _INT_SCALE,
    **{('unique_consecutive', m): 'unique_consecutive(dim=) is not implemented (a clear '
                                  'ChainruleError says to flatten first)'
       for m in ('empty_dim0', 'int_dim1', 'bool_dim1')},
    ('div', 'bool_dtype'): 'rounding modes of bools: PyTorch has no kernel, chainrule computes',
    ('floor_divide', 'int_dtype'): 'chainrule floors x / y, PyTorch (like Python) rounds '
                                   'x - fmod(x, y): they differ where x / y rounds to an integer',
    ('heaviside', 'int_dtype'): 'the result is float64 (NumPy), PyTorch keeps the input dtype',
    ('heaviside', 'bool_dtype'): 'the result is float64 (NumPy), PyTorch keeps the input dtype',
    ('matrix_power', 'int_dtype'): 'computed (exactly) in float64, PyTorch keeps int64',
    ('matrix_power', 'bool_dtype'): 'computed in float64, PyTorch keeps bool for n <= 1',
    ('scatter_reduce', 'int_dtype'): "the mean of integers is float64, PyTorch's int64",
    ('round', 'int_dtype'): 'round(decimals=) of integers: PyTorch has no kernel; chainrule '
                            'returns them unchanged',
    ('pow', 'int_dtype'): 'integers to negative integer powers: NumPy refuses, so chainrule '
                          'raises ArgumentError (PyTorch returns 0 or +-1)',
    ('unique', 'empty_dim1'): 'PyTorch refuses unique over a dim when another dim has size 0; '
                              'chainrule returns the empty result',
    ('index_add', 'empty'): 'an index into a size-0 dim: chainrule raises IndexOutOfRangeError, '
                            'PyTorch returns the empty input',
    **{(n, 'extra_arg'): 'PyTorch reads the extra ints as more split indices; chainrule '
                         'takes one list' for n in ('hsplit', 'vsplit', 'dsplit')},
    ('reshape', 'extra_arg'): 'reshape is a hot-path method of Tensor, left unguarded',
}
# ties: the index PyTorch returns among equal values is its own choice
_TIE_INDICES = {'kthvalue', 'topk', 'sort', 'argsort', 'median', 'nanmedian', 'mode', 'min',
                'max', 'cummax', 'cummin', 'argmax', 'argmin', 'msort'}


# --- running both ---------------------------------------------------------------------------------

def _lib_value(lib, v):
    if isinstance(v, np.ndarray):
        return torch.tensor(v) if lib is torch else cr.tensor(v)
    if isinstance(v, (tuple, list)) and any(isinstance(x, np.ndarray) for x in v):
        return type(v)(_lib_value(lib, x) for x in v)
    return v


def _flat(r):
    if isinstance(r, torch.Tensor):
        return [r.detach().numpy()]
    if isinstance(r, cr.Tensor):
        return [np.asarray(r.data)]
    if isinstance(r, (tuple, list)):
        return [a for x in r for a in _flat(x)]
    return [np.asarray(r)]


def _run(lib, name, args, kwargs, form, call):
    args = [_lib_value(lib, a) for a in args]
    kwargs = {k: _lib_value(lib, v) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if form == 'function':
            return call(lib, *args, **kwargs) if call else getattr(lib, name)(*args, **kwargs)
        return getattr(args[0], name)(*args[1:], **kwargs)


def _differ(name, ours, ref, label):
    a, b = _flat(ours), _flat(ref)
    if name in _TIE_INDICES and label.endswith(('dtype', 'dim1')):
        a, b = a[:1], b[:1]
    if len(a) != len(b):
        return f'{len(a)} results, PyTorch {len(b)}'
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return f'shape {x.shape}, PyTorch {y.shape}'
        if x.dtype.kind != y.dtype.kind and not (x.dtype.kind in 'fc' and y.dtype.kind in 'fc'):
            return f'dtype {x.dtype}, PyTorch {y.dtype}'
        if not np.allclose(x.astype(np.complex128), y.astype(np.complex128), rtol=1e-5,
                           atol=1e-6, equal_nan=True):
            return f'values {x.tolist()}, PyTorch {y.tolist()}'
    return None


def verdict(name, args, kwargs, form='method', call=None, label=''):
    """None when chainrule does what PyTorch does, else what differs."""
    try:
        ref, t_err = _run(torch, name, args, kwargs, form, call), None
    except Exception as e:          # noqa: BLE001 (PyTorch raises many kinds)
        ref, t_err = None, e
    try:
        ours, err = _run(cr, name, args, kwargs, form, call), None
    except Exception as e:          # noqa: BLE001
        ours, err = None, e
    if err is not None and not isinstance(err, ChainruleError):
        return f'{type(err).__name__} (not a chainrule error): {err}'
    if err is not None and t_err is None:
        return f'raises {type(err).__name__}: {err}; PyTorch returns a value'
    if err is not None and name.split('.')[-1] not in str(err):
        return f'the message does not name {name}: {err}'
    if err is None and t_err is not None:
        return f'returns a value; PyTorch raises {type(t_err).__name__}: {t_err}'
    return None if err is not None else _differ(name, ours, ref, label)


def _names():
    return sorted(n for n in TABLE if TABLE[n] and n != 'real' and (
        n in _torch_functions.METHOD_FUNCTIONS or hasattr(cr.Tensor, n)))


@pytest.mark.parametrize('name', _names())
def test_bad_input_does_what_torch_does(name):
    failures = []
    for i, case in enumerate(TABLE[name]):
        for label, args, kwargs in _mutations(case):
            if (name, label) in KNOWN:
                continue
            forms = ['method'] if case.method else []
            if name in _torch_functions.METHOD_FUNCTIONS and (case.call or hasattr(torch, name)):
                forms.append('function')
            for form in forms:
                v = verdict(name, args, kwargs, form, case.call if form == 'function' else None,
                            label)
                if v:
                    failures.append(f'{name} case {i} {label} ({form}): {v}')
    for label, args, kwargs in _dim_probes(name):
        if (name, label) not in KNOWN:
            v = verdict(name, args, kwargs, label=label)
            if v:
                failures.append(f'{name} {label} {kwargs}: {v}')
    assert not failures, '\n'.join(failures)


def test_known_differences_are_still_differences():
    """Each entry of KNOWN still differs from PyTorch (a fixed one must leave the list)."""
    stale = []
    for (name, label), _ in KNOWN.items():
        probes = [(lab, a, k) for case in TABLE.get(name, ()) for lab, a, k in _mutations(case)]
        probes += list(_dim_probes(name))
        if not any(verdict(name, a, k, label=lab) for lab, a, k in probes if lab == label):
            stale.append((name, label))
    assert not stale, f'no longer different from PyTorch: {stale}'


# --- PyTorch's keyword names -------------------------------------------------------------------

def _torch_keywords(name):
    """The parameter names after `self` in PyTorch's docstring signature of `Tensor.name`."""
    import re
    doc = getattr(torch.Tensor, name).__doc__ or ''
    m = re.match(r'\s*' + re.escape(name) + r'\((.*?)\)\s*->', doc)
    if not m:
        return None
    return [p.strip().split('=')[0].strip() for p in m.group(1).split(',')
            if p.strip() not in ('*', '')]


_LENIENT_KEYWORDS = {
    'max': 'max(dim=<a Tensor>) is the elementwise maximum (PyTorch wants other=)',
    'min': 'min(dim=<a Tensor>) is the elementwise minimum (PyTorch wants other=)',
    'tensor_split': "indices_or_sections= is accepted (PyTorch's docstring name, which "
                    'PyTorch itself refuses)',
}


@pytest.mark.parametrize('name', sorted(
    n for n in TABLE if hasattr(torch.Tensor, n) and n not in _LENIENT_KEYWORDS and
    n != 'real' and _torch_keywords(n) and any(len(c.args) > 1 for c in TABLE[n])))
def test_torch_keyword_names(name):
    """Every positional argument of the table's cases passed by PyTorch's keyword name
    (`x.pow(exponent=2)`, `cr.pow(input=x, exponent=2)`): PyTorch's result, or both refuse.
    (The names whose PyTorch docstring gives no signature are not checked here.)"""
    params = _torch_keywords(name)
    failures = []
    for i, case in enumerate(TABLE[name]):
        if not case.method or len(case.args) < 2 or len(case.args) - 1 > len(params):
            continue
        args, kwargs = _arrays(case)
        kw = {**kwargs, **dict(zip(params, args[1:]))}
        v = verdict(name, args[:1], kw, 'method')
        if v:
            failures.append(f'x.{name}({", ".join(kw)}=...): {v}')
        if name in _torch_functions.METHOD_FUNCTIONS and case.call is None:
            v = verdict(name, [], {'input': args[0], **kw}, 'function')
            if v:
                failures.append(f'cr.{name}(input=, {", ".join(kw)}=...): {v}')
    assert not failures, '\n'.join(failures)


# --- the messages name the op, the argument, the shapes and the fix -------------------------------

@pytest.mark.parametrize('call,words', [
    (lambda: cr.ones(3, 4).add(cr.ones(5)), ['add', '(3, 4)', '(5,)', 'broadcast']),
    (lambda: cr.ones(3, 4).addcdiv(cr.ones(5), cr.ones(4)),
     ['addcdiv', 'tensor1', '(5,)', 'broadcast']),
    (lambda: cr.ones(3, 4).sum(dim=(0, 0)), ['sum', '(0, 0)', '(3, 4)', 'twice', 'once']),
    (lambda: cr.ones(3, 4).sum(dim=1.5), ['sum', 'dim', '1.5', 'int']),
    (lambda: cr.ones(3, 4).softmax(dim=2), ['softmax', 'dim 2', '(3, 4)', '[-2, 1]']),
    (lambda: cr.arange(6).mean(), ['mean', 'int64', 'floating', '.double()']),
    (lambda: cr.ones(3, 4).xlogy(1, 2, 3), ['xlogy', '4 were given', 'xlogy(input, other)']),
    (lambda: cr.ones(3, 4).sum(foo=1), ['sum', "'foo'", 'signature']),
    (lambda: cr.ones(3, 4).gather(1, cr.tensor([[0.5]])), ['gather', 'index', 'float64',
                                                           '.long()']),
    (lambda: cr.exp([1.0, 2.0]), ['exp', 'list', 'cr.tensor']),
    (lambda: cr.exp(cr.ones(2), out=cr.ones(2)), ['exp', 'out=', 'assign the result']),
    (lambda: cr.tensor([[1.0, 2.0], [2.0, 4.0]]).inverse(), ['inverse', 'ingular', '(2, 2)',
                                                             'pinv']),
])
def test_messages_name_op_argument_shapes_and_fix(call, words):
    with pytest.raises(ChainruleError) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize('name', sorted(n for n in _torch_functions.METHOD_FUNCTIONS
                                        if not n.endswith('_') and TABLE.get(n)))
def test_out_is_refused_by_every_function(name):
    """PyTorch writes into `out=`; chainrule does not, and says to assign the result."""
    case = TABLE[name][0]
    args, kwargs = _arrays(case)
    args = [_lib_value(cr, a) for a in args]
    fn = (lambda *a, **k: case.call(cr, *a, **k)) if case.call else getattr(cr, name)
    with pytest.raises(cr.ArgumentError, match='out= is not supported.*assign'):
        fn(*args, out=cr.zeros(1), **kwargs)


# --- cr.linalg ------------------------------------------------------------------------------------

_SING = np.array([[1.0, 2.0], [2.0, 4.0]])


@pytest.mark.parametrize('name,args', [
    ('inv', (_SING,)), ('solve', (_SING, np.ones(2))), ('cholesky', (np.array([[1., 2], [2, 1]]),)),
    ('matrix_power', (_SING, -1)), ('inv', (np.ones((2, 3)),)), ('det', (np.ones((2, 3)),)),
    ('eigh', (np.ones((2, 3)),)), ('svd', (np.ones(3),)), ('qr', (np.ones(3),)),
    ('slogdet', (np.ones((2, 3)),)), ('lstsq', (np.ones((3, 2)), np.ones(4))),
    ('solve', (np.eye(2), np.ones(3))), ('inv', (np.array([[1, 2], [3, 4]]),)),
    ('det', (np.array([[1, 2], [3, 4]]),)), ('vector_norm', (np.ones(3), 2, 5)),
    ('matrix_norm', (np.ones(3),)), ('cross', (np.ones((2, 3)), np.ones((2, 4)))),
    ('inv', (np.zeros((0, 0)),)), ('det', (np.zeros((0, 0)),)), ('cond', (np.ones(3),)),
])
def test_linalg_bad_input_does_what_torch_does(name, args):
    def run(lib):
        a = [(cr.tensor(x) if lib is cr else torch.tensor(x)) if isinstance(x, np.ndarray)
             else x for x in args]
        return getattr(lib.linalg, name)(*a)
    try:
        ref, t_err = run(torch), None
    except Exception as e:          # noqa: BLE001
        ref, t_err = None, e
    if t_err is not None:
        with pytest.raises(ChainruleError, match=f'linalg.{name}|{name}'):
            run(cr)
    else:
        assert _differ(name, run(cr), ref, '') is None


def test_singular_matrix_is_a_linalg_error_never_garbage():
    for f in (lambda a: cr.linalg.inv(a), lambda a: a.inverse(),
              lambda a: cr.linalg.solve(a, cr.ones(2)), lambda a: cr.inverse(a)):
        with pytest.raises(cr.linalg.LinAlgError, match='ingular') as info:
            f(cr.tensor(_SING))
        assert isinstance(info.value, np.linalg.LinAlgError)     # NumPy's class too
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.inv(torch.tensor(_SING))


# --- DataLoader, schedulers, interpolate ----------------------------------------------------------

def _both(ours, theirs):
    """None when chainrule does what PyTorch does (raise: a chainrule error), else what."""
    try:
        ref, t_err = theirs(), None
    except Exception as e:          # noqa: BLE001
        ref, t_err = None, e
    try:
        got, err = ours(), None
    except Exception as e:          # noqa: BLE001
        got, err = None, e
    if err is not None and not isinstance(err, ChainruleError):
        return f'{type(err).__name__} (not a chainrule error): {err}'
    if (err is None) != (t_err is None):
        return f'chainrule: {err or got!r}; PyTorch: {t_err or ref!r}'
    if err is None:
        return _differ('', got, ref, '')
    return None


def _loader_cases():
    import torch.utils.data as td
    ours = cr.utils.data.TensorDataset(cr.tensor(np.arange(10.)))
    theirs = td.TensorDataset(torch.tensor(np.arange(10.)))
    for kw in [dict(batch_size=0), dict(batch_size=-1), dict(batch_size=2.5),
               dict(batch_size='a'), dict(batch_size=None), dict(batch_size=3),
               dict(shuffle=True, sampler=[0, 1]), dict(batch_sampler=[[0, 1]], batch_size=2),
               dict(batch_sampler=[[0, 1]], drop_last=True), dict(num_workers=-1),
               dict(drop_last='x'), dict(sampler=[0, 20]), dict(sampler=[3, 1], batch_size=2)]:
        yield (f'DataLoader {kw}', lambda kw=kw: list(cr.utils.data.DataLoader(ours, **kw)),
               lambda kw=kw: list(td.DataLoader(theirs, **kw)))
    yield ('DataLoader(list of numbers)',
           lambda: list(cr.utils.data.DataLoader([1, 2, 3], batch_size=2)),
           lambda: list(td.DataLoader([1, 2, 3], batch_size=2)))
    yield ('TensorDataset index', lambda: ours[20], lambda: theirs[20])


def _scheduler(lib, name, *a, **k):
    if lib is cr:
        p = cr.tensor(np.ones(2), requires_grad=True)
        return getattr(cr.optim.lr_scheduler, name)(cr.optim.SGD([p], lr=0.1), *a, **k)
    p = torch.ones(2, requires_grad=True)
    return getattr(torch.optim.lr_scheduler, name)(torch.optim.SGD([p], lr=0.1), *a, **k)


def _steps(s):
    for _ in range(3):
        s.step()
    return s.get_last_lr()


def _scheduler_cases():
    for name, a, k in [('CosineAnnealingLR', (0,), {}), ('CosineAnnealingLR', (-1,), {}),
                       ('StepLR', (0,), {}), ('StepLR', (2,), dict(gamma=-1)),
                       ('LambdaLR', ([lambda e: 1, lambda e: 1],), {}),
                       ('OneCycleLR', (1.0,), {}), ('OneCycleLR', (1.0,), dict(total_steps=0)),
                       ('OneCycleLR', (1.0,), dict(total_steps=2)),
                       ('CyclicLR', (0.01, 0.1), dict(step_size_up=0)),
                       ('CosineAnnealingWarmRestarts', (0,), {}),
                       ('CosineAnnealingWarmRestarts', (2,), dict(T_mult=0)),
                       ('LinearLR', (), dict(start_factor=0)),
                       ('LinearLR', (), dict(start_factor=2.0)),
                       ('LinearLR', (), dict(total_iters=0)),
                       ('ConstantLR', (), dict(factor=2.0)),
                       ('PolynomialLR', (), dict(total_iters=0)),
                       ('SequentialLR', ([],), dict(milestones=[]))]:
        yield (f'{name}{a}{k}', lambda n=name, a=a, k=k: _steps(_scheduler(cr, n, *a, **k)),
               lambda n=name, a=a, k=k: _steps(_scheduler(torch, n, *a, **k)))
    for k in [dict(mode='x'), dict(factor=1.0)]:
        yield (f'ReduceLROnPlateau {k}', lambda k=k: _scheduler(cr, 'ReduceLROnPlateau', **k),
               lambda k=k: _scheduler(torch, 'ReduceLROnPlateau', **k))


def _interpolate_cases():
    import torch.nn.functional as TF
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    for kw in [dict(size=0), dict(size=-1), dict(scale_factor=0), dict(scale_factor=-2.0),
               dict(size=(2,)), dict(size=(2, 2, 2)), dict(), dict(size=2, scale_factor=2),
               dict(size=2, mode='linear'), dict(size=2, mode='nearest', align_corners=True),
               dict(size=2.5), dict(scale_factor=(2, 2, 2)), dict(size=(3, 3), mode='trilinear'),
               dict(size=3), dict(scale_factor=1.5, mode='bilinear')]:
        yield (f'interpolate {kw}', lambda kw=kw: F.interpolate(cr.tensor(x), **kw),
               lambda kw=kw: TF.interpolate(torch.tensor(x), **kw))


@pytest.mark.parametrize('label,ours,theirs', [
    pytest.param(*c, id=c[0]) for c in [*_loader_cases(), *_scheduler_cases(),
                                        *_interpolate_cases()]])
def test_library_bad_input_does_what_torch_does(label, ours, theirs):
    assert _both(ours, theirs) is None, _both(ours, theirs)


def _T(lib, *shape):
    return torch.ones(*shape, dtype=torch.float64) if lib is torch else cr.ones(*shape)


# factories, joins, indexing and conversions outside the table: (label, f(lib))
_OTHER = {
    'zeros(-1)': lambda L: L.zeros(-1), 'ones((2, -3))': lambda L: L.ones((2, -3)),
    'full((-1,), 1.0)': lambda L: L.full((-1,), 1.0), 'eye(-1)': lambda L: L.eye(-1),
    'arange(0, 10, 0)': lambda L: L.arange(0, 10, 0), 'arange(10, 0)': lambda L: L.arange(10, 0),
    'arange(10, 0, -2)': lambda L: L.arange(10, 0, -2),
    'linspace(0, 1, -1)': lambda L: L.linspace(0, 1, -1), 'randn(-2)': lambda L: L.randn(-2),
    'rand(2.5)': lambda L: L.rand(2.5), 'randint(5, 0, (3,))': lambda L: L.randint(5, 0, (3,)),
    'cat mismatch': lambda L: L.cat([_T(L, 2, 3), _T(L, 2, 4)]),
    'cat dim 2': lambda L: L.cat([_T(L, 2, 3), _T(L, 2, 3)], dim=2), 'cat []': lambda L: L.cat([]),
    'cat(a Tensor)': lambda L: L.cat(_T(L, 2, 3)), 'cat 0-d': lambda L: L.cat([_T(L), _T(L)]),
    'stack mismatch': lambda L: L.stack([_T(L, 2, 3), _T(L, 3, 2)]),
    'stack []': lambda L: L.stack([]),
    'stack dim 3': lambda L: L.stack([_T(L, 2), _T(L, 2)], dim=3),
    'einsum mismatch': lambda L: L.einsum('ij,jk->ik', _T(L, 2, 3), _T(L, 4, 2)),
    'einsum one operand short': lambda L: L.einsum('ij,jk->ik', _T(L, 2, 3)),
    'where float condition': lambda L: L.where(_T(L, 3), _T(L, 3), _T(L, 3)),
    'where mismatch': lambda L: L.where(_T(L, 3) > 0, _T(L, 3), _T(L, 4)),
    'broadcast_tensors': lambda L: L.broadcast_tensors(_T(L, 3), _T(L, 4)),
    'broadcast_shapes': lambda L: L.broadcast_shapes((3,), (4,)),
    'block_diag 3-D': lambda L: L.block_diag(_T(L, 2, 2, 2)),
    'cdist mismatch': lambda L: L.cdist(_T(L, 2, 3), _T(L, 4, 5)),
    'tensordot mismatch': lambda L: L.tensordot(_T(L, 2, 3), _T(L, 4, 5), dims=1),
    'zeros_like(list)': lambda L: L.zeros_like([1.0, 2.0]),
    'randn_like(int)': lambda L: L.randn_like(L.tensor([1, 2])),
    'multinomial negative': lambda L: L.multinomial(L.tensor([-1.0, 2.0]), 1),
    'multinomial too many': lambda L: L.multinomial(L.tensor([1.0, 2.0]), 3),
    'bernoulli p > 1': lambda L: L.bernoulli(L.tensor([1.5])),
    'normal std < 0': lambda L: L.normal(0.0, -1.0, (2,)),
    'view incompatible': lambda L: _T(L, 2, 3).view(4, 2),
    'reshape incompatible': lambda L: _T(L, 2, 3).reshape(4, 2),
    'expand 2 -> 4': lambda L: _T(L, 2, 3).expand(4, 3),
    'repeat too few': lambda L: _T(L, 2, 3).repeat(2),
    'narrow past the end': lambda L: _T(L, 5).narrow(0, 3, 4),
    'split 0': lambda L: _T(L, 5).split(0), 'split sizes short': lambda L: _T(L, 5).split([2, 2]),
    'chunk 0': lambda L: _T(L, 5).chunk(0), 'unflatten': lambda L: _T(L, 2, 6).unflatten(1, (4, 2)),
    'topk 6 of 5': lambda L: _T(L, 5).topk(6),
    'kthvalue 0': lambda L: _T(L, 5).kthvalue(0), 't[5]': lambda L: _T(L, 3)[5],
    't[1.5]': lambda L: _T(L, 3)[1.5], 't[[0, 5]]': lambda L: _T(L, 3)[[0, 5]],
    't[0, 0] of 1-D': lambda L: _T(L, 3)[0, 0], 'item of 3': lambda L: _T(L, 3).item(),
    'matmul mismatch': lambda L: _T(L, 2, 3) @ _T(L, 4, 2),
    't() of 3-D': lambda L: _T(L, 2, 3, 4).t(), 'permute short': lambda L: _T(L, 2, 3).permute(0),
    'permute repeated': lambda L: _T(L, 2, 3).permute(0, 0),
    'flatten(1, 0)': lambda L: _T(L, 2, 3).flatten(1, 0),
    'gather out of range': lambda L: _T(L, 2, 3).gather(1, L.tensor([[5]])),
    'index_select out of range': lambda L: _T(L, 2, 3).index_select(0, L.tensor([5])),
    'masked_fill float mask': lambda L: _T(L, 3).masked_fill(_T(L, 3), 0.0),
    # empty inputs: PyTorch's values (nan, 0, empty) or its refusals
    'mean of empty': lambda L: _T(L, 0).mean(), 'max of empty': lambda L: _T(L, 0).max(),
    'argmax of empty': lambda L: _T(L, 0).argmax(), 'sum of empty': lambda L: _T(L, 0).sum(),
    'prod of empty': lambda L: _T(L, 0).prod(), 'median of empty': lambda L: _T(L, 0).median(),
    'std of empty': lambda L: _T(L, 0).std(), 'norm of empty': lambda L: _T(L, 0).norm(),
    'softmax of empty': lambda L: _T(L, 0).softmax(0),
    'logsumexp of empty': lambda L: _T(L, 0).logsumexp(0),
    'min of empty over dim 0': lambda L: _T(L, 0, 3).min(0),
    'cumsum of empty': lambda L: _T(L, 0).cumsum(0), 'sort of empty': lambda L: _T(L, 0).sort(),
    'amax of (0, 3) over dim 1': lambda L: _T(L, 0, 3).amax(1),
    'det of (0, 0)': lambda L: L.linalg.det(_T(L, 0, 0)),
}


@pytest.mark.parametrize('label', sorted(_OTHER))
def test_other_bad_input_does_what_torch_does(label):
    f = _OTHER[label]
    assert _both(lambda: f(cr), lambda: f(torch)) is None, _both(lambda: f(cr), lambda: f(torch))


def test_library_refusals_without_a_torch_counterpart():
    """Bad arguments PyTorch only trips over later (or not at all): refused when given."""
    p = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(cr.ArgumentError, match='expected an optimizer from chainrule.optim'):
        cr.optim.lr_scheduler.StepLR(torch.optim.SGD([torch.ones(1, requires_grad=True)]), 2)
    with pytest.raises(cr.ArgumentError, match='lr_lambda must be a function'):
        cr.optim.lr_scheduler.LambdaLR(cr.optim.SGD([p], lr=0.1), 5)
    with pytest.raises(cr.ArgumentError, match='list of schedulers'):
        cr.optim.lr_scheduler.ChainedScheduler(cr.optim.SGD([p], lr=0.1))
    with pytest.raises(cr.ArgumentError, match='sampler must be an iterable'):
        cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.ones(3)), sampler=5)
    with pytest.raises(ShapeError, match='0-d'):
        cr.utils.data.TensorDataset(cr.tensor(1.0))
    with pytest.raises(cr.ArgumentError, match="mode='cubic' is not one of PyTorch's"):
        F.interpolate(cr.ones(1, 1, 4), size=2, mode='cubic')


def test_dtype_refusals_say_how_to_convert():
    with pytest.raises(DTypeError, match=r'x\.double\(\)\.mean'):
        cr.arange(4).mean()
    with pytest.raises(DTypeError, match=r'cr\.linalg\.det\(x\.double\(\)'):
        cr.linalg.det(cr.tensor([[1, 2], [3, 4]]))
    with pytest.raises(DTypeError, match='both operands are bool'):
        cr.tensor([True]).fmod(cr.tensor([True]))
