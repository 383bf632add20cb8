"""Optimizers, learning-rate schedules and gradient clipping, PyTorch's `torch.optim` for
chainrule `Tensor`s.

What this module lets you do: train the parameters of a `chainrule.nn.Module` (or any leaf
`Tensor`s that require grad) with `SGD` (momentum, Nesterov, weight decay), `Adam`, `AdamW`,
`NAdam`, `Adamax`, `RMSprop`, `Adagrad`, `Adadelta` (each with `maximize=`) or `LBFGS` (with a
closure and an optional strong-Wolfe line search), change the learning rate over time with the
schedulers of `optim.lr_scheduler` (`StepLR`, `MultiStepLR`, `ExponentialLR`,
`CosineAnnealingLR`, `LinearLR`, `LambdaLR`, `OneCycleLR`, `ReduceLROnPlateau`,
`WarmupCosineLR`), and rescale gradients with `clip_grad_norm_` (or clamp them with
`clip_grad_value_`).

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor(np.array([1.0, -2.0]), requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                    # w -= 0.1 * 2w
    >>> w
    Tensor([ 0.8, -1.6], requires_grad=True)

The update formulas, hyperparameter names and defaults are PyTorch's, so a few steps here match
PyTorch's on the same parameters and gradients. An update works on the NumPy arrays directly
(`p.data` is modified in place under `no_grad`, and the tensor's version counter is bumped so a
graph that saved the old value refuses to backpropagate through it); optimizer state is NumPy
arrays and numbers in PyTorch's layout, so `cr.save(path, opt.state_dict())` stores it, and
`load_state_dict` resumes with the same iterates as an uninterrupted run (it also takes a
PyTorch optimizer's state dict converted to NumPy).

Files: `optimizer.py` (the base class, state dicts, complex parameters), `first_order.py` (the
gradient-step optimizers), `lbfgs.py`, `lr_scheduler.py`, `clip.py`.

Complex parameters. `Tensor.grad` follows JAX's convention: for a real loss of a complex `z` it
is the conjugate of PyTorch's `z.grad` (`abs(z)**2` at `1+2j` gives `2-4j`, PyTorch `2+4j`).
Descent goes along PyTorch's gradient, so every optimizer here steps along `conj(z.grad)`, and
the adaptive ones (Adam, RMSprop, ...) treat a complex number as its pair (real, imaginary) of
real numbers, as PyTorch's `view_as_real` does: the same problem gives the same iterates as
PyTorch. Both happen in one place, `Optimizer.step` (for `LBFGS`, which sees all parameters as
one flat real vector, in `optimizer._pytorch_grad`), so a subclass's `_update` only ever sees
real arrays. The optimizer's state for a complex parameter is complex, shaped like it.
"""

from chainrule.optim import lr_scheduler
from chainrule.optim.clip import clip_grad_norm_, clip_grad_value_
from chainrule.optim.first_order import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam,
                                         RMSprop)
from chainrule.optim.lbfgs import LBFGS
from chainrule.optim.lr_scheduler import (ChainedScheduler, ConstantLR, CosineAnnealingLR,
                                          CosineAnnealingWarmRestarts, CyclicLR, ExponentialLR,
                                          LambdaLR, LinearLR, LRScheduler, MultiplicativeLR,
                                          MultiStepLR, OneCycleLR, PolynomialLR,
                                          ReduceLROnPlateau, SequentialLR, StepLR,
                                          WarmupCosineLR)
from chainrule.optim.optimizer import Optimizer

__all__ = ['Optimizer', 'SGD', 'Adam', 'AdamW', 'NAdam', 'Adamax', 'RMSprop', 'Adagrad',
           'Adadelta', 'LBFGS', 'lr_scheduler', 'LRScheduler', 'StepLR', 'MultiStepLR',
           'ExponentialLR', 'CosineAnnealingLR', 'LinearLR', 'LambdaLR', 'WarmupCosineLR',
           'OneCycleLR', 'ReduceLROnPlateau', 'ConstantLR', 'PolynomialLR', 'MultiplicativeLR',
           'CosineAnnealingWarmRestarts', 'CyclicLR', 'SequentialLR', 'ChainedScheduler',
           'clip_grad_norm_', 'clip_grad_value_']
