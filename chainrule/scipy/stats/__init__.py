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

Where each part lives, as in SciPy's own package: `_distn_infrastructure` (argument parsing,
support and parameter checks, frozen distributions: what every univariate distribution
shares), `_continuous_distns` (`norm`, `t`, `beta`, `gamma`, `chi2`, `expon`, `laplace`,
`logistic`, `cauchy`), `_discrete_distns` (`poisson`, `bernoulli`, `binom`), `_multivariate`
(`dirichlet`, `multivariate_normal`).
"""

from chainrule.scipy.stats._continuous_distns import (  # noqa: F401
    beta, beta_gen, cauchy, cauchy_gen, chi2, chi2_gen, expon, expon_gen, gamma, gamma_gen,
    laplace, laplace_gen, logistic, logistic_gen, norm, norm_gen, t, t_gen)
from chainrule.scipy.stats._discrete_distns import (  # noqa: F401
    bernoulli, bernoulli_gen, binom, binom_gen, poisson, poisson_gen)
from chainrule.scipy.stats._multivariate import (  # noqa: F401
    dirichlet, dirichlet_gen, multivariate_normal, multivariate_normal_gen)

__all__ = ['norm', 't', 'beta', 'gamma', 'chi2', 'expon', 'laplace', 'logistic', 'cauchy',
           'poisson', 'bernoulli', 'binom', 'dirichlet', 'multivariate_normal']
