"""`chainrule.autograd`: PyTorch's `torch.autograd.grad` for `Tensor` graphs.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> (g,) = cr.autograd.grad((x ** 3).sum(), x, create_graph=True)
    >>> g                                   # 3 x**2, itself differentiable
    Tensor([ 3., 12.], grad_fn=mul)

Unlike `backward()`, it returns the gradients instead of accumulating them into `.grad`, and
touches no `.grad` at all. `Function` is PyTorch's `torch.autograd.Function` (on
`chainrule.custom_vjp`); its saved tensors are constants in `backward`, so a `Function` is
differentiated once (a second derivative through its `backward` is not recorded).
"""

import functools

import numpy as np

from chainrule.core import GradientError, ShapeError
from chainrule.tensor import Tensor, _tape_off, _wrap_differentiable, enable_grad
from chainrule.interpreters.reverse import backprop

__all__ = ['grad', 'Function', 'FunctionCtx']


def _as_list(x):
    return [x] if isinstance(x, Tensor) else list(x)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of `outputs` (weighted by `grad_outputs`) with respect to `inputs`.

    Args:
        outputs: a Tensor or a sequence of Tensors.
        inputs: a Tensor or a sequence of Tensors that require grad (leaves or not).
        grad_outputs: the cotangent of each output (may be omitted for one-element outputs).
        retain_graph: keep the graph for another backward pass (default: `create_graph`).
        create_graph: record the gradient computation, so the results can be differentiated
            again (gradient penalties, Hessian-vector products).
        allow_unused: return None for an input the outputs do not depend on (else an error).

    Returns:
        a tuple with one gradient Tensor (or None) per input.
    """
    outs, ins = _as_list(outputs), _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    gos = [None] * len(outs) if grad_outputs is None else _as_list(grad_outputs)
    if len(gos) != len(outs):
        raise ShapeError(f'autograd.grad: {len(outs)} outputs but {len(gos)} grad_outputs')
    roots, cts = [], []
    for k, (o, g) in enumerate(zip(outs, gos)):
        if not (isinstance(o, Tensor) and o.requires_grad):
            raise GradientError(f'autograd.grad: output {k} does not require grad (no input '
                                'that requires grad reaches it)')
        if g is None:
            if o.numel() != 1:
                raise GradientError(f'autograd.grad: output {k} has shape {o.shape}; pass '
                                    'grad_outputs= for outputs with more than one element')
            g = np.ones(o.shape, o.dtype)
        else:
            g = g.data if isinstance(g, Tensor) else np.asarray(g, o.dtype)
            if tuple(np.shape(g)) != tuple(o.shape):
                raise ShapeError(f'autograd.grad: grad_outputs[{k}] has shape {np.shape(g)}, '
                                 f'output {k} has shape {o.shape}')
        roots.append(o._node)
        cts.append(g)
    wanted = {}
    for k, t in enumerate(ins):
        if not (isinstance(t, Tensor) and t.requires_grad):
            raise GradientError(f'autograd.grad: input {k} does not require grad')
        wanted.setdefault(id(t._node), []).append(k)
    found = {}
    hooked = []
    for t in ins:
        node = t._node
        if node.prim is not None and id(node) not in found:     # a non-leaf input
            def capture(g, key=id(node)):
                found[key] = g
            if node.hooks is None:
                node.hooks = []
            node.hooks.append(capture)
            hooked.append((node, capture))
            found[id(node)] = None

    def on_leaf(node, g):
        if id(node) in wanted:
            found[id(node)] = g

    trace = outs[0]._trace
    try:
        if create_graph:
            with enable_grad():
                backprop(roots, [Tensor._wrap(g, None, trace) for g in cts], retain_graph=True,
                         wrap=functools.partial(_wrap_differentiable, trace), on_leaf=on_leaf)
        else:
            with _tape_off():
                backprop(roots, cts, retain_graph=retain_graph, on_leaf=on_leaf)
    finally:
        for node, hook in hooked:
            node.hooks.remove(hook)
    result = [None] * len(ins)
    for k, t in enumerate(ins):
        g = found.get(id(t._node))
        if g is None:
            if not allow_unused:
                raise GradientError(f'autograd.grad: input {k} was not used to compute the '
                                    'outputs; pass allow_unused=True to get None for it')
            continue
        if not isinstance(g, Tensor):
            g = Tensor._wrap(np.array(g, copy=True) if isinstance(g, np.ndarray) else g, None,
                             trace)
        if g.dtype != t.dtype and g.dtype.kind == 'c' and t.dtype.kind != 'c':
            g = g.real
        result[k] = g
    return tuple(result)


class FunctionCtx:
    """The `ctx` of a `Function`: `save_for_backward(*tensors)`, `saved_tensors`,
    `needs_input_grad`, and any attribute you set in `forward`."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save_for_backward(self, *tensors):
        self._saved = tuple(tensors)

    @property
    def saved_tensors(self):
        return self._saved


class Function:
    """PyTorch's `torch.autograd.Function`: subclass it with static `forward(ctx, *args)` and
    `backward(ctx, *grad_outputs)` (one gradient, or None, per `forward` argument) and call
    `MyFunction.apply(*args)`. Built on `chainrule.custom_vjp`: the recorded operation's
    derivative is your `backward`. `forward` runs without recording, on Tensors."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError('Function subclasses define forward(ctx, *args)')

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError('Function subclasses define backward(ctx, *grad_outputs)')

    @classmethod
    def apply(cls, *args):
        from chainrule.custom import custom_vjp
        pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        multi = []

        def run(*xs):
            full = list(args)
            for i, x in zip(pos, xs):
                full[i] = x if isinstance(x, Tensor) else Tensor(x)
            with _tape_off():
                out = cls.forward(ctx, *full)
            multi[:] = [isinstance(out, tuple)]
            outs = out if isinstance(out, tuple) else (out,)
            res = tuple(o.data if isinstance(o, Tensor) else np.asarray(o) for o in outs)
            return res if multi[0] else res[0]

        def fwd(*xs):
            return run(*xs), None

        def bwd(_, g):
            gs = g if isinstance(g, tuple) else (g,)
            with _tape_off():
                grads = cls.backward(ctx, *[x if isinstance(x, Tensor) else Tensor(x)
                                            for x in gs])
            grads = grads if isinstance(grads, tuple) else (grads,)
            if len(grads) != len(args):
                raise GradientError(f'{cls.__name__}.backward returned {len(grads)} gradients; '
                                    f'forward took {len(args)} arguments (one each, None '
                                    'where there is none)')
            out = []
            for i in pos:
                gi = grads[i]
                if gi is None:
                    gi = np.zeros(args[i].shape, args[i].dtype)
                out.append(gi.data if isinstance(gi, Tensor) else gi)
            return tuple(out)

        f = custom_vjp(run)
        f.defvjp(fwd, bwd)
        return f(*[args[i] for i in pos])
