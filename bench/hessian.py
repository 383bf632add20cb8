"""Hessians and Jacobians on NumPy code: chainrule's `hessian`/`jacrev`/`jacfwd` against
`torch.func`, HIPS autograd and JAX (unjitted and jitted), in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/hessian.py [--n 200] [--repeat 7]

Problems (issue 4):
  * the Hessian of f(x) = sum(tanh(W x)^2) + sum(x^4) for x of size n (n x n result);
  * the Jacobian of the n -> n map g(x) = tanh(W x) * x + sin(x);
  * per-example gradients, `vmap(grad(loss), in_axes=(None, 0, 0))`, of a one-hidden-layer
    regression loss for a batch of 256 examples (32 features, 64 hidden units): the
    showcase of `vmap` (HIPS autograd has no vmap, so it runs a Python loop of `grad`).

Every contender's result is checked against chainrule's (and the closed-form Hessian) before
timing. Times are the best of `--repeat` runs; the contenders take turns within each round,
so a busy machine slows all alike. Ratios are peer time / chainrule time: > 1 means chainrule
is faster. Missing peers (not installed) are skipped with a note; autograd and JAX are
benchmark-only dependencies (`pip install autograd jax`).
"""

import argparse
import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false '
                                   'intra_op_parallelism_threads=1')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_ENABLE_X64', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402


def closed_form_hessian(W, x):
    # with s = tanh(Wx): H = W^T diag(2 (1 - s^2)(1 - 3 s^2)) W + diag(12 x^2)
    s = np.tanh(W @ x)
    return W.T @ (W * (2 * (1 - s ** 2) * (1 - 3 * s ** 2))[:, None]) + np.diag(12 * x ** 2)


def contenders(W):
    """{problem: [(name, thunk-maker)]}: each maker takes x and returns a zero-argument
    function computing the result as a NumPy array."""
    def f(x):
        return cnp.sum(cnp.tanh(W @ x) ** 2) + cnp.sum(x ** 4)

    def g(x):
        return cnp.tanh(W @ x) * x + cnp.sin(x)

    hess = [('chainrule hessian (fwd-over-rev)', lambda x: lambda: cr.hessian(f)(x))]
    jac = [('chainrule jacrev', lambda x: lambda: cr.jacrev(g)(x)),
           ('chainrule jacfwd', lambda x: lambda: cr.jacfwd(g)(x))]
    notes = []
    jit = getattr(cr, 'jit', None)
    if jit is not None:
        # the same transforms, traced once and lowered to straight-line NumPy
        hess.append(('chainrule jit(hessian)', lambda x, h=jit(cr.hessian(f)): lambda: h(x)))
        jac.append(('chainrule jit(jacrev)', lambda x, j=jit(cr.jacrev(g)): lambda: j(x)))
        jac.append(('chainrule jit(jacfwd)', lambda x, j=jit(cr.jacfwd(g)): lambda: j(x)))

    try:
        import torch
        from torch.func import hessian as t_hessian, jacfwd as t_jacfwd, jacrev as t_jacrev
        torch.set_num_threads(1)
        Wt = torch.tensor(W)

        def tf(x):
            return (torch.tanh(Wt @ x) ** 2).sum() + (x ** 4).sum()

        def tg(x):
            return torch.tanh(Wt @ x) * x + torch.sin(x)

        hess.append(('torch.func.hessian', lambda x: (
            lambda tx=torch.tensor(x): t_hessian(tf)(tx).numpy())))
        jac.append(('torch.func.jacrev', lambda x: (
            lambda tx=torch.tensor(x): t_jacrev(tg)(tx).numpy())))
        jac.append(('torch.func.jacfwd', lambda x: (
            lambda tx=torch.tensor(x): t_jacfwd(tg)(tx).numpy())))
    except ImportError:
        notes.append('torch not installed: skipped')

    try:
        import autograd
        import autograd.numpy as anp

        def af(x):
            return anp.sum(anp.tanh(anp.dot(W, x)) ** 2) + anp.sum(x ** 4)

        def ag(x):
            return anp.tanh(anp.dot(W, x)) * x + anp.sin(x)

        hess.append(('autograd.hessian', lambda x: lambda: autograd.hessian(af)(x)))
        jac.append(('autograd.jacobian', lambda x: lambda: autograd.jacobian(ag)(x)))
    except ImportError:
        notes.append('autograd not installed (pip install autograd): skipped')

    try:
        import jax
        import jax.numpy as jnp
        jax.config.update('jax_enable_x64', True)
        Wj = jnp.asarray(W)

        def jf(x):
            return jnp.sum(jnp.tanh(Wj @ x) ** 2) + jnp.sum(x ** 4)

        def jg(x):
            return jnp.tanh(Wj @ x) * x + jnp.sin(x)

        jh, jjr = jax.hessian(jf), jax.jacrev(jg)
        jh_jit, jjr_jit = jax.jit(jh), jax.jit(jjr)

        def run(fn):
            return lambda x: (lambda xj=jnp.asarray(x): np.asarray(fn(xj).block_until_ready()))

        hess.append(('jax.hessian (unjitted)', run(jh)))
        hess.append(('jax.jit(jax.hessian)', run(jh_jit)))
        jac.append(('jax.jacrev (unjitted)', run(jjr)))
        jac.append(('jax.jit(jax.jacrev)', run(jjr_jit)))
    except ImportError:
        notes.append('jax not installed (pip install jax): skipped')
    return {'hessian': hess, 'jacobian': jac, 'per-example': per_example()}, notes


def per_example_problem():
    rng = np.random.default_rng(1)
    w = rng.normal(size=32 * 64 + 64) / 8
    xs, ys = rng.normal(size=(256, 32)), rng.normal(size=256)
    return w, xs, ys


def per_example():
    """Contenders for per-example gradients; each maker takes (w, xs, ys)."""
    def loss(w, x, y):
        h = cnp.tanh(x @ cnp.reshape(w[:2048], (32, 64)))
        return (h @ w[2048:] - y) ** 2

    pe = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))
    out = [('chainrule vmap(grad)', lambda w, xs, ys: lambda: pe(w, xs, ys))]
    try:
        import torch
        from torch.func import grad, vmap

        def tloss(w, x, y):
            h = torch.tanh(x @ w[:2048].reshape(32, 64))
            return (h @ w[2048:] - y) ** 2
        tpe = vmap(grad(tloss), in_dims=(None, 0, 0))
        out.append(('torch.func vmap(grad)', lambda w, xs, ys: (
            lambda a=tuple(map(torch.tensor, (w, xs, ys))): tpe(*a).numpy())))
    except ImportError:
        pass
    try:
        import autograd
        import autograd.numpy as anp

        def aloss(w, x, y):
            h = anp.tanh(anp.dot(x, anp.reshape(w[:2048], (32, 64))))
            return (anp.dot(h, w[2048:]) - y) ** 2
        ag = autograd.grad(aloss)
        out.append(('autograd loop of grad', lambda w, xs, ys: (
            lambda: np.stack([ag(w, x, y) for x, y in zip(xs, ys)]))))
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        def jloss(w, x, y):
            h = jnp.tanh(x @ w[:2048].reshape(32, 64))
            return (h @ w[2048:] - y) ** 2
        jpe = jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0))
        jpe_jit = jax.jit(jpe)
        for name, fn in (('jax vmap(grad) (unjitted)', jpe), ('jax.jit(vmap(grad))', jpe_jit)):
            out.append((name, lambda w, xs, ys, fn=fn: (
                lambda a=tuple(map(jnp.asarray, (w, xs, ys))):
                np.asarray(fn(*a).block_until_ready()))))
    except ImportError:
        pass
    return out


def best_times(thunks, repeat):
    for t in thunks:
        t()                               # warm up (and compile, for jax.jit)
    times = [[] for _ in thunks]
    for _ in range(repeat):
        for i, t in enumerate(thunks):
            t0 = time.perf_counter()
            t()
            times[i].append(time.perf_counter() - t0)
    return [min(ts) for ts in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=200)
    ap.add_argument('--repeat', type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.n
    W = rng.normal(size=(n, n)) / np.sqrt(n)
    x = rng.normal(size=n) * 0.5
    table, notes = contenders(W)
    H = closed_form_hessian(W, x)
    pe_args = per_example_problem()
    J = cr.jacrev(lambda x: cnp.tanh(W @ x) * x + cnp.sin(x))(x)
    s = np.tanh(W @ x)
    J_closed = ((1 - s ** 2) * x)[:, None] * W + np.diag(s + np.cos(x))
    np.testing.assert_allclose(J, J_closed, rtol=1e-10, atol=1e-12)
    print(f'n = {n}, one BLAS thread, best of {args.repeat}; ratio = peer time / chainrule '
          'time (> 1: chainrule faster)')
    for note in notes:
        print('note:', note)
    for problem, entries in table.items():
        want = {'hessian': H, 'jacobian': J}.get(problem)
        thunks = []
        for name, make in entries:
            thunk = make(*pe_args) if problem == 'per-example' else make(x)
            if want is None:
                want = np.asarray(thunk())      # per-example: checked against chainrule's
            got = np.asarray(thunk())
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10, err_msg=name)
            thunks.append(thunk)
        times = best_times(thunks, args.repeat)
        base = times[0]
        label = {'hessian': f'Hessian of sum(tanh(W x)^2) + sum(x^4), {n} -> 1',
                 'jacobian': f'Jacobian of tanh(W x) * x + sin(x), {n} -> {n}',
                 'per-example': 'Per-example gradients, 256 examples, 2112 parameters'}[problem]
        print(f'\n{label}')
        for (name, _), t in zip(entries, times):
            print(f'  {name:36s} {t * 1e3:9.3f} ms   ratio {t / base:7.2f}')


if __name__ == '__main__':
    main()
