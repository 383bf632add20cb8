"""chainrule: exact derivatives of Python and NumPy programs.

One engine, four ways of working: the scalar `Value` (micrograd's model), eager `Tensor`s with
`backward()` (PyTorch's), function transforms on NumPy code (`grad`, ... -- JAX's), and `jit`.
"""

from . import ops, tree, viz
from .api import grad, stop_gradient, value_and_grad, vjp
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled, tensor
from .core import (ChainruleError, DTypeError, GradientError, IndexOutOfRangeError,
                   MissingRuleError, OutputTypeError, ShapeError)
from .scalar import Value
from . import custom
from .custom import custom_jvp, custom_vjp
from .checkpoint import checkpoint, remat
from . import data, nn, optim
from .io import load, save
from .transforms import (elementwise_grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp,
                         linearize, vmap)
from .jit import jit, make_graph
from .export import export, load_graph
from . import lax
from . import sparse
from .implicit import custom_root, fixed_point

__version__ = "0.1.0"
