"""More of PyTorch's learning-rate schedulers: `ConstantLR`, `PolynomialLR`, `MultiplicativeLR`,
`CosineAnnealingWarmRestarts` (SGDR), `CyclicLR`, and the combinators `SequentialLR` (one
scheduler after another, switching at milestones) and `ChainedScheduler` (several at once, their
factors multiplied). Importable from `chainrule.optim.lr_scheduler` like the others; each one's
iterates equal PyTorch's (tests/test_lr_scheduler_more.py).

Every scheduler of chainrule is written in closed form from the group's initial learning rate
(`lr_at(base_lr, epoch)`), where several of PyTorch's update the current rate recursively. The
two agree when one scheduler drives the optimizer, and the combinators are written so that they
agree too: `SequentialLR` restarts the next scheduler at epoch 0 at its milestone (PyTorch's
`step(0)`), and `ChainedScheduler` multiplies the factors `lr_at(base, epoch) / base` (PyTorch
multiplies the recursive updates, which is the same product).
"""

import bisect
import math

from chainrule._args import ArgumentError
from chainrule.optim.lr_scheduler import LRScheduler, _check_optimizer, _per_group, _uses_beta1

__all__ = ['ConstantLR', 'PolynomialLR', 'MultiplicativeLR', 'CosineAnnealingWarmRestarts',
           'CyclicLR', 'SequentialLR', 'ChainedScheduler']


class ConstantLR(LRScheduler):
    """`lr = initial * factor` for the first `total_iters` steps, then `initial`."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if not 0 < factor <= 1:
            raise ArgumentError(f'ConstantLR: factor must be in (0, 1], got {factor}')
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * (self.factor if epoch < self.total_iters else 1.0)


class PolynomialLR(LRScheduler):
    """`lr = initial * (1 - min(epoch, total_iters) / total_iters) ** power`."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        if not self.total_iters:        # PyTorch: nothing to decay over, the lr stays
            return base_lr
        return base_lr * (1.0 - min(epoch, self.total_iters) / self.total_iters) ** self.power


class MultiplicativeLR(LRScheduler):
    """`lr = initial * lr_lambda(1) * ... * lr_lambda(epoch)` (`lr_lambda` may be a list, one
    per group); the functions are not part of `state_dict()`."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer('MultiplicativeLR', optimizer)
        n = len(optimizer.param_groups)
        for f in (lr_lambda if isinstance(lr_lambda, (list, tuple)) else [lr_lambda]):
            if not callable(f):
                raise ArgumentError(f'MultiplicativeLR: lr_lambda must be a function of the '
                                    f'epoch (or a list of them, one per parameter group), got '
                                    f'{f!r}')
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ArgumentError(f'MultiplicativeLR: got {len(lr_lambda)} lr_lambda functions '
                                    f'for {n} parameter groups')
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        self._products = None     # (epoch, [product per group]) of the last call
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e = self.last_epoch
        if self._products is not None and self._products[0] == e - 1:
            prods = [p * f(e) if e > 0 else p for p, f in zip(self._products[1],
                                                                self.lr_lambdas)]
        else:
            prods = [math.prod(f(k) for k in range(1, e + 1)) for f in self.lr_lambdas]
        self._products = (e, prods)
        return [b * p for b, p in zip(self.base_lrs, prods)]

    def state_dict(self):
        state = super().state_dict()
        state.pop('lr_lambdas', None)
        return state

    def load_state_dict(self, state):
        self._products = None
        super().load_state_dict({k: v for k, v in state.items()
                                 if k not in ('lr_lambdas', '_products')})


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov and Hutter 2017): cosine annealing from the initial rate to `eta_min`
    over `T_0` steps, then restarts, each period `T_mult` times longer than the last. `step()`
    advances one step; `step(epoch)` jumps to `epoch`, which may be fractional (per batch:
    `sched.step(epoch + i / iters)`), as PyTorch's."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ArgumentError(f'CosineAnnealingWarmRestarts: T_0 must be a positive int, got '
                                f'{T_0!r}')
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ArgumentError(f'CosineAnnealingWarmRestarts: T_mult must be an int >= 1, got '
                                f'{T_mult!r}')
        self.T_0, self.T_i, self.T_mult, self.eta_min = T_0, T_0, T_mult, eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.T_cur /
                                                                  self.T_i)) / 2
                for b in self.base_lrs]

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur -= self.T_i
                self.T_i *= self.T_mult
        else:
            if epoch < 0:
                raise ArgumentError(f'CosineAnnealingWarmRestarts: epoch must be >= 0, got {epoch}')
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i, self.T_cur = self.T_0, epoch
        self._step_count += 1
        self.last_epoch = math.floor(epoch)
        self._apply()


class CyclicLR(LRScheduler):
    """Cyclical learning rates (Smith 2017), PyTorch's `CyclicLR`, stepped once per batch: the
    rate goes from `base_lr` up to `max_lr` over `step_size_up` steps and back down over
    `step_size_down` (default: the same), the amplitude scaled by `mode` ('triangular': 1,
    'triangular2': halved each cycle, 'exp_range': `gamma ** step`) or by `scale_fn`. With
    `cycle_momentum` the momentum (SGD's `momentum`, Adam's `betas[0]`) moves inversely between
    `max_momentum` and `base_momentum`."""

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode='triangular', gamma=1.0, scale_fn=None, scale_mode='cycle',
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        base_lrs = _per_group('CyclicLR: base_lr', optimizer, base_lr)
        if last_epoch == -1:
            for lr, g in zip(base_lrs, optimizer.param_groups):
                g['lr'] = lr
                g['initial_lr'] = lr
        self.max_lrs = _per_group('CyclicLR: max_lr', optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        if self.total_size <= 0:
            raise ArgumentError(f'CyclicLR: step_size_up={step_size_up!r} and step_size_down='
                                f'{step_size_down!r} make a cycle of {self.total_size} steps; '
                                'give positive step sizes')
        self.step_ratio = up / self.total_size
        if mode not in ('triangular', 'triangular2', 'exp_range') and scale_fn is None:
            raise ArgumentError(f"CyclicLR: mode must be 'triangular', 'triangular2' or "
                                f"'exp_range' (or give scale_fn), got {mode!r}")
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else (
            'iterations' if mode == 'exp_range' else 'cycle')
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _uses_beta1('CyclicLR', optimizer)
            self.base_momentums = _per_group('CyclicLR: base_momentum', optimizer,
                                             base_momentum)
            self.max_momentums = _per_group('CyclicLR: max_momentum', optimizer, max_momentum)
            if last_epoch == -1:
                for m, g in zip(self.max_momentums, optimizer.param_groups):
                    self._set_momentum(g, m)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _set_momentum(self, g, m):
        if self.use_beta1:
            g['betas'] = (m, *g['betas'][1:])
        else:
            g['momentum'] = m

    def scale_fn(self, x):
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == 'triangular':
            return 1.0
        if self.mode == 'triangular2':
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        """The groups' rates at `last_epoch`; sets their momentum as a side effect (as
        PyTorch's does)."""
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        f = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        s = self.scale_fn(cycle if self.scale_mode == 'cycle' else self.last_epoch)
        lrs = [b + (m - b) * f * s for b, m in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for g, lo, hi in zip(self.optimizer.param_groups, self.base_momentums,
                                 self.max_momentums):
                self._set_momentum(g, hi - (hi - lo) * f * s)
        return lrs

    def state_dict(self):
        state = super().state_dict()
        state.pop('_scale_fn_custom', None)
        return state


class SequentialLR(LRScheduler):
    """`schedulers[0]` until `milestones[0]`, then `schedulers[1]` restarted from its epoch 0,
    and so on (PyTorch's `SequentialLR`: e.g. a `LinearLR` warm-up, then a decay)."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers = list(schedulers)
        if not schedulers:
            raise ArgumentError('SequentialLR: give at least one scheduler')
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, (SequentialLR, ChainedScheduler)):
                raise ArgumentError(f'SequentialLR: schedulers[{i}] must be a scheduler of '
                                    f'chainrule.optim.lr_scheduler, got {type(s).__name__}')
            if s.optimizer is not optimizer:
                raise ArgumentError(f'SequentialLR: schedulers[{i}] drives another optimizer than '
                                    'the one given')
        if len(milestones) != len(schedulers) - 1:
            raise ArgumentError(f'SequentialLR: expected {len(schedulers) - 1} milestones for '
                                f'{len(schedulers)} schedulers, got {len(milestones)}')
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self._step_count = 0
        for g in optimizer.param_groups:
            g['lr'] = g['initial_lr']
        for s in schedulers:          # undo the step each made when it was constructed
            s.last_epoch -= 1
        schedulers[0].step()
        self._last_lr = schedulers[0].get_last_lr()
        self.base_lrs = [g['initial_lr'] for g in optimizer.param_groups]

    def step(self):
        self.last_epoch += 1
        self._step_count += 1
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            s.step(0)
        else:
            s.step()
        self._last_lr = s.get_last_lr()

    def state_dict(self):
        state = {k: v for k, v in super().state_dict().items() if k != '_schedulers'}
        state['_schedulers'] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state):
        subs = state.get('_schedulers', [])
        for k in ('last_epoch', '_milestones', '_last_lr', '_step_count'):
            if k in state:
                setattr(self, k, state[k])
        for s, sd in zip(self._schedulers, subs):
            s.load_state_dict(sd)


class ChainedScheduler(LRScheduler):
    """Several schedulers stepped together, their effects multiplied: the rate is
    `initial * prod(scheduler's lr / its initial lr)` (PyTorch's `ChainedScheduler`)."""

    def __init__(self, schedulers, optimizer=None):
        if not isinstance(schedulers, (list, tuple)) or not all(
                isinstance(s, LRScheduler) for s in schedulers):
            raise ArgumentError(f'ChainedScheduler: schedulers must be a list of schedulers '
                                f'(ChainedScheduler([s1, s2], optimizer=None)), got '
                                f'{type(schedulers).__name__}')
        schedulers = list(schedulers)
        if not schedulers:
            raise ArgumentError('ChainedScheduler: give at least one scheduler')
        optimizer = optimizer or schedulers[0].optimizer
        for i, s in enumerate(schedulers):
            if s.optimizer is not optimizer:
                raise ArgumentError(f'ChainedScheduler: schedulers[{i}] drives another optimizer')
        self.optimizer = optimizer
        self._schedulers = schedulers
        self.base_lrs = [g['initial_lr'] for g in optimizer.param_groups]
        self._combine()

    def _combine(self):
        lrs = list(self.base_lrs)
        for s in self._schedulers:
            for i, (lr, b) in enumerate(zip(s.get_last_lr(), s.base_lrs)):
                lrs[i] = lrs[i] * (lr / b if b else 0.0)
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g['lr'] = lr
        self._last_lr = lrs

    def step(self):
        for s in self._schedulers:
            s.step()
        self._combine()

    def state_dict(self):
        return {'_schedulers': [s.state_dict() for s in self._schedulers],
                '_last_lr': list(self._last_lr)}

    def load_state_dict(self, state):
        for s, sd in zip(self._schedulers, state.get('_schedulers', [])):
            s.load_state_dict(sd)
        self._combine()
