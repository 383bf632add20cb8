"""Learning-rate schedules, PyTorch's `torch.optim.lr_scheduler`: `StepLR`, `MultiStepLR`,
`ExponentialLR`, `CosineAnnealingLR`, `LinearLR`, `LambdaLR`, `OneCycleLR` (which also cycles
SGD's momentum or Adam's `beta1`), `ReduceLROnPlateau` (driven by a metric), and
`WarmupCosineLR` (linear warm-up, then cosine decay); and, from `_lr_composed.py`,
`ConstantLR`, `PolynomialLR`, `MultiplicativeLR`, `CosineAnnealingWarmRestarts`, `CyclicLR`,
`SequentialLR` and `ChainedScheduler`.

As in PyTorch, constructing a scheduler applies step 0, and you call `step()` after
`optimizer.step()` (per epoch or per batch: the unit is yours; `ReduceLROnPlateau.step(metric)`
after each evaluation). `state_dict()` holds the scheduler's attributes (PyTorch's names:
`last_epoch`, `base_lrs`, `_last_lr`, ...; functions such as `LambdaLR`'s `lr_lambda` are left
out) and round-trips through `cr.save`/`cr.load`; `load_state_dict` also takes the state dict
of the same PyTorch scheduler, converted to NumPy.

    >>> import numpy as np, chainrule as cr
    >>> w = cr.tensor(np.ones(2), requires_grad=True)
    >>> opt = cr.optim.SGD([w], lr=1.0)
    >>> sched = cr.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
"""

import math
import numbers

import numpy as np

from chainrule._args import ArgumentError

from chainrule.optim.optimizer import Optimizer

__all__ = ['LRScheduler', 'StepLR', 'MultiStepLR', 'ExponentialLR', 'CosineAnnealingLR',
           'LinearLR', 'LambdaLR', 'WarmupCosineLR', 'OneCycleLR', 'ReduceLROnPlateau',
           'ConstantLR', 'PolynomialLR', 'MultiplicativeLR', 'CosineAnnealingWarmRestarts',
           'CyclicLR', 'SequentialLR', 'ChainedScheduler']


def _plain(v):
    """A loaded state value as a Python value: 0-d arrays as numbers, containers rebuilt."""
    if isinstance(v, np.ndarray) and v.ndim == 0 or isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _check_optimizer(op, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise ArgumentError(f'{op}: expected an optimizer from chainrule.optim, got '
                            f'{type(optimizer).__name__} (a scheduler drives a '
                            'chainrule.optim optimizer, e.g. cr.optim.SGD(model.parameters()))')


class LRScheduler:
    """Base class: at every `step()`, `last_epoch` advances and each group's `lr` becomes
    `get_lr()` (by default `lr_at(initial lr, last_epoch)`, a closed form).

    Args:
        optimizer: the `Optimizer` whose groups' `lr` this sets.
        last_epoch: `-1` to start; another value resumes at that step (the groups must hold
            `initial_lr`, as after loading an optimizer's state dict).
    """

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        for i, g in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                g.setdefault('initial_lr', g['lr'])
            elif 'initial_lr' not in g:
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr' "
                               f'to resume from with last_epoch={last_epoch}; load the '
                               "optimizer's state dict first, or start with last_epoch=-1")
        self.base_lrs = [g['initial_lr'] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def lr_at(self, base_lr, epoch):   # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self):
        """The learning rates of the groups at `last_epoch`."""
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]

    def _apply(self):
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g['lr'] = lr
        self._last_lr = [g['lr'] for g in self.optimizer.param_groups]

    def step(self, epoch=None):
        """Advance one step (call it after `optimizer.step()`); `step(epoch)` jumps to `epoch`
        (PyTorch's deprecated form, which `SequentialLR` uses to restart a scheduler)."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        self._apply()

    def get_last_lr(self):
        """The learning rates the last `step()` set, one per group."""
        return list(self._last_lr)

    def state_dict(self):
        """The scheduler's attributes but the optimizer and functions (PyTorch's layout)."""
        return {k: _plain(v) for k, v in vars(self).items()
                if k != 'optimizer' and not callable(v)}

    def load_state_dict(self, state):
        """Restore `state_dict()`'s attributes (ours or PyTorch's scheduler's: entries this
        scheduler does not have are ignored), and set the groups' learning rates for the
        restored step."""
        own = vars(self)
        for k, v in state.items():
            if k in own and k != 'optimizer' and not callable(own[k]):
                setattr(self, k, _plain(v))
        self._reapply()

    def _reapply(self):
        self._apply()


def _nonzero(op, name, value):
    """`value` as a period: a number other than 0 (PyTorch divides by it at the first step)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value == 0:
        raise ArgumentError(f'{op}: {name}={value!r} must be a positive number of steps (it '
                            'divides the epoch)')
    return value


class StepLR(LRScheduler):
    """`lr = initial * gamma ** (epoch // step_size)`."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = _nonzero('StepLR', 'step_size', step_size), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """`lr = initial * gamma ** (number of milestones <= epoch)`."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)


class ExponentialLR(LRScheduler):
    """`lr = initial * gamma ** epoch`."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """`lr = eta_min + (initial - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = _nonzero('CosineAnnealingLR', 'T_max', T_max), eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from `start_factor` to `end_factor` over
    `total_iters` steps, then stays."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1:
            raise ArgumentError(f'LinearLR: start_factor={start_factor!r} must be in (0, 1] '
                                '(a multiple of the initial lr; PyTorch refuses it too)')
        if not 0 <= end_factor <= 1:
            raise ArgumentError(f'LinearLR: end_factor={end_factor!r} must be in [0, 1] '
                                '(a multiple of the initial lr; PyTorch refuses it too)')
        self.start_factor, self.end_factor, self.total_iters = \
            start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        # (total_iters=0: PyTorch keeps the start factor)
        frac = min(epoch, self.total_iters) / self.total_iters if self.total_iters else 0.0
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class LambdaLR(LRScheduler):
    """`lr = initial * lr_lambda(epoch)` (`lr_lambda` may be a list, one per group). The
    functions are not part of `state_dict()`: pass the same ones to the new scheduler."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer('LambdaLR', optimizer)
        n = len(optimizer.param_groups)
        for f in (lr_lambda if isinstance(lr_lambda, (list, tuple)) else [lr_lambda]):
            if not callable(f):
                raise ArgumentError(f'LambdaLR: lr_lambda must be a function of the epoch (or a '
                                    f'list of them, one per parameter group), got {f!r}')
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ArgumentError(f'LambdaLR: got {len(lr_lambda)} lr_lambda functions for {n} '
                                    'parameter groups')
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self):
        state = super().state_dict()
        state.pop('lr_lambdas')
        return state

    def load_state_dict(self, state):
        super().load_state_dict({k: v for k, v in state.items() if k != 'lr_lambdas'})


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from `start_factor * initial` over `warmup_steps`, then cosine decay to
    `eta_min` at `total_steps` (and `eta_min` after)."""

    def __init__(self, optimizer, warmup_steps, total_steps, eta_min=0.0, start_factor=0.0,
                 last_epoch=-1):
        if not 0 <= warmup_steps < total_steps:
            raise ArgumentError(f'WarmupCosineLR: need 0 <= warmup_steps ({warmup_steps}) < '
                                f'total_steps ({total_steps})')
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.eta_min, self.start_factor = eta_min, start_factor
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        if epoch < self.warmup_steps:
            f = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_steps
            return base_lr * f
        t = min(epoch - self.warmup_steps, self.total_steps - self.warmup_steps)
        T = self.total_steps - self.warmup_steps
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / T)) / 2


def _uses_beta1(name, optimizer):
    """Whether cycling the momentum sets Adam's `betas[0]` (True) or `momentum` (False); an
    optimizer with neither is refused."""
    if 'momentum' not in optimizer.defaults and 'betas' not in optimizer.defaults:
        raise ArgumentError(f'{name}: cycle_momentum=True needs an optimizer with momentum or '
                            f'betas; {type(optimizer).__name__} has neither (pass '
                            'cycle_momentum=False)')
    return 'betas' in optimizer.defaults


def _per_group(name, optimizer, value):
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ArgumentError(f'{name} has {len(value)} values for {n} parameter groups')
        return list(value)
    return [value] * n


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith and Topin 2017), PyTorch's `OneCycleLR`, stepped once per batch:
    the learning rate rises from `max_lr / div_factor` to `max_lr` over the first `pct_start`
    of `total_steps`, then anneals to `max_lr / div_factor / final_div_factor` (with
    `three_phase`: back down to the initial rate symmetrically first, then to the minimum).
    With `cycle_momentum`, the momentum (SGD's, RMSprop's `momentum` or Adam's `betas[0]`)
    moves inversely between `max_momentum` and `base_momentum`.

    Args:
        optimizer: the optimizer.
        max_lr: the peak learning rate (or a list, one per group).
        total_steps: the number of steps in the cycle; or give `epochs` and `steps_per_epoch`.
        pct_start: the share of the cycle spent rising.
        anneal_strategy: `'cos'` or `'linear'`.
        cycle_momentum: cycle the momentum too.
        base_momentum, max_momentum: the momentum's range (or lists, one per group).
        div_factor: initial lr = `max_lr / div_factor`.
        final_div_factor: minimum lr = initial lr / `final_div_factor`.
        three_phase: use the three-phase schedule of fastai.
        last_epoch: `-1` to start; another value resumes.

    Raises:
        ValueError: a step beyond `total_steps`, or arguments out of range.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy='cos', cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False, last_epoch=-1):
        def positive_int(name, v):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
                raise ArgumentError(f'OneCycleLR: {name} must be a positive integer, got {v!r}')
            return int(v)

        if total_steps is not None:
            self.total_steps = positive_int('total_steps', total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (positive_int('epochs', epochs) *
                                positive_int('steps_per_epoch', steps_per_epoch))
        else:
            raise ArgumentError('OneCycleLR: give total_steps, or epochs and steps_per_epoch')
        if not (isinstance(pct_start, float) and 0 <= pct_start <= 1):
            raise ArgumentError(f'OneCycleLR: pct_start must be a float in [0, 1], got '
                                f'{pct_start!r}')
        if anneal_strategy not in ('cos', 'linear'):
            raise ArgumentError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got "
                                f'{anneal_strategy!r}')
        self._anneal_func_type = anneal_strategy
        n = self.total_steps
        up = float(pct_start * n) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=up, start_lr='initial_lr', end_lr='max_lr',
                     start_momentum='max_momentum', end_momentum='base_momentum'),
                dict(end_step=float(2 * pct_start * n) - 2, start_lr='max_lr',
                     end_lr='initial_lr', start_momentum='base_momentum',
                     end_momentum='max_momentum'),
                dict(end_step=n - 1, start_lr='initial_lr', end_lr='min_lr',
                     start_momentum='max_momentum', end_momentum='max_momentum')]
        else:
            self._schedule_phases = [
                dict(end_step=up, start_lr='initial_lr', end_lr='max_lr',
                     start_momentum='max_momentum', end_momentum='base_momentum'),
                dict(end_step=n - 1, start_lr='max_lr', end_lr='min_lr',
                     start_momentum='base_momentum', end_momentum='max_momentum')]
        if last_epoch == -1:
            for g, m in zip(optimizer.param_groups, _per_group('max_lr', optimizer, max_lr)):
                g['initial_lr'] = m / div_factor
                g['max_lr'] = m
                g['min_lr'] = g['initial_lr'] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _uses_beta1('OneCycleLR', optimizer)
            if last_epoch == -1:
                for g, hi, lo in zip(optimizer.param_groups,
                                     _per_group('max_momentum', optimizer, max_momentum),
                                     _per_group('base_momentum', optimizer, base_momentum)):
                    if self.use_beta1:
                        g['betas'] = (hi, *g['betas'][1:])
                    else:
                        g['momentum'] = hi
                    g['max_momentum'], g['base_momentum'] = hi, lo
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == 'cos':
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        """The groups' learning rates at `last_epoch`; sets their momentum as a side effect
        (as PyTorch's does)."""
        step = self.last_epoch
        if step > self.total_steps:
            raise ArgumentError(f'OneCycleLR: stepped {step} times, beyond total_steps='
                                f'{self.total_steps}; make total_steps (or epochs x '
                                'steps_per_epoch) cover the whole run')
        lrs = []
        for g in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase['end_step']
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(g[phase['start_lr']], g[phase['end_lr']], pct))
                    if self.cycle_momentum:
                        m = self._anneal(g[phase['start_momentum']], g[phase['end_momentum']],
                                         pct)
                        if self.use_beta1:
                            g['betas'] = (m, *g['betas'][1:])
                        else:
                            g['momentum'] = m
                    break
                start = end
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate when a metric stops improving, PyTorch's `ReduceLROnPlateau`:
    call `step(metric)` after each evaluation; after more than `patience` steps without an
    improvement (by `threshold`, relative or absolute) each group's lr becomes
    `max(lr * factor, min_lr)` (a change below `eps` is skipped), then `cooldown` steps pass
    before counting again.

    Args:
        optimizer: the optimizer.
        mode: `'min'` (the metric should fall, e.g. a loss) or `'max'` (e.g. an accuracy).
        factor: the multiplier, < 1.
        patience: steps without improvement tolerated.
        threshold: the least improvement that counts.
        threshold_mode: `'rel'` (better than `best * (1 -+ threshold)`) or `'abs'`
            (`best -+ threshold`).
        cooldown: steps to wait after a reduction.
        min_lr: the lower bound (or a list, one per group).
        eps: the smallest change of lr that is applied.
    """

    def __init__(self, optimizer, mode='min', factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise ArgumentError(f'ReduceLROnPlateau: expected an optimizer from chainrule.optim, '
                                f'got {type(optimizer).__name__}')
        if factor >= 1.0:
            raise ArgumentError(f'ReduceLROnPlateau: factor={factor!r} must be < 1')
        if mode not in ('min', 'max'):
            raise ArgumentError(f"ReduceLROnPlateau: mode={mode!r} must be 'min' or 'max'")
        if threshold_mode not in ('rel', 'abs'):
            raise ArgumentError(f"ReduceLROnPlateau: threshold_mode={threshold_mode!r} must be "
                                "'rel' or 'abs'")
        self.optimizer = optimizer
        self.factor = factor
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group('ReduceLROnPlateau: min_lr', optimizer, min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == 'min' else -math.inf
        self.last_epoch = 0
        self._last_lr = [g['lr'] for g in optimizer.param_groups]
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, a, best):
        if self.mode == 'min':
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == 'rel'
                        else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == 'rel'
                    else best + self.threshold)

    def step(self, metrics):
        """Record the metric of this evaluation (a number or a 0-d Tensor/array)."""
        current = float(np.asarray(getattr(metrics, 'data', metrics)))
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0               # bad steps in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g['lr'] for g in self.optimizer.param_groups]

    def _reduce(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ArgumentError(f'ReduceLROnPlateau: the optimizer now has {len(groups)} '
                                    f'parameter groups but min_lr has {len(self.min_lrs)} '
                                    'values; set .min_lrs to one value per group')
            self.min_lrs = [self.default_min_lr] * len(groups)
        for g, lo in zip(groups, self.min_lrs):
            old = float(g['lr'])
            new = max(old * self.factor, lo)
            if old - new > self.eps:
                g['lr'] = new

    def _reapply(self):
        pass                                      # the groups' lr come with the optimizer's state


from chainrule.optim._lr_composed import (ChainedScheduler, ConstantLR,  # noqa: E402,F401
                                          CosineAnnealingWarmRestarts, CyclicLR,
                                          MultiplicativeLR, PolynomialLR, SequentialLR)
