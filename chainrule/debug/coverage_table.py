"""Which functions work in which transforms -- found by running them, not by declaration.

What you can do with it:

    >>> import chainrule as cr, chainrule.numpy as cnp
    >>> row = cr.coverage(cnp.flip)
    >>> row.reverse, row.vmap
    ('yes', 'native')

`coverage()` calls every public function of `chainrule.numpy`, `chainrule.numpy.linalg`,
`chainrule.numpy.fft` and `chainrule.nn.functional` (and `chainrule.scipy`'s modules, when
present) on small random inputs (the table in
`chainrule.debug.samples`) and checks, for each:

- `reverse`: `grad` of a random weighting of the outputs agrees with central finite differences
  along a random direction;
- `forward`: `jvp` agrees with the same finite difference;
- `vmap`: `vmap` over two examples equals a loop; `native` when every primitive had a batching
  rule, `loop` when some fell back to the loop-and-stack fallback (named in the notes);
- `jit`: `jit(f)` equals `f`, and `jit(grad(f))` equals `grad(f)` (`forward only` otherwise);
- `second_order`: `grad` of a gradient agrees with finite differences of the gradient;
- `complex`: reverse mode on complex inputs agrees with finite differences in JAX's convention
  (for a real loss `L(x + iy)` the gradient is `dL/dx - i dL/dy`).

Each entry is `yes`, `zero` (the derivative exists and is identically zero: `floor`, `sign`),
`n/a` (no floating input or no floating output: nothing to differentiate), `wrong` (it ran but
disagreed) or `no` (it raised; the notes hold the error).
"""

import numpy as np

from chainrule.debug.samples import SKIP, TABLES, sample_for

__all__ = ['coverage', 'CoverageRow', 'CoverageTable', 'public_functions', 'COLUMNS']

COLUMNS = ('reverse', 'forward', 'vmap', 'jit', 'second_order', 'complex')


class CoverageRow:
    """One function's coverage: one attribute per column of `COLUMNS`, plus `notes`
    (`{column: why}` for the entries that are not plain yes)."""

    __slots__ = ('module', 'name') + COLUMNS + ('notes',)

    def __init__(self, module, name):
        self.module = module
        self.name = name
        for c in COLUMNS:
            setattr(self, c, 'n/a')
        self.notes = {}

    @property
    def qualname(self):
        return f'{self.module}.{self.name}'

    def as_dict(self):
        d = {'module': self.module, 'name': self.name}
        d.update({c: getattr(self, c) for c in COLUMNS})
        d['notes'] = dict(self.notes)
        return d

    def __repr__(self):
        cols = ', '.join(f'{c}={getattr(self, c)!r}' for c in COLUMNS)
        return f'CoverageRow({self.qualname}: {cols})'


class CoverageTable(list):
    """A list of `CoverageRow`s, with `table['sin']` lookup and a Markdown rendering."""

    def __getitem__(self, key):
        if isinstance(key, str):
            for r in self:
                if r.name == key or r.qualname == key:
                    return r
            raise KeyError(f'coverage: no row named {key!r}')
        return list.__getitem__(self, key)

    def to_markdown(self):
        """The table as Markdown, one section per module (the docs' coverage page)."""
        lines = []
        module = None
        for r in self:
            if r.module != module:
                module = r.module
                lines += ['', f'## `{module}`', '',
                          '| function | ' + ' | '.join(c.replace('_', ' ') for c in COLUMNS)
                          + ' | notes |',
                          '|---' * (len(COLUMNS) + 2) + '|']
            notes = '; '.join(f'{k}: {v}' for k, v in r.notes.items())
            notes = notes.replace('|', '\\|').replace('\n', ' ')
            lines.append(f'| `{r.name}` | ' + ' | '.join(getattr(r, c) for c in COLUMNS)
                         + f' | {notes} |')
        return '\n'.join(lines).lstrip('\n') + '\n'

    def __str__(self):
        return self.to_markdown()


# `chainrule.scipy`'s modules, covered when they import (SciPy installed): their sample inputs
# are in `chainrule.debug.samples.OPTIONAL_TABLES` (the default for a function with no entry)
SCIPY = ('chainrule.scipy.special', 'chainrule.scipy.stats', 'chainrule.scipy.linalg',
         'chainrule.scipy.signal', 'chainrule.scipy.integrate', 'chainrule.scipy.optimize')


def _modules():
    import importlib
    for mod in tuple(TABLES) + tuple(m for m in SCIPY if m not in TABLES):
        try:
            yield mod, importlib.import_module(mod)
        except ImportError:
            if mod in TABLES:
                raise


def public_functions():
    """`[(module name, function name, function)]` for every public function covered."""
    out = []
    for mod, m in _modules():
        names = getattr(m, '__all__', None)
        if names is None:
            names = [n for n in dir(m) if not n.startswith('_')]
        for n in sorted(names):
            f = getattr(m, n, None)
            if f is None or not callable(f) or isinstance(f, type) or n in SKIP:
                continue
            if getattr(f, '__name__', None) is None:
                continue
            out.append((mod, n, f))
    return out


def coverage(fn=None):
    """Run every public function (or just `fn`) in every transform and report what works.

    Args:
        fn: a public function (`cnp.flip`); None for all of them.

    Returns:
        a `CoverageRow` for `fn`, or a `CoverageTable` of every function.
    """
    if fn is not None:
        for mod, name, f in public_functions():
            if f is fn:
                return _run(mod, name, f)
        raise ValueError(f'coverage: {getattr(fn, "__name__", fn)!r} is not a public function of '
                         + ', '.join(TABLES))
    return CoverageTable(_run(mod, name, f) for mod, name, f in public_functions())


# --- the checks -----------------------------------------------------------------------------------

def _leaves(out):
    from chainrule.tree import tree_flatten
    return tree_flatten(out)[0]


def _short(e):
    msg = str(e).split('\n')[0]
    return f'{type(e).__name__}: {msg[:120]}'


def _inexact(x):
    return np.issubdtype(np.asarray(x).dtype, np.inexact)


def _close(a, b, tol):
    return abs(a - b) <= tol * (1.0 + abs(b))


class _Case:
    """One function on one set of sampled arguments, with a scalar loss over its floats."""

    def __init__(self, fn, sample, args, rng):
        self.fn, self.sample, self.args = fn, sample, args
        self.fl = [i for i, a in enumerate(args) if np.issubdtype(a.dtype, np.inexact)]
        out = sample(fn, *args)
        self.weights = []
        for leaf in _leaves(out):
            leaf = np.asarray(leaf)
            if _inexact(leaf):
                w = rng.standard_normal(leaf.shape)
                if np.iscomplexobj(leaf):
                    w = w + 1j * rng.standard_normal(leaf.shape)
                self.weights.append(w)
            else:
                self.weights.append(None)
        self.out = out
        self.xs = [args[i] for i in self.fl]
        self.v = [sample.direction(i, args[i], rng) for i in self.fl]
        self.u = [sample.direction(i, args[i], rng) for i in self.fl]

    @property
    def differentiable(self):
        return bool(self.fl) and any(w is not None for w in self.weights)

    def call(self, *args):
        return self.sample(self.fn, *args)

    def loss(self, *xs):
        import chainrule.numpy as cnp
        full = list(self.args)
        for i, x in zip(self.fl, xs):
            full[i] = x
        tot = 0.0
        for leaf, w in zip(_leaves(self.call(*full)), self.weights):
            if w is not None:
                tot = tot + cnp.real(cnp.sum(leaf * w))
        return tot

    def grad(self, *xs):
        import chainrule as cr
        g = cr.grad(self.loss, argnums=tuple(range(len(self.fl))))(*xs)
        return g if isinstance(g, tuple) else (g,)

    def grad_dot_u(self, *xs):
        import chainrule.numpy as cnp
        tot = 0.0
        for g, u in zip(self.grad(*xs), self.u):
            tot = tot + cnp.real(cnp.sum(g * u))
        return tot

    def fd(self, f, eps):
        plus = f(*[x + eps * v for x, v in zip(self.xs, self.v)])
        minus = f(*[x - eps * v for x, v in zip(self.xs, self.v)])
        return (float(np.asarray(plus)) - float(np.asarray(minus))) / (2 * eps)


def _dot(gs, vs):
    return sum(float(np.real(np.sum(np.asarray(g) * v))) for g, v in zip(gs, vs) if g is not None)


def _reverse(case, zero_grad):
    g = case.grad(*case.xs)
    got = _dot(g, case.v)
    if zero_grad:
        return 'zero' if got == 0 else 'wrong'
    want = case.fd(case.loss, 1e-6)
    if not _close(got, want, 1e-5):
        return 'wrong'
    return 'zero' if all(not np.any(np.asarray(x)) for x in g) else 'yes'


def _forward(case, zero_grad):
    import chainrule as cr
    _, t = cr.jvp(case.loss, tuple(case.xs), tuple(case.v))
    got = float(np.real(np.asarray(t)))
    want = 0.0 if zero_grad else case.fd(case.loss, 1e-6)
    if not _close(got, want, 1e-5):
        return 'wrong'
    return 'zero' if got == 0 and want == 0 else 'yes'


def _second(case, zero_grad):
    got = _dot(_grad_of(case), case.v)
    want = 0.0 if zero_grad else case.fd(case.grad_dot_u, 1e-5)
    return 'yes' if _close(got, want, 1e-4) else 'wrong'


def _grad_of(case):
    import chainrule as cr
    g = cr.grad(case.grad_dot_u, argnums=tuple(range(len(case.fl))))(*case.xs)
    return g if isinstance(g, tuple) else (g,)


def _same(a, b):
    la, lb = _leaves(a), _leaves(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True):
            return False
    return True


def _vmap(case, sample, rng, row):
    import warnings

    import chainrule as cr
    other = sample.arrays(rng)
    stacked = [np.stack([a, b]) for a, b in zip(case.args, other)]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        got, fallbacks = cr.vmap(case.call, report=True)(*stacked)
    outs = [case.call(*case.args), case.call(*other)]
    want_leaves = [np.stack([np.asarray(a), np.asarray(b)])
                   for a, b in zip(_leaves(outs[0]), _leaves(outs[1]))]
    if not _same(_leaves(got), want_leaves):
        return 'wrong'
    if fallbacks:
        row.notes['vmap'] = 'loops over ' + ', '.join(sorted(fallbacks))
        return 'loop'
    return 'native'


def _jit(case):
    import chainrule as cr
    if not _same(cr.jit(case.call)(*case.args), case.call(*case.args)):
        return 'wrong'
    if not case.differentiable:
        return 'yes'
    fl = case.fl

    def g(*args):
        return case.grad(*[args[i] for i in fl])
    try:
        ok = _same(cr.jit(g)(*case.args), case.grad(*case.xs))
    except Exception:
        return 'forward only'
    return 'yes' if ok else 'wrong'


def _attempt(row, column, check, *args):
    try:
        setattr(row, column, check(*args))
    except Exception as e:   # a function that fails in a transform is what this table reports
        setattr(row, column, 'no')
        row.notes[column] = _short(e)


def _run(module, name, fn, sample=None):
    import warnings
    row = CoverageRow(module, name)
    sample = sample or sample_for(module, name, fn)
    if sample is None:
        row.notes['all'] = 'no sample inputs'
        return row
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            case = _Case(fn, sample, sample.arrays(rng), rng)
        except Exception as e:
            for c in COLUMNS:
                setattr(row, c, 'no')
            row.notes['all'] = 'fails on its sample inputs: ' + _short(e)
            return row
        _attempt(row, 'vmap', _vmap, case, sample, rng, row)
        _attempt(row, 'jit', _jit, case)
        if not case.differentiable:
            return row
        z = sample.zero_grad
        _attempt(row, 'reverse', _reverse, case, z)
        _attempt(row, 'forward', _forward, case, z)
        _attempt(row, 'second_order', _second, case, z)
        try:
            ccase = _Case(fn, sample, sample.arrays(rng, complex_=True), rng)
        except Exception as e:
            row.complex = 'no'
            row.notes['complex'] = _short(e)
        else:
            if ccase.differentiable:
                _attempt(row, 'complex', _reverse, ccase, z)
    return row
