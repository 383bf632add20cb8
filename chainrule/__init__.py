"""chainrule: exact derivatives of Python and NumPy programs.

One engine, four ways of working: the scalar `Value` (micrograd's model), eager `Tensor`s with
`backward()` (PyTorch's), function transforms on NumPy code (`grad`, ... -- JAX's), and `jit`.
"""

from . import viz
from .scalar import Value

__version__ = "0.1.0"
