"""`einsum` (UNFINISHED: being built)."""


def einsum(subscripts, *operands):
    raise NotImplementedError('einsum is not implemented yet')
