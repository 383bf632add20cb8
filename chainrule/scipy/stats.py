"""`scipy.stats` distributions, differentiable in the data and in every parameter.

What this module lets you do: write log-likelihoods as with SciPy -- `norm.logpdf(x, loc=0,
scale=1)`, `gamma.logpdf(x, a, loc=0, scale=1)`, `poisson.logpmf(k, mu)`,
`multivariate_normal.logpdf(x, mean=None, cov=1, allow_singular=False)` -- and take their
gradients, Hessians, `vmap`s and `jit`s. Signatures follow SciPy's: shape parameters positional
after the data, then `loc` (and `scale` for continuous distributions), positionally or by
keyword; `norm(loc, scale)` gives a frozen distribution. Out-of-support data gives SciPy's
values (`logpdf` -inf, `pdf` 0, `cdf` 0 or 1, ...), invalid parameters give nan.

Everything here is a composite of primitives (`chainrule.numpy` and `chainrule.scipy.special`):
no derivative code. The tails use stable forms (`log_ndtr` for the normal `logcdf`, `expm1` for
the exponential `cdf`, `logaddexp` for the logistic `logcdf`), and out-of-support points are
evaluated at a safe in-support point before being replaced, so they never put a nan into the
gradient of the points that are in the support.

A cdf's derivative in a shape parameter that enters an incomplete beta or gamma function
(`t.cdf` in `df`, `gamma.cdf` in `a`, `beta.cdf` in `a` and `b`, `chi2.cdf` in `df`,
`binom.cdf` in `n`) has no closed form: asking for it raises `MissingRuleError` naming the
function and the argument. Derivatives in the data, `loc`, `scale` and the other parameters
are always available.
"""

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ConcretizationError, concrete
from chainrule.scipy import special as sc

__all__ = ['norm', 't', 'beta', 'gamma', 'chi2', 'expon', 'laplace', 'logistic', 'cauchy',
           'poisson', 'bernoulli', 'binom', 'dirichlet', 'multivariate_normal']

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


# --- continuous ---------------------------------------------------------------------------------

class norm_gen(_Continuous):
    name = 'norm'

    def _logpdf(self, z):
        return z * z * -0.5 - 0.5 * _LOG_2PI

    def _cdf(self, z):
        return sc.ndtr(z)

    def _logcdf(self, z):
        return sc.log_ndtr(z)

    def _sf(self, z):
        return sc.ndtr(-z)

    def _logsf(self, z):
        return sc.log_ndtr(-z)

    def ppf(self, q, loc=0.0, scale=1.0):
        """The quantile function (inverse cdf), `loc + scale * ndtri(q)`."""
        q = cnp.asarray(q)
        dt = _float_dtype(q)
        return _param(loc, dt) + _param(scale, dt) * sc.ndtri(q)


class t_gen(_Continuous):
    name = 't'
    shapes = ('df',)

    def _argcheck(self, df):
        return cnp.greater(df, 0)

    def _logpdf(self, z, df):
        return (sc.gammaln((df + 1) / 2) - sc.gammaln(df / 2) - 0.5 * cnp.log(df * math.pi)
                - (df + 1) / 2 * cnp.log1p(z * z / df))

    def _tail(self, z, df):
        # P(T < -|z|) = I_{df/(df+z^2)}(df/2, 1/2) / 2
        return 0.5 * sc.betainc(df / 2, 0.5, df / (df + z * z))

    def _cdf(self, z, df):
        p = self._tail(z, df)
        return cnp.where(cnp.less(z, 0), p, 1 - p)

    def _sf(self, z, df):
        p = self._tail(z, df)
        return cnp.where(cnp.greater(z, 0), p, 1 - p)


class beta_gen(_Continuous):
    name = 'beta'
    shapes = ('a', 'b')
    support = (0.0, 1.0)
    inside = 0.5

    def _argcheck(self, a, b):
        return cnp.logical_and(cnp.greater(a, 0), cnp.greater(b, 0))

    def _logpdf(self, z, a, b):
        return sc.xlogy(a - 1, z) + sc.xlog1py(b - 1, -z) - sc.betaln(a, b)

    def _cdf(self, z, a, b):
        return sc.betainc(a, b, z)

    def _sf(self, z, a, b):
        return sc.betainc(b, a, 1 - z)


class gamma_gen(_Continuous):
    name = 'gamma'
    shapes = ('a',)
    support = (0.0, _INF)
    inside = 1.0

    def _argcheck(self, a):
        return cnp.greater(a, 0)

    def _logpdf(self, z, a):
        return sc.xlogy(a - 1, z) - z - sc.gammaln(a)

    def _cdf(self, z, a):
        return sc.gammainc(a, z)

    def _sf(self, z, a):
        return sc.gammaincc(a, z)


class chi2_gen(gamma_gen):
    """chi2(df) is gamma(df/2) on z/2 (the same support and parameter check)."""
    name = 'chi2'
    shapes = ('df',)

    def _logpdf(self, z, df):
        return super()._logpdf(z / 2, df / 2) - _LOG2

    def _cdf(self, z, df):
        return super()._cdf(z / 2, df / 2)

    def _sf(self, z, df):
        return super()._sf(z / 2, df / 2)


class expon_gen(_Continuous):
    name = 'expon'
    support = (0.0, _INF)
    inside = 1.0

    def _logpdf(self, z):
        return -z

    def _cdf(self, z):
        return -cnp.expm1(-z)

    def _logcdf(self, z):
        # log(1 - e^-z): log(-expm1(-z)) for small z, log1p(-e^-z) for large z
        return cnp.where(cnp.less(z, _LOG2), cnp.log(-cnp.expm1(-z)), cnp.log1p(-cnp.exp(-z)))

    def _sf(self, z):
        return cnp.exp(-z)

    def _logsf(self, z):
        return -z


class laplace_gen(_Continuous):
    name = 'laplace'

    def _logpdf(self, z):
        return -cnp.abs(z) - _LOG2

    def _cdf(self, z):
        # e^z / 2 left of 0, 1 - e^-z / 2 right of it; each branch sees a safe argument
        left = cnp.less_equal(z, 0)
        return cnp.where(left, 0.5 * cnp.exp(cnp.where(left, z, 0)),
                         1 - 0.5 * cnp.exp(-cnp.where(left, 0, z)))

    def _logcdf(self, z):
        left = cnp.less_equal(z, 0)
        return cnp.where(left, cnp.where(left, z, 0) - _LOG2,
                         cnp.log1p(-0.5 * cnp.exp(-cnp.where(left, 0, z))))

    def _sf(self, z):
        return self._cdf(-z)

    def _logsf(self, z):
        return self._logcdf(-z)


class logistic_gen(_Continuous):
    name = 'logistic'

    def _logpdf(self, z):
        # -u - 2 log(1 + e^-u) with u = |z| (the density is even), so e^-u never overflows;
        # u is |z| with slope 1 at 0, where the formula is smooth, so the second derivative
        # there is right too
        u = cnp.where(cnp.less(z, 0), -z, z)
        return -u - 2 * cnp.log1p(cnp.exp(-u))

    def _cdf(self, z):
        return sc.expit(z)

    def _logcdf(self, z):
        return -cnp.logaddexp(0.0, -z)

    def _sf(self, z):
        return sc.expit(-z)

    def _logsf(self, z):
        return -cnp.logaddexp(0.0, z)


class cauchy_gen(_Continuous):
    name = 'cauchy'

    def _logpdf(self, z):
        return -_LOG_PI - cnp.log1p(z * z)

    # arctan2(1, -z) = pi/2 + arctan(z), without the cancellation of 1/2 + arctan(z)/pi in the
    # left tail
    def _cdf(self, z):
        return cnp.arctan2(1.0, -z) / math.pi

    def _sf(self, z):
        return cnp.arctan2(1.0, z) / math.pi


# --- discrete -----------------------------------------------------------------------------------

class poisson_gen(_Discrete):
    name = 'poisson'
    shapes = ('mu',)
    support = (0.0, _INF)

    def _argcheck(self, mu):
        return cnp.greater_equal(mu, 0)

    def _logpmf(self, k, mu):
        return sc.xlogy(k, mu) - sc.gammaln(k + 1) - mu

    def _cdf(self, k, mu):
        return sc.gammaincc(k + 1, mu)

    def _sf(self, k, mu):
        return sc.gammainc(k + 1, mu)


class bernoulli_gen(_Discrete):
    name = 'bernoulli'
    shapes = ('p',)
    support = (0.0, 1.0)

    def _argcheck(self, p):
        return cnp.logical_and(cnp.greater_equal(p, 0), cnp.less_equal(p, 1))

    def _logpmf(self, k, p):
        return sc.xlogy(k, p) + sc.xlog1py(1 - k, -p)

    def _cdf(self, k, p):
        # k is 0 or 1 here (floored, in the support)
        return cnp.where(cnp.equal(k, 0), 1 - p, 1.0 + 0 * p)

    def _sf(self, k, p):
        return cnp.where(cnp.equal(k, 0), p, 0.0 * p)


class binom_gen(_Discrete):
    name = 'binom'
    shapes = ('n', 'p')
    inside = 0.0

    def _support(self, n, p):
        return 0.0, n

    def _argcheck(self, n, p):
        return cnp.logical_and(
            cnp.logical_and(cnp.greater_equal(n, 0), cnp.equal(n, cnp.floor(n))),
            cnp.logical_and(cnp.greater_equal(p, 0), cnp.less_equal(p, 1)))

    def _logpmf(self, k, n, p):
        comb = sc.gammaln(n + 1) - (sc.gammaln(k + 1) + sc.gammaln(n - k + 1))
        return comb + sc.xlogy(k, p) + sc.xlog1py(n - k, -p)

    def _cdf(self, k, n, p):
        # P(K <= k) = I_{1-p}(n - k, k + 1) for k < n (1 at k = n, where I's a would be 0)
        last = cnp.greater_equal(k, n)
        ks = cnp.where(last, n - 1, k)
        return cnp.where(last, 1.0, sc.betainc(n - ks, ks + 1, 1 - p))

    def _sf(self, k, n, p):
        last = cnp.greater_equal(k, n)
        ks = cnp.where(last, n - 1, k)
        return cnp.where(last, 0.0, sc.betainc(ks + 1, n - ks, p))


norm = norm_gen()
t = t_gen()
beta = beta_gen()
gamma = gamma_gen()
chi2 = chi2_gen()
expon = expon_gen()
laplace = laplace_gen()
logistic = logistic_gen()
cauchy = cauchy_gen()
poisson = poisson_gen()
bernoulli = bernoulli_gen()
binom = binom_gen()


# --- multivariate -------------------------------------------------------------------------------

def _squeeze(out):
    """SciPy's `_squeeze_output`: drop every unit axis."""
    return cnp.squeeze(out) if ops.shape_of(out) else out


class dirichlet_gen:
    """The Dirichlet distribution, as `scipy.stats.dirichlet`: `x` has the components along its
    first axis (K of them, or K - 1 and the last is 1 - their sum), `alpha` is 1-D of length K."""

    name = 'dirichlet'
    _methods = ('logpdf', 'pdf')

    def __call__(self, alpha):
        return _Frozen(self, (alpha,), {})

    def _check(self, x, alpha):
        alpha = cnp.asarray(alpha)
        x = cnp.asarray(x)
        sa, sx = ops.shape_of(alpha), ops.shape_of(x)
        if len(sa) != 1:
            raise ValueError(f'dirichlet: alpha must be 1-D, got shape {sa}')
        if not sx or sx[0] not in (sa[0], sa[0] - 1):
            raise ValueError(f'dirichlet: x of shape {sx} must have {sa[0]} or {sa[0] - 1} '
                             f'components along its first axis for alpha of shape {sa}')
        if sx[0] == sa[0] - 1:
            x = cnp.concatenate([x, 1 - cnp.sum(x, axis=0, keepdims=True)], axis=0)
        a, xv = _known(alpha), _known(x)
        if a is not None and np.any(a <= 0):
            raise ValueError('dirichlet: every alpha must be positive')
        if xv is not None:
            if np.any(xv < 0) or np.any(xv > 1):
                raise ValueError('dirichlet: every entry of x must lie in [0, 1]')
            if np.any(np.abs(np.sum(xv, 0) - 1) > 1e-9):
                raise ValueError("dirichlet: x must lie on the simplex: its components (first "
                                 'axis) must sum to 1')
            if a is not None and np.any((xv == 0) & (a.reshape((-1,) + (1,) * (xv.ndim - 1))
                                                     < 1)):
                raise ValueError('dirichlet: x must be > 0 where its alpha is < 1')
        return x, alpha

    def logpdf(self, x, alpha):
        """`sum_i (alpha_i - 1) log x_i - log B(alpha)`, over the first axis of `x`."""
        x, alpha = self._check(x, alpha)
        a = cnp.reshape(alpha, (-1,) + (1,) * (len(ops.shape_of(x)) - 1))
        lnb = cnp.sum(sc.gammaln(alpha)) - sc.gammaln(cnp.sum(alpha))
        return _squeeze(cnp.sum(sc.xlogy(a - 1, x), axis=0) - lnb)

    def pdf(self, x, alpha):
        return cnp.exp(self.logpdf(x, alpha))


class multivariate_normal_gen:
    """The multivariate normal distribution, as `scipy.stats.multivariate_normal`.

    `cov` may be a scalar (a multiple of the identity), a vector (the diagonal) or a matrix (of
    which, as in SciPy, the lower triangle is read). `x` has the coordinates along its last
    axis; the result has the other axes, with unit axes squeezed (SciPy's convention).
    """

    name = 'multivariate_normal'
    _methods = ('logpdf', 'pdf')

    def __call__(self, mean=None, cov=1, allow_singular=False):
        return _Frozen(self, (), dict(mean=mean, cov=cov, allow_singular=allow_singular))

    def _params(self, x, mean, cov):
        cov = cnp.asarray(cov)
        if mean is not None:
            mean = cnp.asarray(mean)
            if len(ops.shape_of(mean)) > 1:
                raise ValueError(f'multivariate_normal: mean must be 1-D, got shape '
                                 f'{ops.shape_of(mean)}')
        sc_ = ops.shape_of(cov)
        # SciPy's inference of the dimension: from the mean, else from a matrix cov, else 1
        if mean is not None and ops.shape_of(mean):
            dim = ops.shape_of(mean)[0]
        elif mean is None and len(sc_) == 2:
            dim = sc_[0]
        else:
            dim = 1
        if mean is None:
            mean = np.zeros(dim)
        elif not ops.shape_of(mean):
            mean = cnp.broadcast_to(mean, (dim,))
        if len(sc_) > 2 or (sc_ and sc_[0] != dim) or (len(sc_) == 2 and sc_[1] != dim):
            raise ValueError(f'multivariate_normal: cov of shape {sc_} does not fit a mean of '
                             f'dimension {dim}: it must be a scalar, ({dim},) or ({dim}, {dim})')
        x = cnp.asarray(x)
        sx = ops.shape_of(x)
        if not sx:
            x = cnp.reshape(x, (1,))
        elif len(sx) == 1:
            x = cnp.reshape(x, (-1, 1) if dim == 1 else (1, -1))
        if ops.shape_of(x)[-1] != dim:
            raise ValueError(f'multivariate_normal: x of shape {sx} does not have dimension '
                             f'{dim} (the length of mean) along its last axis')
        return x, mean, cov, dim

    def logpdf(self, x, mean=None, cov=1, allow_singular=False):
        """The log density at `x` (coordinates along the last axis)."""
        x, mean, cov, dim = self._params(x, mean, cov)
        dev = x - mean
        if len(ops.shape_of(cov)) < 2:
            # a diagonal covariance: its eigenvalues are the variances, its eigenvectors the axes
            return _squeeze(self._spectral(dev, cnp.broadcast_to(cov, (dim,)), allow_singular))
        # the lower triangle, mirrored, is what is read: so the derivative is that of what is
        # computed (in the lower triangle only), whatever the factorisation's own rule does
        cov = cnp.tril(cov) + cnp.transpose(cnp.tril(cov, -1))
        if allow_singular:
            s, u = cnp.linalg.eigh(cov)
            out = self._spectral(dev @ u, s, True)
        else:
            out = self._cholesky(dev, cov, dim)
        return _squeeze(out)

    def pdf(self, x, mean=None, cov=1, allow_singular=False):
        return cnp.exp(self.logpdf(x, mean, cov, allow_singular))

    @staticmethod
    def _cholesky(dev, cov, dim):
        L = cnp.linalg.cholesky(cov)
        flat = cnp.reshape(dev, (-1, dim))
        z = cnp.linalg.solve(L, cnp.transpose(flat))          # (dim, n): L z = dev
        maha = cnp.reshape(cnp.sum(z * z, axis=0), ops.shape_of(dev)[:-1])
        logdet = 2 * cnp.sum(cnp.log(cnp.diagonal(L)))
        return -0.5 * (dim * _LOG_2PI + logdet + maha)

    @staticmethod
    def _spectral(proj, s, allow_singular):
        """The log density from the eigenvalues `s` of the covariance and the deviation's
        coordinates `proj` in its eigenbasis, with SciPy's pseudo-inverse: eigenvalues up to
        eps = 1e6 * machine epsilon * max|s| count as zero; the density lives on the span of
        the others (-inf farther than 1e3 * eps off it) and uses the pseudo-determinant."""
        eps = 1e6 * np.finfo(np.float64).eps * cnp.max(cnp.abs(ops.stop_gradient(s)))
        sv, ev = _known(s), _known(eps)
        if sv is not None:
            if np.any(sv < -ev):
                raise ValueError('multivariate_normal: the covariance must be symmetric '
                                 'positive semidefinite')
            if not allow_singular and np.any(sv <= ev):
                raise np.linalg.LinAlgError(
                    'multivariate_normal: with allow_singular=False the covariance must be '
                    'symmetric positive definite; pass allow_singular=True for a singular one')
        keep = cnp.greater(s, eps)
        safe = cnp.where(keep, s, 1)
        maha = cnp.sum(cnp.where(keep, proj * proj / safe, 0), axis=-1)
        logdet = cnp.sum(cnp.where(keep, cnp.log(safe), 0))
        rank = cnp.sum(keep)
        out = -0.5 * (rank * _LOG_2PI + logdet + maha)
        if not allow_singular:
            return out
        off = ops.stop_gradient(proj)         # the distance from the support: a condition only
        resid = cnp.sqrt(cnp.sum(cnp.where(keep, 0, off * off), axis=-1))
        return cnp.where(cnp.less(resid, 1e3 * eps), out, -_INF)


dirichlet = dirichlet_gen()
multivariate_normal = multivariate_normal_gen()
