"""Structural primitives: broadcasting, reshaping, transposing, indexing, concatenating,
dtype conversion, reductions and matrix products.

Most of these are linear (`linear=True`): their JVP is the op applied to the tangent, and
their VJP is the transposed op -- `broadcast_to` and `sum` transpose into each other, `getitem`
into a scatter-add, `concatenate` into slices, `reshape` and `transpose` into themselves.

Where each family lives: `structural_shape` (`broadcast_to`, `reshape`, `transpose`,
`astype`, `sum_to_shape`), `structural_indexing` (`getitem`, `scatter_add`, `at_set`,
`at_add`), `structural_join` (`concatenate`, `split`), `structural_reductions` (`sum`, `max`,
`cumsum`, `cumprod`), `structural_matmul` (`matmul`). Every name stays importable from here.
"""

from chainrule.ops.structural_shape import (  # noqa: F401
    _all_batched, _batch_size, astype, astype_p, broadcast_to, broadcast_to_p, reshape,
    reshape_p, sum_to_shape, transpose, transpose_p)
from chainrule.ops.structural_indexing import (  # noqa: F401
    at_add, at_add_p, at_set, at_set_p, getitem, getitem_p, normalize_index, scatter_add,
    scatter_add_p)
from chainrule.ops.structural_join import concatenate, concatenate_p, split, split_p  # noqa: F401
from chainrule.ops.structural_reductions import (  # noqa: F401
    _shifted_axis, cumprod, cumprod_p, cumsum, cumsum_p, max, max_p, normalize_axis, sum, sum_p)
from chainrule.ops.structural_matmul import matmul, matmul_p  # noqa: F401
