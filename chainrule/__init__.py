"""chainrule: exact derivatives of Python and NumPy programs.

One engine, four ways of working: the scalar `Value` (micrograd's model), eager `Tensor`s with
`backward()` (PyTorch's), function transforms on NumPy code (`grad`, ... -- JAX's), and `jit`.
"""

from . import ops, tree, viz
from .api import grad, stop_gradient, value_and_grad, vjp
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled, tensor
from .core import (ChainruleError, DTypeError, GradientError, IndexOutOfRangeError,
                   MissingRuleError, OutputTypeError, ShapeError)
from ._args import ArgumentError
from .scalar import Value
from . import custom
from .custom import custom_jvp, custom_vjp
from .checkpoint import checkpoint, remat
from . import data, nn, optim
from .io import LoadError, load, save
from .transforms import (elementwise_grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp,
                         linearize, vmap)
from .jit import jit, make_graph
# `chainrule.export` is the module, callable as the function (`cr.export(f, *example_args)`)
from . import export
from .export import GraphFormatError, load_graph
from . import lax
from . import random
from . import testing
from . import debug
from .debug import config, coverage, debug_nans, explain, explain_grad, memory_report
from . import sparse
from .implicit import custom_root, fixed_point
# Tensor's PyTorch face (methods with PyTorch's meaning) and PyTorch's factories and dtype names
from . import _torch_face  # noqa: F401  (installs the methods on Tensor)
from . import factories
from . import autograd
from . import func
from .factories import *  # noqa: F401,F403
# PyTorch's top-level functions (cr.exp(t), cr.sum(t, dim=1), cr.where, cr.topk, cr.einsum, ...),
# its linear algebra namespace and `torch.utils.data`'s spelling
from . import _torch_functions
from ._torch_functions import *  # noqa: F401,F403
from . import linalg, utils

__version__ = "0.1.0"

__all__ = [
    # the four ways of working
    'Value', 'Tensor', 'tensor', 'no_grad', 'enable_grad', 'set_grad_enabled', 'is_grad_enabled',
    'grad', 'value_and_grad', 'vjp', 'jvp', 'vmap', 'jacfwd', 'jacrev', 'jacobian', 'hessian',
    'hvp', 'linearize', 'elementwise_grad', 'stop_gradient', 'custom_vjp', 'custom_jvp',
    'checkpoint', 'remat', 'jit', 'make_graph', 'export', 'load_graph', 'save', 'load',
    'fixed_point', 'custom_root', 'sparse',
    'autograd', 'func',
    # PyTorch's factories, randomness and dtype names (chainrule.factories)
    *factories.__all__,
    # PyTorch's top-level functions (chainrule._torch_functions) and namespaces
    *_torch_functions.__all__, 'linalg', 'utils',
    # diagnostics
    'coverage', 'debug_nans', 'config', 'explain_grad', 'explain', 'memory_report',
    # errors
    'ChainruleError', 'ShapeError', 'DTypeError', 'GradientError', 'OutputTypeError',
    'IndexOutOfRangeError', 'MissingRuleError', 'ArgumentError', 'GraphFormatError', 'LoadError',
]
