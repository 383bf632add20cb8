"""L-BFGS, PyTorch's `torch.optim.LBFGS`: a quasi-Newton method that calls a closure several
times per `step(closure)`, with an optional strong-Wolfe line search.

The algorithm (minFunc's, as PyTorch implements it): the direction is minus the gradient times
the L-BFGS approximation of the inverse Hessian (two-loop recursion over the last
`history_size` pairs of steps `s` and gradient changes `y`, initial scale `y.s / y.y`); the
first step is scaled to `min(1, 1/|g|_1) * lr`; then either a fixed step of length `lr`, or a
line search for a step satisfying the strong Wolfe conditions (cubic interpolation, bracketing
then zoom). All parameters are treated as one flat real vector (complex entries as (real,
imaginary) pairs); the state (history, last direction and step) lives in the state of the first
parameter, so `state_dict()` holds it.
"""

import math

import numpy as np

from chainrule.optim.optimizer import Optimizer, _pytorch_grad, _real_view
from chainrule.tensor import Tensor, enable_grad, no_grad


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through `(x1, f1)` and `(x2, f2)` with slopes `g1`, `g2`,
    clipped into `bounds` (default: between the points); their midpoint when the cubic has no
    minimum."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(t, lo), hi)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """A step `t` along `d` satisfying the strong Wolfe conditions (sufficient decrease `c1`,
    curvature `c2`), from loss `f`, gradient `g` and slope `gtd` at `t = 0`; `evaluate(t)`
    gives `(loss, gradient)` at `t`. Returns `(loss, gradient, t, evaluations)`."""
    d_norm = float(np.max(np.abs(d)))
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = float(g_new.dot(d))
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    bracket = None
    # bracketing: grow the step until an interval must contain an acceptable point
    while it < max_ls:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket, bf, bg, bgtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bf, bg, bgtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        lo, hi = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (lo, hi))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = float(g_new.dot(d))
        it += 1
    if it >= max_ls:
        bracket, bf, bg = [0, t], [f, f_new], [g, g_new]
    # zoom: shrink the bracket around a point satisfying the conditions
    insufficient = False
    low, high = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        # a trial too close to an end of the bracket moves to 10% inside it, at once if the
        # previous trial made too little progress or it lies on or beyond the end
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:
            if insufficient or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = float(g_new.dot(d))
        it += 1
        if f_new > f + c1 * t * gtd or f_new >= bf[low]:
            bracket[high], bf[high], bg[high], bgtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bf[high], bg[high], bgtd[high] = \
                    bracket[low], bf[low], bg[low], bgtd[low]
            bracket[low], bf[low], bg[low], bgtd[low] = t, f_new, g_new, gtd_new
    return bf[low], bg[low], bracket[low], evals


class LBFGS(Optimizer):
    """L-BFGS with PyTorch's arguments and iterates: call `step(closure)`, where `closure()`
    clears the gradients, computes the loss, calls `backward()` and returns the loss; one step
    runs up to `max_iter` iterations (and `max_eval` closure calls).

    Args:
        params: the parameters (one group only, as in PyTorch).
        lr: the step length (the first iteration's is scaled by `min(1, 1/|g|_1)`).
        max_iter: iterations per `step`.
        max_eval: closure calls per `step` (default `max_iter * 5 // 4`).
        tolerance_grad: stop when the largest gradient entry is at most this.
        tolerance_change: stop when the loss or the step changes by less than this.
        history_size: number of `(s, y)` pairs kept.
        line_search_fn: `None` (fixed steps) or `'strong_wolfe'`.
        maximize: maximise the closure's value instead.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None, *,
                 maximize=False):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, 'strong_wolfe'):
            raise ValueError(f"LBFGS: line_search_fn={line_search_fn!r} is not supported; use "
                             "None or 'strong_wolfe'")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn,
                                      maximize=maximize))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: parameter groups are not supported (PyTorch's LBFGS has "
                             'one group too); pass the parameters as one list')
        self._params = self.param_groups[0]['params']

    def add_param_group(self, group):
        if self.param_groups:
            raise ValueError("LBFGS: parameter groups are not supported (PyTorch's LBFGS has "
                             'one group too); pass the parameters as one list')
        super().add_param_group(group)

    # --- the parameters as one flat real vector ------------------------------------------------

    def _flat_grad(self, sign):
        return sign * np.concatenate([_pytorch_grad(p) for p in self._params])

    def _add(self, t, d):
        """Parameters += t * d."""
        offset = 0
        for p in self._params:
            w = _real_view(p.data) if p.data.dtype.kind == 'c' else p.data
            n = w.size
            w += (t * d[offset:offset + n]).reshape(w.shape)
            offset += n
            p._version[0] += 1

    def _set(self, values):
        for p, v in zip(self._params, values):
            np.copyto(p.data, v)
            p._version[0] += 1

    def _loss(self, closure, sign):
        """Call the closure (with grad enabled); its value, times `sign`, as a float."""
        with enable_grad():
            out = closure()
        value = out.data if isinstance(out, Tensor) else out
        return out, sign * float(np.asarray(value))

    def step(self, closure=None):
        """Run up to `max_iter` L-BFGS iterations.

        Args:
            closure: a function of no arguments that clears the gradients, computes the loss,
                calls `backward()` and returns the loss (required).

        Returns:
            The loss the first closure call returned.
        """
        if closure is None:
            raise ValueError('LBFGS.step needs a closure: a function that clears the '
                             'gradients, computes the loss, calls backward() and returns it')
        group = self.param_groups[0]
        lr, max_iter, max_eval = group['lr'], group['max_iter'], group['max_eval']
        tol_grad, tol_change = group['tolerance_grad'], group['tolerance_change']
        history_size = group['history_size']
        sign = -1.0 if group.get('maximize') else 1.0
        state = self.state.setdefault(self._params[0], {})
        state.setdefault('func_evals', 0)
        state.setdefault('n_iter', 0)

        orig_loss, loss = self._loss(closure, sign)
        evals = 1
        state['func_evals'] += 1
        with no_grad():
            flat_grad = self._flat_grad(sign)
            if np.max(np.abs(flat_grad)) <= tol_grad:
                return orig_loss
            d, t = state.get('d'), state.get('t')
            old_dirs, old_stps, ro = state.get('old_dirs'), state.get('old_stps'), state.get('ro')
            H_diag, prev_flat_grad = state.get('H_diag'), state.get('prev_flat_grad')
            prev_loss = state.get('prev_loss')
            n_iter = 0
            while n_iter < max_iter:
                n_iter += 1
                state['n_iter'] += 1
                # the direction: minus the approximate inverse Hessian times the gradient
                if state['n_iter'] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro, H_diag = [], [], [], 1
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = float(y.dot(s))
                    if ys > 1e-10:                 # keep the pair only where curvature > 0
                        if len(old_dirs) == history_size:
                            old_dirs.pop(0)
                            old_stps.pop(0)
                            ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        H_diag = ys / float(y.dot(y))
                    al = state.setdefault('al', [None] * history_size)
                    q = -flat_grad
                    for i in range(len(old_dirs) - 1, -1, -1):
                        al[i] = float(old_stps[i].dot(q)) * ro[i]
                        q += -al[i] * old_dirs[i]
                    d = q * H_diag
                    for i in range(len(old_dirs)):
                        be_i = float(old_dirs[i].dot(d)) * ro[i]
                        d += (al[i] - be_i) * old_stps[i]
                prev_flat_grad = flat_grad.copy()
                prev_loss = loss
                # the step length
                if state['n_iter'] == 1:
                    t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * lr
                else:
                    t = lr
                gtd = float(flat_grad.dot(d))
                if gtd > -tol_change:              # not a descent direction any more
                    break
                if group['line_search_fn'] is not None:
                    x0 = [p.data.copy() for p in self._params]

                    def evaluate(step):
                        self._add(step, d)
                        value = self._loss(closure, sign)[1]
                        g = self._flat_grad(sign)
                        self._set(x0)
                        return value, g

                    loss, flat_grad, t, ls_evals = _strong_wolfe(
                        evaluate, t, d, loss, flat_grad, gtd, tolerance_change=tol_change,
                        max_ls=max_eval - evals)
                    self._add(t, d)
                    opt_cond = np.max(np.abs(flat_grad)) <= tol_grad
                else:
                    self._add(t, d)
                    ls_evals = 0
                    opt_cond = False
                    if n_iter != max_iter:         # no evaluation after the last iteration
                        loss = self._loss(closure, sign)[1]
                        flat_grad = self._flat_grad(sign)
                        opt_cond = np.max(np.abs(flat_grad)) <= tol_grad
                        ls_evals = 1
                evals += ls_evals
                state['func_evals'] += ls_evals
                if (n_iter == max_iter or evals >= max_eval or opt_cond or
                        np.max(np.abs(d * t)) <= tol_change or
                        abs(loss - prev_loss) < tol_change):
                    break
            state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                         prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
