"""The multivariate distributions of `chainrule.scipy.stats`: `dirichlet` and
`multivariate_normal`."""


import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.scipy import special as sc
from chainrule.scipy.stats._distn_infrastructure import _Frozen, _INF, _LOG_2PI, _known


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
