"""First-order optimizers, PyTorch's update rules: `SGD`, `Adam`, `AdamW`, `NAdam`, `Adamax`,
`RMSprop`, `Adagrad`, `Adadelta`.

Each `_update` works in place on NumPy arrays and performs PyTorch's single-tensor update in
the same order of floating-point operations, so float64 iterates agree with PyTorch's to a few
units in the last place. `maximize` and complex parameters are handled once, in
`Optimizer.step`.
"""

import math

import numpy as np

from chainrule.optim.optimizer import Optimizer, implementation_switches


def _count_step(state, w, *names):
    """On the first step, create the state: `step` and a zero array like `w` per name; then
    advance the step count and return it."""
    if not state:
        state['step'] = 0
        for n in names:
            state[n] = np.zeros_like(w)
    state['step'] += 1
    return state['step']


def _l2(g, w, group):
    """PyTorch's (coupled) weight decay: the gradient of `wd/2 * |w|^2` added to `g`."""
    wd = group['weight_decay']
    return g + wd * w if wd else g


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (heavy-ball or Nesterov) and L2
    weight decay: `v = momentum * v + (1 - dampening) * g`, `w -= lr * v` (Nesterov:
    `w -= lr * (g + momentum * v)`). `maximize=True` ascends."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, **switches):
        implementation_switches('SGD', 'foreach differentiable fused', switches)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('SGD: Nesterov momentum needs momentum > 0 and dampening = 0')
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, w, g, state, group):
        lr, mom = group['lr'], group['momentum']
        g = _l2(g, w, group)
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
    is `lr * m_hat / (sqrt(v_hat) + eps)`. `weight_decay` adds L2 to the gradient, or, with
    `decoupled_weight_decay=True` (= `AdamW`), shrinks the weights by `1 - lr * weight_decay`;
    `amsgrad` uses the running maximum of `v`; `maximize=True` ascends."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False, **switches):
        implementation_switches('Adam', 'foreach capturable differentiable fused', switches)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, w, g, state, group):
        lr, (b1, b2), eps = group['lr'], group['betas'], group['eps']
        g = _weight_decay(w, g, group)
        t = _count_step(state, w, 'exp_avg', 'exp_avg_sq',
                        *(('max_exp_avg_sq',) if group['amsgrad'] else ()))
        m, v, s = state['exp_avg'], state['exp_avg_sq'], self._scratch(w)
        _moments(m, v, g, b1, b2, s)
        if group['amsgrad']:
            np.maximum(state['max_exp_avg_sq'], v, out=state['max_exp_avg_sq'])
            v = state['max_exp_avg_sq']
        np.sqrt(v, out=s)                         # denom = sqrt(v) / sqrt(1 - b2^t) + eps
        s /= math.sqrt(1 - b2 ** t)
        s += eps
        np.divide(m, s, out=s)                    # w -= lr / (1 - b1^t) * m / denom
        s *= lr / (1 - b1 ** t)
        w -= s


def _weight_decay(w, g, group):
    """Adam's and NAdam's weight decay: decoupled (shrink `w` in place) or L2 (into `g`)."""
    wd = group['weight_decay']
    if wd and group.get('decoupled_weight_decay'):
        w *= 1 - group['lr'] * wd
        return g
    return _l2(g, w, group)


def _moments(m, v, g, b1, b2, s):
    """`m += (1 - b1) (g - m)` (PyTorch's `lerp`), `v = b2 v + (1 - b2) g^2`, in place, with
    scratch array `s`."""
    np.subtract(g, m, out=s)
    s *= 1 - b1
    m += s
    np.multiply(g, g, out=s)
    s *= 1 - b2
    v *= b2
    v += s


class AdamW(Adam):
    """Adam with decoupled weight decay: `w *= 1 - lr * weight_decay` before the Adam step
    (default decay 0.01, as PyTorch)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, **switches):
        implementation_switches('AdamW', 'foreach capturable differentiable fused', switches)
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


class NAdam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016), PyTorch's `NAdam`: the momentum coefficient
    `mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2)` warms up over the steps, and the step mixes
    the current gradient and the look-ahead average,
    `w -= lr (1 - mu_t) / (1 - prod mu) g / d + lr mu_{t+1} / (1 - prod mu * mu_{t+1}) m / d`
    with `d = sqrt(v / (1 - beta2^t)) + eps`. `decoupled_weight_decay=True` is NAdamW."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False,
                 **switches):
        implementation_switches('NAdam', 'foreach capturable differentiable', switches)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _update(self, w, g, state, group):
        lr, (b1, b2), eps, psi = group['lr'], group['betas'], group['eps'], \
            group['momentum_decay']
        t = _count_step(state, w, 'exp_avg', 'exp_avg_sq')
        state.setdefault('mu_product', 1.0)
        g = _weight_decay(w, g, group)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state['mu_product'] *= mu
        prod = state['mu_product']
        m, v, s = state['exp_avg'], state['exp_avg_sq'], self._scratch(w)
        _moments(m, v, g, b1, b2, s)
        np.divide(v, 1 - b2 ** t, out=s)
        np.sqrt(s, out=s)
        s += eps
        w -= (lr * (1.0 - mu) / (1.0 - prod)) * (g / s)
        w -= (lr * mu_next / (1.0 - prod * mu_next)) * (m / s)


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm: `u = max(beta2 u, |g| + eps)`,
    `w -= lr / (1 - beta1^t) * m / u` (PyTorch's defaults)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 maximize=False, **switches):
        implementation_switches('Adamax', 'foreach capturable differentiable', switches)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize))

    def _update(self, w, g, state, group):
        lr, (b1, b2), eps = group['lr'], group['betas'], group['eps']
        t = _count_step(state, w, 'exp_avg', 'exp_inf')
        g = _l2(g, w, group)
        m, u, s = state['exp_avg'], state['exp_inf'], self._scratch(w)
        np.subtract(g, m, out=s)
        s *= 1 - b1
        m += s
        np.abs(g, out=s)
        s += eps
        u *= b2
        np.maximum(u, s, out=u)
        np.divide(m, u, out=s)
        s *= lr / (1 - b1 ** t)
        w -= s


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by the root of a moving average of its square
    (`centered`: of its variance), with optional momentum and L2 weight decay."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, **switches):
        implementation_switches('RMSprop', 'foreach capturable differentiable', switches)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, w, g, state, group):
        lr, alpha, eps = group['lr'], group['alpha'], group['eps']
        g = _l2(g, w, group)
        _count_step(state, w, 'square_avg',
                    *(('momentum_buffer',) if group['momentum'] > 0 else ()),
                    *(('grad_avg',) if group['centered'] else ()))
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
            buf = state.get('momentum_buffer')
            if buf is None:                       # momentum switched on later (a scheduler)
                buf = state['momentum_buffer'] = np.zeros_like(w)
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
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False, **switches):
        implementation_switches('Adagrad', 'foreach differentiable fused', switches)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _update(self, w, g, state, group):
        g = _l2(g, w, group)
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


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012): step `dx = sqrt(u + eps) / sqrt(v + eps) * g` with `v` and `u`
    moving averages (weight `rho`) of the squared gradients and squared steps; `w -= lr * dx`
    (PyTorch's defaults: `lr=1`, `rho=0.9`, `eps=1e-6`)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *,
                 maximize=False, **switches):
        implementation_switches('Adadelta', 'foreach capturable differentiable', switches)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, w, g, state, group):
        lr, rho, eps = group['lr'], group['rho'], group['eps']
        _count_step(state, w, 'square_avg', 'acc_delta')
        g = _l2(g, w, group)
        v, u, s = state['square_avg'], state['acc_delta'], self._scratch(w)
        np.multiply(g, g, out=s)
        s *= 1 - rho
        v *= rho
        v += s
        std = np.sqrt(v + eps)
        delta = np.sqrt(u + eps)
        delta /= std
        delta *= g
        np.multiply(delta, delta, out=s)
        s *= 1 - rho
        u *= rho
        u += s
        delta *= lr
        w -= delta
