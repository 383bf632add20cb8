"""The continuous distributions of `chainrule.scipy.stats`: `norm`, `t`, `beta`, `gamma`,
`chi2`, `expon`, `laplace`, `logistic`, `cauchy`, each as its standardised formulas."""

import math

import chainrule.numpy as cnp
from chainrule.scipy import special as sc
from chainrule.scipy.stats._distn_infrastructure import (
    _INF, _LOG2, _LOG_2PI, _LOG_PI, _Continuous, _float_dtype, _param)


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


norm = norm_gen()
t = t_gen()
beta = beta_gen()
gamma = gamma_gen()
chi2 = chi2_gen()
expon = expon_gen()
laplace = laplace_gen()
logistic = logistic_gen()
cauchy = cauchy_gen()
