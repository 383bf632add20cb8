"""Optimizers, learning-rate schedules and gradient clipping, PyTorch's `torch.optim` for
chainrule `Tensor`s.

What this module lets you do: train the parameters of a `chainrule.nn.Module` (or any leaf
`Tensor`s that require grad) with `SGD` (momentum, Nesterov, weight decay), `Adam`, `AdamW`,
`RMSprop` or `Adagrad`, change the learning rate over time with `StepLR`,
`CosineAnnealingLR`, `LinearLR` (warm-up), `WarmupCosineLR` or `LambdaLR`, and rescale
gradients with `clip_grad_norm_` (or clamp them with `clip_grad_value_`).

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
arrays and numbers, so `cr.save(path, opt.state_dict())` stores it.

Complex parameters. `Tensor.grad` follows JAX's convention: for a real loss of a complex `z` it
is the conjugate of PyTorch's `z.grad` (`abs(z)**2` at `1+2j` gives `2-4j`, PyTorch `2+4j`).
Descent goes along PyTorch's gradient, so every optimizer here steps along `conj(z.grad)`, and
the adaptive ones (Adam, RMSprop, ...) treat a complex number as its pair (real, imaginary) of
real numbers, as PyTorch's `view_as_real` does: the same problem gives the same iterates as
PyTorch. Both happen in one place, `Optimizer.step`, so a subclass's `_update` only ever sees
real arrays. The optimizer's state for a complex parameter is complex, shaped like it.
"""

import math
import numbers

import numpy as np

from chainrule.core import DTypeError
from chainrule.tensor import Tensor, enable_grad, no_grad

__all__ = ['Optimizer', 'SGD', 'Adam', 'AdamW', 'RMSprop', 'Adagrad', 'LRScheduler', 'StepLR',
           'MultiStepLR', 'ExponentialLR', 'lr_scheduler',
           'CosineAnnealingLR', 'LinearLR', 'LambdaLR', 'WarmupCosineLR', 'clip_grad_norm_',
           'clip_grad_value_']


# hyperparameters that must be numbers >= 0 (PyTorch's checks), and those that must lie in [0, 1)
_NONNEGATIVE = ('lr', 'eps', 'momentum', 'weight_decay', 'alpha', 'lr_decay',
                'initial_accumulator_value')
_UNIT = ('betas',)


def _check_hyperparameters(name, group):
    """ValueError naming the hyperparameter when one is out of its range."""
    def number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v
    for k in _NONNEGATIVE:
        if k in group and not (number(group[k]) and group[k] >= 0):
            raise ValueError(f'{name}: {k}={group[k]!r} is invalid; it must be a number >= 0')
    for k in _UNIT:
        if k in group:
            v = group[k]
            if not (isinstance(v, tuple) and len(v) == 2 and
                    all(number(b) and 0 <= b < 1 for b in v)):
                raise ValueError(f'{name}: {k}={v!r} is invalid; it must be a pair of numbers '
                                 'in [0, 1), such as (0.9, 0.999)')


class Optimizer:
    """Base class: holds parameter groups (each a dict with `'params'` and hyperparameters)
    and per-parameter state; subclasses implement `_update(p, g, state, group)` on arrays.

    Args:
        params: an iterable of `Tensor`s, or of dicts `{'params': [...], 'lr': ..., ...}`
            (parameter groups, each overriding the defaults).
        defaults: the hyperparameters of a group that does not set them.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        params = list(params)
        if not params:
            raise ValueError(f'{type(self).__name__}: got an empty parameter list')
        groups = params if isinstance(params[0], dict) else [{'params': params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        """Add a dict `{'params': [...], hyperparameter: value, ...}`."""
        group = dict(group)
        ps = group['params']
        group['params'] = [ps] if isinstance(ps, Tensor) else list(ps)
        seen = {id(p) for g in self.param_groups for p in g['params']}
        for p in group['params']:
            if not isinstance(p, Tensor):
                raise TypeError(f'{type(self).__name__}: parameters must be Tensors, got '
                                f'{type(p).__name__}')
            if not p.is_leaf:
                raise ValueError(f'{type(self).__name__}: can only optimize leaf Tensors (a '
                                 'computed tensor is not a parameter)')
            if id(p) in seen:
                raise ValueError(f'{type(self).__name__}: a parameter appears in two groups')
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        _check_hyperparameters(type(self).__name__, group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of every parameter."""
        for g in self.param_groups:
            for p in g['params']:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor(np.zeros_like(p.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient.

        Args:
            closure: optional function that recomputes the loss (and calls `backward()`);
                its result is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group['params']:
                    if p.grad is None:
                        continue
                    g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad)
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {}
                    w = p.data
                    if w.dtype.kind == 'c':
                        _complex_update(self._update, w, g, state, group)
                    else:
                        self._update(w, g, state, group)
                    p._version[0] += 1
        return loss

    def _update(self, w, g, state, group):   # pragma: no cover - abstract
        raise NotImplementedError

    def _scratch(self, w):
        """A work array shaped like `w`, reused across steps: updates write their temporaries
        into it instead of allocating (large temporaries cost page faults on every step)."""
        cache = self.__dict__.setdefault('_scratch_cache', {})
        key = (w.shape, w.dtype)
        s = cache.get(key)
        if s is None:
            s = cache[key] = np.empty_like(w)
        return s

    def state_dict(self):
        """The optimizer's state as nested dicts of arrays and numbers (parameters referred to
        by their index across the groups, as PyTorch does), ready for `cr.save`."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group['params']:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != 'params'}, 'params': ids})
        state = {}
        for group in self.param_groups:
            for p in group['params']:
                if p in self.state:
                    state[index[id(p)]] = {k: np.array(v, copy=True) if isinstance(v, np.ndarray)
                                           else v for k, v in self.state[p].items()}
        return {'state': state, 'param_groups': groups}

    def load_state_dict(self, state_dict):
        """Restore the state saved by `state_dict()` (for the same parameters, in order)."""
        groups = state_dict['param_groups']
        if len(groups) != len(self.param_groups) or any(
                len(a['params']) != len(b['params']) for a, b in zip(groups, self.param_groups)):
            raise ValueError(f'{type(self).__name__}.load_state_dict: the saved state has '
                             f'{[len(g["params"]) for g in groups]} parameters per group, this '
                             f'optimizer {[len(g["params"]) for g in self.param_groups]}')
        params = [p for g in self.param_groups for p in g['params']]
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != 'params':
                    group[k] = v
        self.state = {}
        for i, st in state_dict['state'].items():
            p = params[int(i)]
            self.state[p] = {k: np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) and
                             v.ndim else (v.item() if isinstance(v, np.ndarray) else v)
                             for k, v in st.items()}


def _real_view(a):
    """A complex array as real numbers, sharing its memory: shape `a.shape + (2,)`, the last
    axis (real, imaginary) -- PyTorch's `view_as_real`."""
    return a[..., None].view(a.real.dtype)


def _complex_update(update, w, g, state, group):
    """Run the real-valued `update` on complex parameter `w`: along `conj(g)` (PyTorch's
    gradient; `g` is in JAX's convention), on real views of the parameter, the gradient and the
    state. State arrays the update creates are kept as complex arrays shaped like `w`."""
    g_pt = np.conj(g).astype(w.dtype, copy=False)
    view = {k: _real_view(v) if isinstance(v, np.ndarray) and v.dtype.kind == 'c' else v
            for k, v in state.items()}
    before = dict(view)
    update(_real_view(w), _real_view(np.ascontiguousarray(g_pt)), view, group)
    for k, v in view.items():
        if v is before.get(k):
            continue                      # an array updated in place through its view
        if isinstance(v, np.ndarray) and v.shape == w.shape + (2,) and v.dtype.kind == 'f':
            v = np.ascontiguousarray(v).view(w.dtype)[..., 0]   # back to complex, shape of w
        state[k] = v


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (heavy-ball or Nesterov) and L2
    weight decay: `v = momentum * v + (1 - dampening) * g`, `w -= lr * v` (Nesterov:
    `w -= lr * (g + momentum * v)`)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('SGD: Nesterov momentum needs momentum > 0 and dampening = 0')
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, w, g, state, group):
        lr, mom, wd = group['lr'], group['momentum'], group['weight_decay']
        if wd:
            g = g + wd * w
        if mom:
            buf = state.get('momentum_buffer')
            if buf is None:
                buf = state['momentum_buffer'] = np.array(g, dtype=w.dtype, copy=True)
            else:
                buf *= mom
                buf += (1 - group['dampening']) * g if group['dampening'] else g
            g = g + mom * buf if group['nesterov'] else buf
        s = self._scratch(w)
        np.multiply(g, lr, out=s)
        w -= s


class Adam(Optimizer):
    """Adam: moving averages of the gradient `m` and its square `v`, bias-corrected; the step
    is `lr * m_hat / (sqrt(v_hat) + eps)`. `weight_decay` adds L2 to the gradient (see
    `AdamW` for decoupled decay); `amsgrad` uses the running maximum of `v`."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, w, g, state, group):
        lr, (b1, b2), eps, wd = group['lr'], group['betas'], group['eps'], group['weight_decay']
        if wd:
            if self._decoupled:
                w *= 1 - lr * wd
            else:
                g = g + wd * w
        if not state:
            state['step'] = 0
            state['exp_avg'] = np.zeros_like(w)
            state['exp_avg_sq'] = np.zeros_like(w)
            if group['amsgrad']:
                state['max_exp_avg_sq'] = np.zeros_like(w)
        state['step'] += 1
        t = state['step']
        m, v, s = state['exp_avg'], state['exp_avg_sq'], self._scratch(w)
        np.subtract(g, m, out=s)                  # m += (1 - b1) (g - m)
        s *= 1 - b1
        m += s
        np.multiply(g, g, out=s)                  # v = b2 v + (1 - b2) g^2
        s *= 1 - b2
        v *= b2
        v += s
        if group['amsgrad']:
            np.maximum(state['max_exp_avg_sq'], v, out=state['max_exp_avg_sq'])
            v = state['max_exp_avg_sq']
        np.sqrt(v, out=s)                         # denom = sqrt(v / (1 - b2^t)) + eps
        s /= math.sqrt(1 - b2 ** t)
        s += eps
        np.divide(m, s, out=s)                    # w -= lr / (1 - b1^t) * m / denom
        s *= lr / (1 - b1 ** t)
        w -= s


class AdamW(Adam):
    """Adam with decoupled weight decay: `w *= 1 - lr * weight_decay` before the Adam step
    (default decay 0.01, as PyTorch)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by the root of a moving average of its square
    (`centered`: of its variance), with optional momentum and L2 weight decay."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, w, g, state, group):
        lr, alpha, eps = group['lr'], group['alpha'], group['eps']
        if group['weight_decay']:
            g = g + group['weight_decay'] * w
        if not state:
            state['step'] = 0
            state['square_avg'] = np.zeros_like(w)
            if group['momentum'] > 0:
                state['momentum_buffer'] = np.zeros_like(w)
            if group['centered']:
                state['grad_avg'] = np.zeros_like(w)
        state['step'] += 1
        sq = state['square_avg']
        sq *= alpha
        sq += (1 - alpha) * (g * g)
        if group['centered']:
            ga = state['grad_avg']
            ga += (1 - alpha) * (g - ga)
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if group['momentum'] > 0:
            buf = state['momentum_buffer']
            buf *= group['momentum']
            buf += g / avg
            w -= lr * buf
        else:
            w -= lr * (g / avg)


class Adagrad(Optimizer):
    """Adagrad: divide the gradient by the root of the running sum of its squares, with a
    learning rate decayed as `lr / (1 + (step - 1) * lr_decay)` and optional L2 weight decay
    (PyTorch's hyperparameters and defaults)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _update(self, w, g, state, group):
        if group['weight_decay']:
            g = g + group['weight_decay'] * w
        if not state:
            state['step'] = 0
            state['sum'] = np.full_like(w, group['initial_accumulator_value'])
        state['step'] += 1
        clr = group['lr'] / (1 + (state['step'] - 1) * group['lr_decay'])
        acc, s = state['sum'], self._scratch(w)
        np.multiply(g, g, out=s)
        acc += s
        np.sqrt(acc, out=s)
        s += group['eps']
        np.divide(g, s, out=s)
        s *= clr
        w -= s


# --- learning-rate schedules -------------------------------------------------------------------

class LRScheduler:
    """Base class: sets each group's `lr` to `factor(epoch) * initial lr` at every `step()`.
    As in PyTorch, constructing the scheduler applies epoch 0, and you call `step()` after
    `optimizer.step()` (per epoch or per batch: the unit is yours)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault('initial_lr', g['lr'])
        self.base_lrs = [g['initial_lr'] for g in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr, epoch):   # pragma: no cover - abstract
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g['lr'] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [g['lr'] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {'last_epoch': self.last_epoch, 'base_lrs': list(self.base_lrs)}

    def load_state_dict(self, state):
        self.base_lrs = [float(b) for b in state['base_lrs']]
        self.last_epoch = int(state['last_epoch']) - 1
        self.step()


class StepLR(LRScheduler):
    """`lr = initial * gamma ** (epoch // step_size)`."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """`lr = initial * gamma ** (number of milestones <= epoch)`."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)


class ExponentialLR(LRScheduler):
    """`lr = initial * gamma ** epoch`."""

    def __init__(self, optimizer, gamma):
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """`lr = eta_min + (initial - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from `start_factor` to `end_factor` over
    `total_iters` steps, then stays."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor, self.end_factor, self.total_iters = \
            start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class LambdaLR(LRScheduler):
    """`lr = initial * lr_lambda(epoch)`."""

    def __init__(self, optimizer, lr_lambda):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.lr_lambda(epoch)


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from `start_factor * initial` over `warmup_steps`, then cosine decay to
    `eta_min` at `total_steps` (and `eta_min` after)."""

    def __init__(self, optimizer, warmup_steps, total_steps, eta_min=0.0, start_factor=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f'WarmupCosineLR: need 0 <= warmup_steps ({warmup_steps}) < '
                             f'total_steps ({total_steps})')
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.eta_min, self.start_factor = eta_min, start_factor
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        if epoch < self.warmup_steps:
            f = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_steps
            return base_lr * f
        t = min(epoch - self.warmup_steps, self.total_steps - self.warmup_steps)
        T = self.total_steps - self.warmup_steps
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / T)) / 2


# --- gradient clipping ----------------------------------------------------------------------

def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale the gradients of `parameters` together so their joint norm is at most `max_norm`
    (PyTorch's rule: multiply by `min(1, max_norm / (norm + 1e-6))`).

    Args:
        parameters: an iterable of Tensors (or one Tensor); those without `.grad` are skipped.
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm (2 by default; `float('inf')` for the largest entry).

    Returns:
        The joint norm before clipping, a float.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    arrays = [np.asarray(g.data) for g in grads]
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    else:
        total = sum(float(np.sum(np.abs(a) ** norm_type)) for a in arrays) ** (1.0 / norm_type)
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        with no_grad():
            for g in grads:
                g.data = g.data * np.asarray(coef, g.dtype)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry of `parameters` into `[-clip_value, clip_value]`, in place
    (PyTorch's `clip_grad_value_`).

    Args:
        parameters: an iterable of Tensors (or one Tensor); those without `.grad` are skipped.
        clip_value: the largest allowed absolute value of a gradient entry.

    Raises:
        DTypeError: a complex gradient (a clamp has no meaning for complex numbers; PyTorch
            refuses too): clip the norm with `clip_grad_norm_` instead.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    c = float(clip_value)
    grads = [p.grad for p in parameters if p.grad is not None]
    for g in grads:
        if g.dtype.kind == 'c':
            raise DTypeError(f'clip_grad_value_: a gradient of dtype {g.dtype} cannot be clamped '
                             '(complex numbers have no order); use clip_grad_norm_, which '
                             'rescales complex gradients by their modulus')
    with no_grad():
        for g in grads:
            g.data = np.clip(g.data, -c, c).astype(g.dtype, copy=False)


# `optim.lr_scheduler`, PyTorch's module of schedulers, as an alias of the ones above
# (`cr.optim.lr_scheduler.StepLR`, `from chainrule.optim.lr_scheduler import StepLR`)
def _scheduler_module():
    import sys
    import types
    m = types.ModuleType(__name__ + '.lr_scheduler', 'PyTorch\'s `optim.lr_scheduler` names: '
                         'the schedulers of `chainrule.optim`.')
    names = ['LRScheduler', 'StepLR', 'MultiStepLR', 'ExponentialLR', 'CosineAnnealingLR',
             'LinearLR', 'LambdaLR', 'WarmupCosineLR']
    for n in names:
        setattr(m, n, globals()[n])
    m.__all__ = names
    sys.modules[m.__name__] = m
    return m


lr_scheduler = _scheduler_module()
