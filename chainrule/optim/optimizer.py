"""The `Optimizer` base class: parameter groups, per-parameter state, `maximize`, complex
parameters as (real, imaginary) pairs, and `state_dict`/`load_state_dict` in PyTorch's layout.

A subclass implements `_update(w, g, state, group)` on NumPy arrays: `w` the parameter (updated
in place), `g` the gradient in PyTorch's convention (already negated for `maximize=True`, and,
for a complex parameter, already conjugated and both seen as real arrays), `state` the
parameter's dict of state, `group` its hyperparameters.

State dict layout (PyTorch's): `{'state': {index: {name: array or number}}, 'param_groups':
[{hyperparameter: value, ..., 'params': [index, ...]}]}`, parameters numbered across the groups
in order. It holds only arrays, numbers, strings, lists, tuples and None, so `cr.save` stores it;
a PyTorch optimizer's state dict with its tensors converted to NumPy loads too (its `step`
counts become ints, its 0-d tensors numbers, its implementation switches such as `foreach` are
dropped).
"""

import numbers

import numpy as np

from chainrule.core import ChainruleError, capturing_trace
from chainrule.tensor import Tensor, enable_grad, no_grad

# hyperparameters that must be numbers >= 0 (PyTorch's checks), those in [0, 1], and pairs in
# [0, 1)
_NONNEGATIVE = ('lr', 'eps', 'momentum', 'weight_decay', 'alpha', 'lr_decay',
                'initial_accumulator_value', 'momentum_decay', 'tolerance_grad',
                'tolerance_change')
_CLOSED_UNIT = ('rho',)
_UNIT_PAIRS = ('betas',)
# PyTorch's switches between implementations of the same update: no meaning here
_TORCH_ONLY = ('foreach', 'fused', 'capturable', 'differentiable')


def implementation_switches(name, accepted, switches):
    """Check PyTorch's implementation switches `switches` (the constructor's `**switches`)
    that PyTorch's optimizer `name` takes (`accepted`, space-separated): chainrule has one
    implementation, so `foreach=None/True/False` and `fused=None/False` (and `fused=True`, which
    PyTorch runs on the CPU too) give the same steps; `capturable=True` (CUDA graphs: PyTorch
    refuses it on the CPU) and `differentiable=True` (a step recorded for autograd) cannot be
    honoured and are refused, as is any keyword PyTorch's `name` does not take."""
    from chainrule._args import ArgumentError
    for k, v in switches.items():
        if k not in accepted.split():
            raise ArgumentError(f'{name}(): unexpected keyword argument {k!r}; PyTorch\'s '
                                f'{name} takes these implementation switches only: {accepted}')
        ok = v is None or v is False if k in ('capturable', 'differentiable') else \
            v is None or isinstance(v, bool)
        if not ok:
            raise ArgumentError(
                f'{name}(): {k}={v!r} is not supported: ' +
                ('capturable=True needs CUDA graphs (PyTorch refuses it on the CPU too)'
                 if k == 'capturable' and v is True else
                 'chainrule\'s optimizer steps are not recorded for autograd'
                 if k == 'differentiable' and v is True else f'{k} must be None, True or False') +
                f'; leave {k} out')
    if switches.get('fused') and switches.get('foreach'):
        raise ArgumentError(f'{name}(): fused=True and foreach=True cannot be given together '
                            '(PyTorch refuses it too); pass one of them')


def _number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _check_hyperparameters(name, group):
    """ValueError naming the hyperparameter when one is out of its range."""
    for k in _NONNEGATIVE:
        if k in group and not (_number(group[k]) and group[k] >= 0):
            raise ValueError(f'{name}: {k}={group[k]!r} is invalid; it must be a number >= 0')
    for k in _CLOSED_UNIT:
        if k in group and not (_number(group[k]) and 0 <= group[k] <= 1):
            raise ValueError(f'{name}: {k}={group[k]!r} is invalid; it must be a number in '
                             '[0, 1]')
    for k in _UNIT_PAIRS:
        if k in group:
            v = group[k]
            if not (isinstance(v, tuple) and len(v) == 2 and
                    all(_number(b) and 0 <= b < 1 for b in v)):
                raise ValueError(f'{name}: {k}={v!r} is invalid; it must be a pair of numbers '
                                 'in [0, 1), such as (0.9, 0.999)')


class Optimizer:
    """Base class: holds parameter groups (each a dict with `'params'` and hyperparameters)
    and per-parameter state; subclasses implement `_update(w, g, state, group)` on arrays.

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
        if capturing_trace.get() is not None:
            _refuse_inside_jit(type(self).__name__)
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
                    if group.get('maximize'):
                        g = -g                        # ascend: PyTorch negates the gradient
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
        by their index across the groups, as PyTorch does), ready for `cr.save`. Arrays are
        copies: later steps do not change a state dict already taken."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group['params']:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            groups.append({**{k: _copy(v) for k, v in group.items() if k != 'params'},
                           'params': ids})
        state = {index[id(p)]: {k: _copy(v) for k, v in self.state[p].items()}
                 for group in self.param_groups for p in group['params'] if self.state.get(p)}
        return {'state': state, 'param_groups': groups}

    def load_state_dict(self, state_dict):
        """Restore the state saved by `state_dict()` (for the same parameters, in order), or by
        a PyTorch optimizer of the same kind with its tensors converted to NumPy arrays.

        Arrays are copied (floating-point state takes its parameter's dtype, as in PyTorch),
        0-d arrays become numbers and step counts ints; group hyperparameters replace this
        optimizer's (learning rates set by a scheduler included)."""
        groups = state_dict['param_groups']
        if len(groups) != len(self.param_groups) or any(
                len(a['params']) != len(b['params']) for a, b in zip(groups, self.param_groups)):
            raise ValueError(f'{type(self).__name__}.load_state_dict: the saved state has '
                             f'{[len(g["params"]) for g in groups]} parameters per group, this '
                             f'optimizer {[len(g["params"]) for g in self.param_groups]}')
        params = [p for g in self.param_groups for p in g['params']]
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != 'params' and k not in _TORCH_ONLY:
                    v = _restore(v, None)
                    group[k] = tuple(v) if k == 'betas' else v
        self.state = {}
        for i, st in state_dict['state'].items():
            p = params[int(i)]
            self.state[p] = {k: _restore(v, p.data.dtype, k == 'step') for k, v in st.items()}


def _refuse_inside_jit(name):
    raise ChainruleError(
        f'{name}.step() inside a jitted function: the optimizer updates NumPy arrays it keeps '
        'eagerly, which jit cannot stage. Either jit the loss and gradients and call step() '
        'outside (loss = jitted(x); loss.backward(); opt.step()), or write the update with '
        'Tensor in-place operations on the parameters and state Tensors (with cr.no_grad(): '
        'buf.mul_(momentum).add_(g); p.sub_(lr * buf)), which jit stages and writes back after '
        'every call.')


def _copy(v):
    """A copy of state value `v` (arrays copied, containers rebuilt)."""
    if isinstance(v, np.ndarray):
        return np.array(v, copy=True)
    if isinstance(v, (list, tuple)):
        return type(v)(_copy(x) for x in v)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


def _restore(v, dtype, count=False):
    """Saved state value `v` as this library keeps it: arrays copied (floating ones of the
    parameter's `dtype` when the kinds agree, as PyTorch casts), 0-d arrays (PyTorch's scalar
    tensors) as numbers, counts as ints."""
    if isinstance(v, Tensor):
        v = v.data
    if not isinstance(v, (np.ndarray, list, tuple, dict, str, numbers.Number, type(None))) \
            and hasattr(v, '__array__'):
        v = np.asarray(v)                         # e.g. a PyTorch tensor
    if isinstance(v, np.generic):
        v = np.asarray(v)
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            v = v.item()
        elif dtype is not None and v.dtype.kind in 'fc' and v.dtype.kind == np.dtype(dtype).kind:
            return v.astype(dtype, copy=True)
        else:
            return v.copy()
    if isinstance(v, (list, tuple)):
        return type(v)(_restore(x, dtype) for x in v)
    if isinstance(v, dict):
        return {k: _restore(x, dtype) for k, x in v.items()}
    if count and isinstance(v, float) and v.is_integer():
        return int(v)
    return v


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


def _pytorch_grad(p):
    """`p`'s gradient in PyTorch's convention as a flat real array (complex entries as
    (real, imaginary) pairs, PyTorch's `view_as_real`); zeros without a gradient."""
    w = p.data
    if p.grad is None:
        g = np.zeros(w.shape, w.dtype)
    else:
        g = np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad)
    if w.dtype.kind == 'c':
        return np.ascontiguousarray(np.conj(g).astype(w.dtype, copy=False)).view(
            w.real.dtype).reshape(-1)
    return g.reshape(-1)
