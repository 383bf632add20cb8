"""Greedy colouring of a Jacobian's columns (or rows) for compressed differentiation.

Two columns may share a colour when no row has a nonzero in both ("structurally orthogonal"
columns, Curtis, Powell and Reid 1974): one Jacobian-vector product with the sum of their unit
vectors then gives both columns, each read off at its own rows. The greedy colouring below
visits the columns in order and gives each the smallest colour its rows have not seen (the
same idea as SciPy's `group_columns` for `least_squares(jac_sparsity=...)`). A banded matrix
of bandwidth b needs b colours whatever its size: a tridiagonal Jacobian needs 3.
"""

import numpy as np


def colour_columns(pattern):
    """A colour per column of `pattern` (a `scipy.sparse` matrix), so that no two columns of
    one colour have a nonzero in the same row.

    Returns:
        `(colours, count)`: an int array with a colour per column, and the number of colours.
    """
    csc, csr = pattern.tocsc(), pattern.tocsr()
    n = csc.shape[1]
    col_rows = np.split(csc.indices, csc.indptr[1:-1])
    row_cols = [r.tolist() for r in np.split(csr.indices, csr.indptr[1:-1])]
    colours = [-1] * n
    for c in range(n):
        # the colours of the columns sharing a row with c are taken
        taken = {colours[c2] for r in col_rows[c].tolist() for c2 in row_cols[r]}
        k = 0
        while k in taken:
            k += 1
        colours[c] = k
    colours = np.asarray(colours, dtype=np.int64)
    return colours, int(colours.max()) + 1 if n else 0


def colour_rows(pattern):
    """A colour per row, so that no two rows of one colour share a column (for one
    vector-Jacobian product per colour)."""
    return colour_columns(pattern.T)
