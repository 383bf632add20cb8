"""`chainrule.func`: PyTorch's `torch.func` names and signatures on chainrule's transforms, for
code that computes per-example gradients, ensembles or Jacobians of `nn` modules.

What this module lets you do: call a module with parameters you pass in (`functional_call`),
stack the parameters of several models (`stack_module_state`), and transform such calls with
`grad`, `grad_and_value`, `vmap`, `vjp`, `jvp`, `jacrev`, `jacfwd`, `hessian`, `linearize`
spelled as in `torch.func` (`in_dims=`, `out_dims=`, `grad_and_value` giving `(grad, value)`).

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn, func
    >>> import chainrule.nn.functional as F
    >>> model = nn.Linear(3, 2, rng=0)
    >>> params = {k: v.detach() for k, v in model.named_parameters()}
    >>> def loss(p, x, y):                     # one example
    ...     return F.cross_entropy(func.functional_call(model, p, (x[None],)), y[None])
    >>> x, y = np.ones((4, 3)), np.array([0, 1, 1, 0])
    >>> per_example = func.vmap(func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    >>> per_example['weight'].shape
    (4, 2, 3)

Each function is the chainrule transform of the same meaning (see `chainrule.grad` and
friends); `vmap`'s `randomness=` is PyTorch's ('error', 'same' or 'different' draws per
example), and `chunk_size=` is accepted and ignored (chainrule vectorises whole). One
difference: the gradient of a real function of complex values follows chainrule's (JAX's)
convention, the conjugate of what `torch.func.grad` gives; step along `conj(grad)` (as
`chainrule.optim` does) to follow PyTorch's iterates.
"""

import functools

import numpy as np

from chainrule import api, transforms
from chainrule._tensor_face_args import tensor_mask, torch_faced
from chainrule.core import ChainruleError, innermost_trace
from chainrule.random._staged import VmapRandomness

__all__ = ['functional_call', 'stack_module_state', 'grad', 'grad_and_value', 'vmap', 'vjp',
           'jvp', 'jacrev', 'jacfwd', 'hessian', 'linearize']


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *,
                    tie_weights=True, strict=False):
    """Call `module(*args, **kwargs)` with its parameters and buffers named in the dict(s)
    replaced by the given values (arrays, Tensors, or values traced by a transform), leaving
    `module` itself unchanged -- PyTorch's `torch.func.functional_call`.

    Args:
        module: an `nn.Module`.
        parameter_and_buffer_dicts: a dict `name -> value` (names as `named_parameters()` /
            `named_buffers()` give them), or a list/tuple of such dicts (no name twice).
        args: the positional arguments (a tuple, or one value).
        kwargs: the keyword arguments.
        tie_weights: kept for PyTorch's signature; a parameter reachable under two names is one
            object, replaced once (`True` is the only behaviour).
        strict: every parameter and buffer must be given.

    Raises:
        ChainruleError: a name that is not a parameter or buffer of `module`, a name given
            twice, or (with `strict`) a missing one.
    """
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, dict):
        dicts = [dicts]
    merged = {}
    for d in dicts:
        for k, v in d.items():
            if k in merged:
                raise ChainruleError(f'functional_call: {k!r} is given in more than one dict')
            merged[k] = v
    own = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    unknown = sorted(set(merged) - set(own))
    if unknown:
        raise ChainruleError(f'functional_call: {unknown} are not parameters or buffers of '
                             f'{type(module).__name__} (it has {own})')
    if strict:
        missing = [n for n in own if n not in merged]
        if missing:
            raise ChainruleError(f'functional_call(strict=True): missing {missing}')
    if not tie_weights:
        raise ChainruleError('functional_call: tie_weights=False is not supported (a tied '
                             'parameter is one object in chainrule)')
    args = () if args is None else args if isinstance(args, tuple) else (args,)
    return module._replace_parameters(merged)(*args, **(kwargs or {}))


def stack_module_state(models):
    """`(params, buffers)`: dicts `name -> array` stacking each parameter (and buffer) of
    `models` (modules of one structure) along a new first axis -- for `vmap` over an ensemble
    with `functional_call`, as `torch.func.stack_module_state`."""
    models = list(models)
    if not models:
        raise ChainruleError('stack_module_state: no models given')
    out = []
    for named in ('named_parameters', 'named_buffers'):
        names = [n for n, _ in getattr(models[0], named)()]
        for m in models[1:]:
            if [n for n, _ in getattr(m, named)()] != names:
                raise ChainruleError(f'stack_module_state: the models differ in their '
                                     f'{named[6:]} ({type(m).__name__})')
        out.append({n: np.stack([np.asarray(dict(getattr(m, named)())[n].data)
                                 for m in models]) for n in names})
    return tuple(out)


def _as_tensors(tree):
    """`tree` with its NumPy arrays as Tensors, and its functions (`vjp`'s `vjp_fn`) giving
    Tensors."""
    from chainrule.tensor import Tensor
    from chainrule.tree import tree_map

    def leaf(x):
        if isinstance(x, (np.ndarray, np.generic)):
            return Tensor._wrap(np.asarray(x), None)
        if callable(x) and not isinstance(x, Tensor):
            return functools.wraps(x)(lambda *a, **k: _as_tensors(x(*a, **k)))
        return x
    return tree_map(leaf, tree)


def _tensor_results(transformed):
    """`transformed` (a transform applied to a function) giving Tensors where it was given
    Tensors: what a transform computes without running a Tensor operation (a custom rule's
    cotangent, a zero gradient, a jitted program's output) comes back as a NumPy array, whose
    methods mean NumPy's (`g.std()`, `g.transpose(0, 1)`) -- not what torch.func's caller
    expects."""
    @functools.wraps(transformed)
    def call(*args, **kwargs):
        out = transformed(*args, **kwargs)
        return out if tensor_mask(args) is None else _as_tensors(out)
    return call


def grad(func, argnums=0, has_aux=False):
    """`torch.func.grad`: the gradient of `func`'s scalar output with respect to `argnums`
    (with `has_aux`, `func` returns `(output, aux)` and this gives `(grad, aux)`)."""
    return _tensor_results(api.grad(torch_faced(func), argnums=argnums, has_aux=has_aux))


def grad_and_value(func, argnums=0, has_aux=False):
    """`torch.func.grad_and_value`: `(grad, value)` (PyTorch's order; JAX's `value_and_grad`
    gives `(value, grad)`); with `has_aux`, `(grad, (value, aux))`."""
    vg = api.value_and_grad(torch_faced(func), argnums=argnums, has_aux=has_aux)

    def g(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return grads, value
    g.__name__ = f'grad_and_value({getattr(func, "__name__", "f")})'
    return _tensor_results(g)


def vmap(func, in_dims=0, out_dims=0, randomness='error', *, chunk_size=None):
    """`torch.func.vmap`: `func` mapped over axis `in_dims` of its arguments (None: not
    mapped), results stacked along `out_dims`.

    `randomness` says what a draw from chainrule's eager generators inside `func` (dropout,
    `cr.randn`, `nn.init`) means, as in PyTorch: 'error' (the default) raises
    `RandomnessError`; 'same' draws once for the whole batch (what `chainrule.vmap` does);
    'different' draws once per example (also under an enclosing `jit`)."""
    if randomness not in ('error', 'different', 'same'):
        raise ValueError(f"vmap: randomness must be 'error', 'different' or 'same', got "
                         f'{randomness!r}')

    def body(*args, **kwargs):
        # called by vmap right inside its batching level: that trace is the innermost one
        with VmapRandomness(randomness, innermost_trace()):
            return torch_faced(func)(*args, **kwargs)
    body.__name__ = getattr(func, '__name__', 'f')
    return _tensor_results(transforms.vmap(body, in_axes=in_dims, out_axes=out_dims))


def vjp(func, *primals, has_aux=False):
    """`torch.func.vjp`: `(output, vjp_fn)` (and `aux` with `has_aux`)."""
    return _tensor_results(api.vjp)(torch_faced(func), *primals, has_aux=has_aux)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """`torch.func.jvp`: `(output, jvp_out)` (and `aux` with `has_aux`)."""
    return _tensor_results(transforms.jvp)(torch_faced(func), tuple(primals), tuple(tangents),
                                           has_aux=has_aux)


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None):
    """`torch.func.jacrev`: the Jacobian by reverse mode."""
    return _tensor_results(transforms.jacrev(torch_faced(func), argnums=argnums,
                                             has_aux=has_aux))


def jacfwd(func, argnums=0, has_aux=False, *, randomness='error'):
    """`torch.func.jacfwd`: the Jacobian by forward mode."""
    return _tensor_results(transforms.jacfwd(torch_faced(func), argnums=argnums,
                                             has_aux=has_aux))


def hessian(func, argnums=0):
    """`torch.func.hessian`: the Hessian (forward over reverse)."""
    return _tensor_results(transforms.hessian(torch_faced(func), argnums=argnums))


def linearize(func, *primals):
    """`torch.func.linearize`: `(output, jvp_fn)`."""
    return _tensor_results(transforms.linearize)(torch_faced(func), *primals)
