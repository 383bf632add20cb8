"""The discrete distributions of `chainrule.scipy.stats`: `poisson`, `bernoulli`, `binom`."""

import chainrule.numpy as cnp
from chainrule.scipy import special as sc
from chainrule.scipy.stats._distn_infrastructure import _Discrete, _INF


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


poisson = poisson_gen()
bernoulli = bernoulli_gen()
binom = binom_gen()
