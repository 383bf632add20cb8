"""What every univariate distribution of `chainrule.scipy.stats` shares: SciPy's argument
parsing (shape parameters, then `loc` and `scale`), the support and parameter checks around each
distribution's standardised formulas, the methods derived from the ones a distribution defines,
and frozen distributions (`norm(loc, scale)`).
"""

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ConcretizationError, concrete

_LOG_2PI = math.log(2 * math.pi)
_LOG_PI = math.log(math.pi)
_LOG2 = math.log(2.0)
_INF = np.inf

# the value of each method below and above the support
_OUTSIDE = {
    'logpdf': (-_INF, -_INF), 'pdf': (0.0, 0.0), 'logpmf': (-_INF, -_INF), 'pmf': (0.0, 0.0),
    'cdf': (0.0, 1.0), 'logcdf': (-_INF, 0.0), 'sf': (1.0, 0.0), 'logsf': (0.0, -_INF),
}


def _param(v, dtype=np.float64):
    """A parameter as an array; a Python number takes the data's floating `dtype` (it is weak
    in NumPy 2's promotion, so float32 data with `loc=0.0` or `gamma.logpdf(x, 2.0)` stays
    float32, also through the special functions)."""
    return np.asarray(v, dtype) if type(v) in (int, float) else cnp.asarray(v)


def _float_dtype(x):
    dt = ops.dtype_of(x)
    return dt if dt.kind == 'f' else np.dtype(np.float64)


def _known(x):
    """The concrete values of `x`, or None inside `jit` (where only shapes are known)."""
    try:
        return np.asarray(concrete(x))
    except ConcretizationError:
        return None


class _Frozen:
    """A distribution with its parameters fixed, as `scipy.stats.norm(loc, scale)`."""

    def __init__(self, dist, args, kwds):
        self.dist, self.args, self.kwds = dist, args, kwds

    def __getattr__(self, method):
        if method.startswith('_') or method not in self.dist._methods:
            raise AttributeError(f'frozen {self.dist.name} has no method {method!r}')
        fn = getattr(self.dist, method)
        return lambda x: fn(x, *self.args, **self.kwds)

    def __repr__(self):
        return f'<frozen chainrule.scipy.stats.{self.dist.name}>'


class _Univariate:
    """A univariate distribution: SciPy's argument parsing, support and parameter checks around
    the standardised formulas (`_logpdf(z, *shapes)`, ...) of each subclass."""

    name = ''
    shapes = ()                 # names of the shape parameters, in SciPy's order
    support = (-_INF, _INF)     # of the standardised variable (a function of the shapes or not)
    inside = 0.0                # a point in the support: where out-of-support points are evaluated
    discrete = False
    _methods = ()

    def __call__(self, *args, **kwds):
        self._parse('__call__', args, kwds)       # check the arguments now, as SciPy does
        return _Frozen(self, args, kwds)

    def __repr__(self):
        return f'<chainrule.scipy.stats.{self.name}>'

    def _parse(self, method, args, kwds, dtype=np.float64):
        names = self.shapes + (('loc',) if self.discrete else ('loc', 'scale'))
        if len(args) > len(names):
            raise TypeError(f'{self.name}.{method}() takes at most {len(names)} parameters '
                            f'after the data ({", ".join(names)}), {len(args)} given')
        vals = dict(zip(names, args))
        for k, v in kwds.items():
            if k not in names:
                raise TypeError(f'{self.name}.{method}() got an unexpected keyword argument '
                                f'{k!r} (its parameters: {", ".join(names)})')
            if k in vals:
                raise TypeError(f'{self.name}.{method}() got multiple values for argument {k!r}')
            vals[k] = v
        missing = [n for n in self.shapes if n not in vals]
        if missing:
            raise TypeError(f'{self.name}.{method}() missing the shape parameter'
                            f'{"s" if len(missing) > 1 else ""} {", ".join(map(repr, missing))} '
                            f'(SciPy\'s signature: {method}(x, {", ".join(names)}))')
        shapes = [_param(vals[n], dtype) for n in self.shapes]
        return (shapes, _param(vals.get('loc', 0.0), dtype),
                _param(vals.get('scale', 1.0), dtype))

    def _support(self, *shapes):
        return self.support

    def _argcheck(self, *shapes):
        """Where the shape parameters are valid (None: always)."""
        return None

    def _evaluate(self, method, x, args, kwds):
        # log(0) and 0 * inf at the edges of the support are meant: -inf, replaced below
        with np.errstate(divide='ignore', invalid='ignore'):
            return self._evaluate_quietly(method, x, args, kwds)

    def _evaluate_quietly(self, method, x, args, kwds):
        x = cnp.asarray(x)
        shapes, loc, scale = self._parse(method, args, kwds, _float_dtype(x))
        z = (x - loc) / scale if not self.discrete else x - loc
        lo, hi = self._support(*shapes)
        below = above = None
        if self.discrete:
            if method in ('cdf', 'logcdf', 'sf', 'logsf'):
                z = cnp.floor(z)
            else:
                # a pmf is 0 off the integers
                above = cnp.not_equal(z, cnp.floor(z))
        bounded = not (isinstance(lo, float) and lo == -_INF and
                       isinstance(hi, float) and hi == _INF)
        if bounded:
            below = cnp.less(z, lo)
            high = cnp.greater(z, hi)
            above = high if above is None else cnp.logical_or(above, high)
        if below is not None or above is not None:
            out = below if above is None else above if below is None else \
                cnp.logical_or(below, above)
            z = cnp.where(out, self.inside, z)
        val = self._formula(method, z, shapes)
        if method == 'logpdf':
            val = val - cnp.log(scale)
        elif method == 'pdf':
            val = val / scale
        low, high_val = _OUTSIDE[method]
        if above is not None:
            val = cnp.where(above, high_val, val)
        if below is not None:
            val = cnp.where(below, low, val)
        ok = self._argcheck(*shapes)
        if not self.discrete:
            pos = cnp.greater(scale, 0)
            ok = pos if ok is None else cnp.logical_and(ok, pos)
        bad = cnp.isnan(x) if ok is None else cnp.logical_or(cnp.logical_not(ok), cnp.isnan(x))
        return cnp.where(bad, np.nan, val)

    def _formula(self, method, z, shapes):
        """The standardised formula of `method`; the others follow from the ones defined."""
        own = getattr(self, '_' + method, None)
        if own is not None:
            return own(z, *shapes)
        if method in ('pdf', 'pmf'):
            return cnp.exp(self._formula('log' + method, z, shapes))
        if method in ('logcdf', 'logsf'):
            p = self._formula(method[3:], z, shapes)
            if not hasattr(self, '_sf'):
                return cnp.log(p)
            # near 1, log1p of minus the other tail keeps the digits that log(p) loses
            other = self._formula('sf' if method == 'logcdf' else 'cdf', z, shapes)
            return cnp.where(cnp.less(p, 0.5), cnp.log(p), cnp.log1p(-other))
        if method == 'sf':
            return 1 - self._formula('cdf', z, shapes)
        raise AttributeError(f'{self.name} has no method {method!r}')   # pragma: no cover


def _method(name, density):
    def m(self, x, *args, **kwds):
        return self._evaluate(name, x, args, kwds)
    m.__name__ = name
    m.__doc__ = (f'`scipy.stats.<dist>.{name}({density}, *shapes, loc=0' +
                 ('' if density == 'k' else ', scale=1') + ')`.')
    return m


class _Continuous(_Univariate):
    _methods = ('logpdf', 'pdf', 'cdf', 'logcdf', 'sf', 'logsf')
    logpdf, pdf, cdf, logcdf, sf, logsf = (_method(n, 'x') for n in _methods)


class _Discrete(_Univariate):
    discrete = True
    _methods = ('logpmf', 'pmf', 'cdf', 'logcdf', 'sf', 'logsf')
    logpmf, pmf, cdf, logcdf, sf, logsf = (_method(n, 'k') for n in _methods)
