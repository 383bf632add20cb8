"""Checks that run on every rank of an MPI job, launched by `tests/test_distributed.py` as
`mpiexec -n N python tests/distributed_worker.py PART...` (each launch runs many checks, since
starting MPI jobs is the slow part). A failed check raises, which aborts the whole job (the
package's excepthook); rank 0 prints `PASS <name>` for each check that passed.

Derivatives are checked against central finite differences of the *global* function: with a
cotangent `ct_r` and a direction `v_r` drawn on each rank, the scalar
`L(x) = sum_r <ct_r, f(x)_r>` is evaluated on all ranks at `x +- eps v`; the VJP must satisfy
`sum_r <vjp_r(ct), v_r> = dL/dv` and the JVP `sum_r <ct_r, jvp_r(v)> = dL/dv`. The sums over
ranks use mpi4py directly (not the code under test).
"""

import os
import sys
import tempfile

import numpy as np
from mpi4py import MPI

import chainrule as cr
import chainrule.distributed as dist
from chainrule import nn, optim

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()


def passed(name):
    if RANK == 0:
        print(f'PASS {name}', flush=True)


def total(v):
    """Sum of a float over the ranks (mpi4py's pickle-based allreduce: independent of us)."""
    return WORLD.allreduce(float(v))


def close(a, b, tol, what):
    if not abs(a - b) <= tol * (1 + abs(a) + abs(b)):
        raise AssertionError(f'{what}: {a!r} != {b!r} (rank {RANK})')


# --- collectives: values ------------------------------------------------------------------

def gathered(x):
    """Every rank's `x`, stacked (via mpi4py)."""
    return np.stack(WORLD.allgather(np.asarray(x)))


def check_values():
    rng = np.random.default_rng(RANK)
    x = rng.standard_normal((SIZE * 2, 3))
    every = gathered(x)
    np.testing.assert_allclose(dist.allreduce(x), every.sum(0), rtol=1e-12)
    np.testing.assert_allclose(dist.allreduce(x, op='mean'), every.mean(0), rtol=1e-12)
    np.testing.assert_array_equal(dist.allreduce(x, op='max'), every.max(0))
    np.testing.assert_array_equal(dist.allreduce(x, op='min'), every.min(0))
    np.testing.assert_array_equal(dist.allgather(x, axis=0), np.concatenate(list(every), 0))
    np.testing.assert_array_equal(dist.allgather(x, axis=1), np.concatenate(list(every), 1))
    blocks = np.split(every.sum(0), SIZE, axis=0)
    np.testing.assert_allclose(dist.reduce_scatter(x, axis=0), blocks[RANK], rtol=1e-12)
    np.testing.assert_array_equal(dist.broadcast(x, root=SIZE - 1), every[SIZE - 1])
    red = dist.reduce(x, root=1)
    np.testing.assert_allclose(red, every.sum(0) if RANK == 1 else 0 * x, rtol=1e-12)
    want = np.concatenate([np.split(every[s], SIZE, axis=0)[RANK] for s in range(SIZE)], 0)
    np.testing.assert_array_equal(dist.alltoall(x, axis=0), want)
    left, right = (RANK - 1) % SIZE, (RANK + 1) % SIZE
    np.testing.assert_array_equal(dist.sendrecv(x, source=left, dest=right), every[left])
    # 0-d values stay 0-d
    s = dist.allreduce(float(RANK))
    assert s.shape == () and s == sum(range(SIZE))
    assert dist.broadcast(np.float32(RANK), root=1).shape == ()
    # integer mean is float64, as np.mean
    assert dist.allreduce(np.array([RANK]), op='mean').dtype == np.float64
    # Tensors in, Tensors out
    t = dist.allreduce(cr.tensor(x), op='sum')
    assert isinstance(t, cr.Tensor)
    # eager send/recv
    if RANK == 0:
        dist.send(np.arange(6.0).reshape(2, 3), dest=SIZE - 1, tag=7)
    if RANK == SIZE - 1:
        np.testing.assert_array_equal(dist.recv(0, tag=7), np.arange(6.0).reshape(2, 3))
    passed('collective values')


def check_shape_mismatch():
    x = np.zeros((2, 3 + (RANK == 1)))
    try:
        dist.allreduce(x)
    except cr.ShapeError as e:
        msg = str(e)
        assert '(2, 3)' in msg and '(2, 4)' in msg and 'allreduce' in msg, msg
    else:
        raise AssertionError('a shape mismatch across ranks was not detected')
    passed('shape mismatch names both shapes')


# --- collectives: derivatives -------------------------------------------------------------

def collectives():
    """(name, function of one local array, input shape)."""
    n = SIZE
    left, right = (RANK - 1) % n, (RANK + 1) % n
    return [
        ('allreduce-sum', lambda x: dist.allreduce(x, 'sum'), (2 * n, 3)),
        ('allreduce-mean', lambda x: dist.allreduce(x, 'mean'), (2 * n, 3)),
        ('allreduce-max', lambda x: dist.allreduce(x, 'max'), (2 * n, 3)),
        ('allreduce-min', lambda x: dist.allreduce(x, 'min'), (2 * n, 3)),
        ('allgather-0', lambda x: dist.allgather(x, 0), (2 * n, 3)),
        ('allgather-1', lambda x: dist.allgather(x, 1), (2 * n, 3)),
        ('reduce_scatter-0', lambda x: dist.reduce_scatter(x, 0), (2 * n, 3)),
        ('reduce_scatter-1', lambda x: dist.reduce_scatter(x, 1), (3, 2 * n)),
        ('broadcast', lambda x: dist.broadcast(x, root=n - 1), (2 * n, 3)),
        ('reduce', lambda x: dist.reduce(x, root=0), (2 * n, 3)),
        ('alltoall-0', lambda x: dist.alltoall(x, 0), (2 * n, 3)),
        ('alltoall-1', lambda x: dist.alltoall(x, 1), (3, n)),
        ('sendrecv-ring', lambda x: dist.sendrecv(x, source=left, dest=right), (2 * n, 3)),
        # a nonlinear program around collectives (the chain rule across ranks)
        ('composite', lambda x: cr.numpy.tanh(dist.allreduce(x * x, 'mean')) *
         dist.allgather(cr.numpy.sin(x), 0)[RANK * x.shape[0]:][:x.shape[0]], (2 * n, 3)),
    ]


def fd_check(name, f, x, tol=1e-7):
    """VJP and JVP of `f` (plain, under jit) against finite differences of the global loss."""
    rng = np.random.default_rng(1000 + RANK)
    y = np.asarray(f(x))
    ct = rng.standard_normal(y.shape)
    v = rng.standard_normal(x.shape)

    def loss(z):
        return total(np.sum(ct * np.asarray(f(z))))

    eps = 1e-6
    fd = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)

    def pull(x, ct):
        return cr.vjp(f, x)[1](ct)

    def push(x, v):
        return cr.jvp(f, (x,), (v,))[1]

    for mode, p, q in (('', pull, push), ('jit ', cr.jit(pull), cr.jit(push))):
        rev = total(np.sum(np.asarray(p(x, ct)) * v))
        fwd = total(np.sum(ct * np.asarray(q(x, v))))
        close(rev, fd, tol, f'{mode}VJP of {name}')
        close(fwd, fd, tol, f'{mode}JVP of {name}')
    # grad of a jitted function (jit_call's own rules) and reverse-over-forward
    g = cr.grad(lambda z: cr.numpy.sum(ct * cr.jit(f)(z)))(x)
    close(total(np.sum(np.asarray(g) * v)), fd, tol, f'grad(jit(f)) of {name}')


def check_derivatives():
    rng = np.random.default_rng(RANK + 17)
    for name, f, shape in collectives():
        x = rng.standard_normal(shape)
        fd_check(name, f, x)
        # vmap: the batched program is a collective computation too; its derivatives by FD,
        # and its values equal a loop over the batch
        xs = rng.standard_normal((3,) + shape)
        fb = cr.vmap(f)
        ys = np.asarray(fb(xs))
        loop = np.stack([np.asarray(f(xs[k])) for k in range(3)])
        np.testing.assert_allclose(ys, loop, rtol=1e-12, atol=1e-12, err_msg=name)
        fd_check(f'vmap {name}', fb, xs)
        # vmap of the gradient equals the gradient per example
        gb = np.asarray(cr.vmap(cr.grad(lambda z: cr.numpy.sum(cr.numpy.sin(f(z)))))(xs))
        for k in range(3):
            gk = cr.grad(lambda z: cr.numpy.sum(cr.numpy.sin(f(z))))(xs[k])
            np.testing.assert_allclose(gb[k], gk, rtol=1e-10, atol=1e-12, err_msg=name)
        passed(f'derivatives of {name} (plain, jit, vmap)')
    # second order through a collective: Hessian-vector product by FD of the gradient
    f = collectives()[-1][1]
    x, v = rng.standard_normal((2 * SIZE, 3)), rng.standard_normal((2 * SIZE, 3))
    scalar = lambda z: cr.numpy.sum(cr.numpy.sin(f(z)))   # noqa: E731
    hv = cr.jvp(cr.grad(scalar), (x,), (v,))[1]
    g = cr.grad(scalar)
    fd = (np.asarray(g(x + 1e-5 * v)) - np.asarray(g(x - 1e-5 * v))) / 2e-5
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7)
    # Tensor.backward through collectives equals cr.grad
    t = cr.tensor(x, requires_grad=True)
    cr.numpy.sum(cr.numpy.sin(f(t))).backward()
    np.testing.assert_allclose(t.grad.numpy(), np.asarray(g(x)), rtol=1e-12)
    passed('second order and Tensor.backward through collectives')


def check_model_parallel():
    """A Megatron-style MLP split over the ranks (first layer by columns, second by rows,
    joined by an all-reduce) has the gradient of the same MLP in one process."""
    rng = np.random.default_rng(5)                       # the same full weights on every rank
    d, h, o = 3, 2 * SIZE, 2
    x, w1, w2 = rng.standard_normal((4, d)), rng.standard_normal((d, h)), \
        rng.standard_normal((h, o))
    cols = slice(2 * RANK, 2 * RANK + 2)
    tanh, total_sum = cr.numpy.tanh, cr.numpy.sum

    def sharded(a, b):      # the loss is replicated on every rank: count it once
        y = dist.allreduce(tanh(x @ a) @ b, 'sum')
        return total_sum(y * y) / SIZE

    def full(a, b):
        y = tanh(x @ a) @ b
        return total_sum(y * y)

    ga, gb = cr.grad(sharded, argnums=(0, 1))(w1[:, cols], w2[cols])
    fa, fb = cr.grad(full, argnums=(0, 1))(w1, w2)
    np.testing.assert_allclose(ga, fa[:, cols], rtol=1e-12)
    np.testing.assert_allclose(gb, fb[cols], rtol=1e-12)
    ja, jb = cr.jit(cr.grad(sharded, argnums=(0, 1)))(w1[:, cols], w2[cols])
    np.testing.assert_allclose(ja, fa[:, cols], rtol=1e-12)
    passed('model-parallel MLP has the one-process gradient')


# --- data, checkpoints, metrics -----------------------------------------------------------

def check_sampler():
    for n, drop in ((10, False), (10, True), (3 * SIZE, False)):
        s = dist.DistributedSampler(n, shuffle=True, seed=3, drop_last=drop)
        for epoch in (0, 1):
            s.set_epoch(epoch)
            mine = s.indices()
            every = WORLD.allgather(mine.tolist())
            assert len({len(e) for e in every}) == 1, every      # the same count everywhere
            flat = sorted(i for e in every for i in e)
            if drop:
                assert len(set(flat)) == len(flat) == n // SIZE * SIZE
            else:
                assert set(flat) == set(range(n)) and len(flat) == -(-n // SIZE) * SIZE
        s.set_epoch(0)
        e0 = s.indices()
        s.set_epoch(1)
        assert not np.array_equal(e0, s.indices()) or n < 4
    # with the DataLoader: shards of a dataset, same batches as indexing by the sampler
    x = np.arange(20.0).reshape(10, 2)
    s = dist.DistributedSampler(10, shuffle=False)
    batches = [xb.numpy() for xb, in cr.data.DataLoader((x,), batch_size=2, sampler=s)]
    np.testing.assert_array_equal(np.concatenate(batches), x[s.indices()])
    passed('DistributedSampler shards')


def check_checkpoint_and_metrics(folder):
    path = os.path.join(folder, 'ckpt.npz')
    state = {'w': np.full(3, float(RANK)), 'step': 5}
    dist.save_checkpoint(path, state)
    got = dist.load_checkpoint(path)
    np.testing.assert_array_equal(got['w'], np.zeros(3))     # rank 0's values everywhere
    assert got['step'] == 5
    m = dist.reduce_metrics({'loss': float(RANK), 'acc': cr.tensor(2.0 * RANK)})
    close(m['loss'], (SIZE - 1) / 2, 1e-12, 'reduce_metrics mean')
    close(m['acc'], SIZE - 1.0, 1e-12, 'reduce_metrics mean of a Tensor')
    assert dist.reduce_metrics({'n': 1}, op='sum')['n'] == SIZE
    it = dist.progress(range(3), disable=True)
    assert list(it) == [0, 1, 2]
    passed('checkpoint on rank 0, metrics, progress')


# --- data parallelism ---------------------------------------------------------------------

class Net(nn.Module):
    """A small MLP with a branch used every third step and a layer never used."""

    def __init__(self, rng):
        self.a = nn.Linear(5, 16, rng=rng, dtype=np.float64)
        self.b = nn.Linear(16, 3, rng=rng, dtype=np.float64)
        self.extra = nn.Linear(16, 3, rng=rng, dtype=np.float64)
        self.never = nn.Linear(3, 3, rng=rng, dtype=np.float64)

    def forward(self, x, extra=False):
        h = cr.numpy.tanh(self.a(x))
        out = self.b(h)
        return out + self.extra(h) if extra else out


def _data(steps, batch, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, batch, 5)), rng.integers(0, 3, (steps, batch))


def _train(model, make_opt, xs, ys, accumulate, ddp=None):
    """Train `model` (or `ddp` wrapping it) on the given batches; with `accumulate`, each step
    accumulates two micro-batches (the first under no_sync)."""
    F = nn.functional
    opt = make_opt(model.parameters())
    run = ddp or model
    for step in range(len(xs)):
        opt.zero_grad()
        extra = step % 3 == 0
        if accumulate:
            half = len(xs[step]) // 2
            parts = [(xs[step][:half], ys[step][:half]), (xs[step][half:], ys[step][half:])]
        else:
            parts = [(xs[step], ys[step])]
        for k, (xb, yb) in enumerate(parts):
            last = k == len(parts) - 1
            ctx = ddp.no_sync() if ddp is not None and not last else _Null()
            with ctx:
                loss = F.cross_entropy(run(cr.tensor(xb), extra=extra), yb)
                loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def check_ddp_matches_one_process():
    steps, per_rank = 20, 4
    optimizers = {
        'SGD': lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        'Adam': lambda ps: optim.Adam(ps, lr=1e-2),
    }
    for oname, make_opt in optimizers.items():
        for accumulate in (False, True):
            for cap in (25, 1e-4):          # one bucket; a bucket per parameter
                b = per_rank * SIZE * (2 if accumulate else 1)
                xs, ys = _data(steps, b, seed=11)
                # one process on the whole batch B (every rank computes it, no communication)
                ref = _train(Net(rng=0), make_opt, xs, ys, accumulate)
                # data parallel: rank r takes its B/size slice of each (micro-)batch; the
                # replicas start from different weights (rank 0's are broadcast)
                model = Net(rng=RANK)
                ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap)
                if accumulate:
                    h = b // 2
                    sl = lambda a: np.concatenate(   # noqa: E731
                        [a[:, :h][:, RANK * per_rank:(RANK + 1) * per_rank],
                         a[:, h:][:, RANK * per_rank:(RANK + 1) * per_rank]], 1)
                else:
                    sl = lambda a: a[:, RANK * per_rank:(RANK + 1) * per_rank]   # noqa: E731
                got = _train(model, make_opt, sl(xs), sl(ys), accumulate, ddp=ddp)
                for p, q in zip(got, ref):
                    np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-11,
                                               err_msg=f'{oname} accumulate={accumulate}')
                assert model.never.weight.grad is None          # unused everywhere: None
                # every rank holds the same parameters
                for p in got:
                    np.testing.assert_array_equal(p, WORLD.bcast(p, root=0))
    passed('DDP on B/size per rank equals one process on B (SGD, Adam, no_sync, buckets)')


def check_ddp_param_used_on_one_rank():
    model = Net(rng=0)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-4)
    x = np.random.default_rng(RANK).standard_normal((4, 5))
    # reference: this rank's local gradient of the branch, without communication
    local = Net(rng=0)
    cr.numpy.sum(local(cr.tensor(x), extra=(RANK == 0))).backward()
    g0 = WORLD.bcast(local.extra.weight.grad.numpy() if RANK == 0 else None, root=0)
    cr.numpy.sum(ddp(cr.tensor(x), extra=(RANK == 0))).backward()
    np.testing.assert_allclose(model.extra.weight.grad.numpy(), g0 / SIZE, rtol=1e-12)
    passed('a parameter used on one rank only gets the averaged gradient everywhere')


def check_mean_gradients():
    rng = np.random.default_rng(RANK)
    params = {'w': rng.standard_normal((3, 2)), 'b': rng.standard_normal(2).astype(np.float32)}
    grads = cr.grad(lambda p: cr.numpy.sum(cr.numpy.sin(p['w'])) + cr.numpy.sum(p['b'] ** 2))(
        params)
    avg = dist.mean_gradients(grads)
    for k in grads:
        want = np.mean(WORLD.allgather(np.asarray(grads[k])), axis=0)
        np.testing.assert_allclose(avg[k], want, rtol=1e-6)
        assert np.asarray(avg[k]).dtype == np.asarray(grads[k]).dtype
    # inside jit: the same, staged
    jitted = cr.jit(lambda g: dist.mean_gradients(g))(grads)
    for k in grads:
        np.testing.assert_allclose(jitted[k], avg[k], rtol=1e-6)
    passed('mean_gradients (eager and under jit)')


def fail():
    """Rank 1 raises while rank 0 waits in a collective: the job must end with the error."""
    if RANK == 1:
        raise ValueError('rank 1 failed on purpose')
    dist.allreduce(np.ones(3))
    print('rank 0 should never get here', flush=True)


PARTS = {
    'values': check_values, 'mismatch': check_shape_mismatch, 'derivatives': check_derivatives,
    'model-parallel': check_model_parallel, 'sampler': check_sampler,
    'ddp': check_ddp_matches_one_process,
    'ddp-unused': check_ddp_param_used_on_one_rank, 'mean-gradients': check_mean_gradients,
    'fail': fail,
}

if __name__ == '__main__':
    folder = WORLD.bcast(tempfile.mkdtemp() if RANK == 0 else None, root=0)
    for part in sys.argv[1:]:
        if part == 'checkpoint':
            check_checkpoint_and_metrics(folder)
        else:
            PARTS[part]()
    WORLD.Barrier()
    passed('all')
