"""`jit` benchmarks (issue 6), one BLAS thread, every contender in this process.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/jit_bench.py [--quick] [--mlp|--chain] [--cpu-time]

The process pins itself to one CPU core (JAX's CPU runtime otherwise uses a thread pool).

1. One training step (forward, cross-entropy, backward, SGD update) of an MLP 64-256-256-10 on
   scikit-learn's digits, batch 64, float32: `cr.jit` of the functional step (NumPy and numba
   backends) against the same step run eagerly by chainrule, PyTorch eager, and `jax.jit`. The
   log-softmax of the loss is spelled two ways, each timed for `cr.jit` and `jax.jit`: with the
   library's `logsumexp` (`h - logsumexp(h, axis=1, keepdims=True)`) and by hand
   (`h - m - log(sum(exp(h - m)))`, `m` the row maximum), since the two stage different graphs.
   The step's eight matrix products alone (NumPy, same layouts) show the floor under it.
2. The gradient of a chain of 30 elementwise ops on a 1e6-element float64 vector: `cr.jit`
   (NumPy backend and numba backend) against chainrule eager, hand-written NumPy
   forward+backward, PyTorch eager and `jax.jit`.

Prints the best-of-rounds time per call (60 rounds of 10 steps for the MLP, 20 rounds of 2
gradients for the chain) and each contender's time divided by jit's (> 1: jit is faster). PyTorch, JAX and numba are optional (`pip install torch jax numba`);
missing ones are reported and skipped. `--mlp` runs only the MLP step, `--chain` only the chain. Every contender's result is checked against chainrule
eager before it is timed.
"""

import os
import random
import sys
import time

for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_v, '1')
# XLA's CPU runtime runs fused loops on a thread pool whatever the flags below say (measured: 1.8
# CPU-seconds per wall second for jax.jit here), so the whole process is pinned to one core:
# every contender gets exactly one
if hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false '
                                   'intra_op_parallelism_threads=1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402

QUICK = '--quick' in sys.argv
REPEAT = 3 if QUICK else 7
# a pause before each contender's turn: XLA's worker threads keep spinning for a while after a
# jax.jit call returns, and on the one core the process is pinned to they took that time from
# whichever contender ran next (measured: the same chainrule program 7 % slower right after
# jax.jit than elsewhere in the round)
SETTLE = float(os.environ.get('BENCH_SETTLE', '0.005'))
# `--cpu-time`: the process's CPU time (all its threads, so XLA's workers count) instead of wall
# time, for a machine so loaded that wall time mostly measures waiting for the core
CLOCK = time.process_time if '--cpu-time' in sys.argv else time.perf_counter


def best_times(contenders, number, rounds=None):
    """Best over `rounds` (default REPEAT) rounds of the mean time of `number` calls, per
    contender, in seconds.

    The contenders take turns within each round, so a change in the machine's load (it is
    shared) affects all of them alike instead of whichever ran at the time; and the best round
    is the one least disturbed, so many short rounds estimate each contender's own time better
    than a few long ones on a loaded machine."""
    for fn in contenders.values():
        fn()                                # warm up (traces, compiles)
    best = {name: float('inf') for name in contenders}
    items = list(contenders.items())
    order = random.Random(0)
    for _ in range(rounds or REPEAT):
        # a new order each round, so no contender always runs right after the same one (jax.jit's
        # spinning workers slow whichever follows it)
        order.shuffle(items)
        for name, fn in items:
            n = number[name] if isinstance(number, dict) else number
            if SETTLE:
                time.sleep(SETTLE)
            t0 = CLOCK()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (CLOCK() - t0) / n)
    return best


def optional(name):
    try:
        return __import__(name)
    except ImportError:
        print(f'  ({name} not installed: skipped)')
        return None


def report(title, times, ref):
    print(f'\n{title}')
    for name, t in times.items():
        ratio = t / times[ref]
        print(f'  {name:34s} {t * 1e6:12.1f} us   {ratio:7.2f}x the time of {ref}')


# --- 1. the MLP training step ---------------------------------------------------------------------

def digits_batch():
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = d.data.astype(np.float32) / 16.0, d.target
    except ImportError:
        rng = np.random.default_rng(0)
        x, y = rng.random((1797, 64), np.float32), rng.integers(0, 10, 1797)
    idx = np.random.default_rng(0).integers(0, len(x), 64)
    return x[idx], y[idx]


def init_params():
    rng = np.random.default_rng(1)
    sizes = [64, 256, 256, 10]
    return [(rng.standard_normal((m, n)).astype(np.float32) * np.float32(np.sqrt(2.0 / m)),
             np.zeros(n, np.float32)) for m, n in zip(sizes[:-1], sizes[1:])]


LR = 0.05


def make_mlp_loss(xp, logsumexp):
    """The MLP's mean cross-entropy, written once for chainrule.numpy and for jax.numpy; with
    `logsumexp=None` the log-softmax is spelled out by hand."""
    def loss(params, x, y1h):
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = xp.maximum(h, 0.0)
        if logsumexp is None:
            m = xp.max(h, axis=1, keepdims=True)
            logp = h - m - xp.log(xp.sum(xp.exp(h - m), axis=1, keepdims=True))
        else:
            logp = h - logsumexp(h, axis=1, keepdims=True)
        return -xp.sum(logp * y1h) / x.shape[0]
    return loss


def make_sgd_step(loss_fn):
    def sgd_step(params, x, y1h):
        loss, grads = cr.value_and_grad(loss_fn)(params, x, y1h)
        new = [(w - LR * gw, b - LR * gb) for (w, b), (gw, gb) in zip(params, grads)]
        return new, loss
    return sgd_step


mlp_loss = make_mlp_loss(cnp, cnp.logsumexp)
sgd_step = make_sgd_step(mlp_loss)
# the log-softmax spelled out by hand (`h - m - log(sum(exp(h - m)))`)
sgd_step_hand = make_sgd_step(make_mlp_loss(cnp, None))


def bench_mlp():
    x, y = digits_batch()
    y1h = np.eye(10, dtype=np.float32)[y]
    params = init_params()
    # a step takes ~0.6 ms: many rounds of a few steps each (see best_times)
    number, rounds = 10, (6 if QUICK else 60)
    runs = {}

    want_params, want_loss = sgd_step(params, x, y1h)

    def jit_runner(step, **kw):
        """A contender running `cr.jit(step)` on its own copy of the parameters, checked first."""
        jstep = cr.jit(step, **kw)
        got_params, got_loss = jstep(params, x, y1h)
        assert np.allclose(got_loss, want_loss, rtol=1e-5)
        assert all(np.allclose(g[0], w[0], atol=1e-6) for g, w in zip(got_params, want_params))
        state = {'p': params}

        def run():
            state['p'], _ = jstep(state['p'], x, y1h)
        return run

    runs['chainrule jit'] = jit_runner(sgd_step)
    runs['chainrule jit, log-softmax by hand'] = jit_runner(sgd_step_hand)
    if optional('numba') is not None:
        runs['chainrule jit (numba backend)'] = jit_runner(sgd_step, backend='numba')
        runs['chainrule jit (numba backend), log-softmax by hand'] = jit_runner(
            sgd_step_hand, backend='numba')

    # the floor under any NumPy-based step: its eight matrix products alone, in the layouts the
    # jitted step uses (forward x @ W; backward G @ W.T and H.T @ G, the 64x256 by (256x256).T
    # one as (W @ G.T).T: see bench/jit_mlp_gemms.py for each product alone)
    (w1, _), (w2, _), (w3, _) = params
    h1, g3 = np.ones((64, 256), np.float32), np.ones((64, 10), np.float32)

    def gemms_only():
        return (np.dot(x, w1), np.dot(h1, w2), np.dot(h1, w3), np.dot(g3, w3.T), np.dot(h1.T, g3),
                np.dot(w2, h1.T).T, np.dot(h1.T, h1), np.dot(x.T, h1))
    runs['NumPy: the 8 matrix products alone'] = gemms_only

    state2 = {'p': params}

    def run_eager():
        state2['p'], _ = sgd_step(state2['p'], x, y1h)
    runs['chainrule eager (functional)'] = run_eager

    torch = optional('torch')
    if torch is not None:
        torch.set_num_threads(1)
        tp = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
              for w, b in params]
        tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
        flat = [t for pair in tp for t in pair]
        opt = torch.optim.SGD(flat, lr=LR)

        def torch_step():
            opt.zero_grad()
            h = tx
            for i, (w, b) in enumerate(tp):
                h = h @ w + b
                if i < len(tp) - 1:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, ty)
            loss.backward()
            opt.step()
            return loss
        assert abs(float(torch_step().detach()) - float(want_loss)) < 1e-4
        runs['PyTorch eager'] = torch_step

    jax = optional('jax')
    if jax is not None:
        jnp = jax.numpy

        jp = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
        jx, jy = jnp.asarray(x), jnp.asarray(y1h)

        def jax_runner(lse):
            jloss = make_mlp_loss(jnp, lse)

            @jax.jit
            def jstep_jax(p, x, y1h):
                loss, g = jax.value_and_grad(jloss)(p, x, y1h)
                return [(w - LR * gw, b - LR * gb) for (w, b), (gw, gb) in zip(p, g)], loss

            _, jl = jstep_jax(jp, jx, jy)
            assert abs(float(jl) - float(want_loss)) < 1e-4
            js = {'p': jp}

            def run_jax():
                js['p'], loss = jstep_jax(js['p'], jx, jy)
                loss.block_until_ready()
            return run_jax
        runs['jax.jit'] = jax_runner(jax.scipy.special.logsumexp)
        runs['jax.jit, log-softmax by hand'] = jax_runner(None)

    times = best_times(runs, number, rounds)
    report('1. MLP 64-256-256-10 training step, batch 64, float32 (time per step)', times,
           'chainrule jit')
    if 'jax.jit' in times:
        for backend in ('', ' (numba backend)'):
            for suffix in ('', ', log-softmax by hand'):
                ours = f'chainrule jit{backend}{suffix}'
                if ours in times:
                    print(f'  jax.jit{suffix} / {ours}: '
                          f'{times["jax.jit" + suffix] / times[ours]:.2f}x')
    return times


# --- 2. gradient of an elementwise chain ---------------------------------------------------------

N_ITER = 5     # 6 elementwise ops per iteration: 30 in all


def chain(x):
    for _ in range(N_ITER):
        x = cnp.sin(x) * 0.9 + cnp.exp(-(x * x))      # sin, mul, mul, neg, exp, add
    return cnp.sum(x)


def numpy_fwd_bwd(x):
    """Hand-written: forward keeping what the backward needs, then the chain rule."""
    xs, es = [], []
    for _ in range(N_ITER):
        e = np.exp(-(x * x))
        xs.append(x)
        es.append(e)
        x = np.sin(x) * 0.9 + e
    g = np.ones_like(x)
    for x, e in zip(reversed(xs), reversed(es)):
        g = g * (np.cos(x) * 0.9 - 2.0 * x * e)     # d/dx [0.9 sin x + exp(-x^2)]
    return g


def bench_chain():
    n = 10**5 if QUICK else 10**6
    x = np.random.default_rng(0).uniform(-1, 1, n)
    # many short rounds (see best_times): a round of 10 calls of each contender takes ~10 s,
    # long enough on the shared machine that no round is undisturbed
    number, rounds = (3, REPEAT) if QUICK else (2, 20)
    runs = {}
    want = cr.grad(chain)(x)

    jg = cr.jit(cr.grad(chain))
    assert np.allclose(jg(x), want, rtol=1e-12)
    runs['chainrule jit (NumPy backend)'] = lambda: jg(x)
    if optional('numba') is not None:
        jn = cr.jit(cr.grad(chain), backend='numba')
        assert np.allclose(jn(x), want, rtol=1e-12)
        runs['chainrule jit (numba backend)'] = lambda: jn(x)
    runs['chainrule eager'] = lambda: cr.grad(chain)(x)

    def tensor_backward():      # the same program on the eager Tensor tape
        t = cr.Tensor(x, requires_grad=True)
        y = t
        for _ in range(N_ITER):
            y = y.sin() * 0.9 + (-(y * y)).exp()
        y.sum().backward()
        return t.grad
    assert np.allclose(np.asarray(tensor_backward()), want, rtol=1e-12)
    runs['chainrule eager (Tensor.backward)'] = tensor_backward
    assert np.allclose(numpy_fwd_bwd(x), want, rtol=1e-12)
    runs['hand-written NumPy fwd+bwd'] = lambda: numpy_fwd_bwd(x)

    torch = optional('torch')
    if torch is not None:
        torch.set_num_threads(1)

        def torch_grad():
            t = torch.tensor(x, requires_grad=True)
            y = t
            for _ in range(N_ITER):
                y = torch.sin(y) * 0.9 + torch.exp(-(y * y))
            y.sum().backward()
            return t.grad
        assert np.allclose(torch_grad().numpy(), want, rtol=1e-12)
        runs['PyTorch eager'] = torch_grad

    jax = optional('jax')
    if jax is not None:
        jax.config.update('jax_enable_x64', True)
        jnp = jax.numpy

        def jchain(x):
            for _ in range(N_ITER):
                x = jnp.sin(x) * 0.9 + jnp.exp(-(x * x))
            return jnp.sum(x)
        jgrad = jax.jit(jax.grad(jchain))
        jx = jnp.asarray(x)
        assert np.allclose(np.asarray(jgrad(jx)), want, rtol=1e-12)
        runs['jax.jit'] = lambda: jgrad(jx).block_until_ready()

    times = best_times(runs, number, rounds)
    ref = 'chainrule jit (numba backend)' if 'chainrule jit (numba backend)' in times else \
        'chainrule jit (NumPy backend)'
    report(f'2. gradient of 30 elementwise ops on {n:.0e} float64 (time per gradient)',
           times, ref)
    hand = times['hand-written NumPy fwd+bwd']
    print('  as a fraction of the hand-written NumPy time (issue 16: jit <= 0.5):')
    print('    ' + ', '.join(f'{name} {t / hand:.2f}' for name, t in times.items()
                             if not name.startswith('hand')))
    return times


if __name__ == '__main__':
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'
    print(f'numpy {np.__version__}, one BLAS thread, pinned to {cores} core; best round of '
          f'{REPEAT} (MLP: 60 rounds of 10 steps); '
          f'{"CPU" if CLOCK is time.process_time else "wall"} time')
    if '--chain' not in sys.argv:
        bench_mlp()
    if '--mlp' not in sys.argv:
        bench_chain()
