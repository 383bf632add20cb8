"""Linear-algebra primitives: `einsum`, `inv`, `solve`, `triangular_solve`, `det`, `slogdet`,
`cholesky`, `eigh`, `eig`, `svd` and `qr`, each batched over leading dimensions as NumPy's
`np.linalg` is.

What this module lets you do: differentiate through matrix decompositions and solves, to any
order, in reverse and forward mode. `chainrule.numpy.linalg` builds NumPy's API on these
(`norm`, `pinv`, `matrix_power`, ... are composites there).

Every rule below is written with chainrule's own ops, so derivatives of derivatives work. The
JVP (forward) formula of each decomposition is the standard one (Giles 2008, "An extended
collection of matrix derivative results"; Murray 2016 for Cholesky; Townsend 2016 for the SVD;
the eigendecomposition and QR formulas as in JAX). Each VJP is derived as the transpose of its
JVP, one linear step at a time, under chainrule's complex convention: the pairing of a
cotangent `g` with a tangent `t` is `Re(sum(g * t))` with no conjugation, so the transpose of
`t -> A @ t @ B` is `g -> A.T @ g @ B.T` (plain transposes), of `t -> t.conj().T` is
`g -> g.conj().T`, and of the real part is the embedding back into the complex numbers. For a
real input, a complex cotangent keeps its real part.

Notation in the comments: `^T` transpose of the last two axes, `^H` conjugate transpose,
`F_ij = 1 / (w_j - w_i)` for i != j (0 on the diagonal and where eigenvalues coincide),
`o` the elementwise product.

Symmetric/Hermitian inputs. `eigh` reads one triangle (`UPLO`), and its derivative is that of
what it computes: the eigendecomposition of `S = tril(a) + tril(a, -1)^H` (or the `triu` form),
so the cotangent lives on that triangle (HIPS autograd's convention; it agrees with finite
differences on any input). `cholesky` reads the lower triangle but its derivative treats the
input as Hermitian, as JAX and PyTorch do: tangents are symmetrised `(t + t^H) / 2` and
cotangents come back Hermitian. Check it on `(a + a^H) / 2`.

Where each piece lives: `linalg_solve` (`inv`, `solve`, `triangular_solve`, `det`, `slogdet`),
`linalg_decompositions` (`cholesky`, `eigh`, `eig`, `svd`, `qr`), `linalg_einsum` (`einsum`),
and `linalg_common` (the matrix helpers the rules share: `_mm`, `_mT`, `_H`, `_tril`, ...).
Every name stays importable from here.
"""

from chainrule.ops.linalg_common import (  # noqa: F401  (used by chainrule.numpy/scipy.linalg)
    _H, _as_float, _like_input, _matrix, _mm, _mT, _real_dtype, _square, _tril)
from chainrule.ops.linalg_decompositions import (  # noqa: F401
    _from_triangle, cholesky, cholesky_p, eig, eig_p, eigh, eigh_p, qr, qr_p, svd, svd_p)
from chainrule.ops.linalg_einsum import (  # noqa: F401
    EINSUM_SMALL, einsum, einsum_p, einsum_spec)
from chainrule.ops.linalg_solve import (  # noqa: F401
    det, det_p, inv, inv_p, slogdet, slogdet_p, solve, solve_p, triangular_solve,
    triangular_solve_p)

__all__ = ['einsum', 'inv', 'solve', 'det', 'slogdet', 'cholesky', 'eigh', 'eig', 'svd', 'qr',
           'triangular_solve']
