"""`chainrule.distributed`: collectives as primitives, data parallelism, and failure handling.

The real checks run under MPI: a few `mpiexec -n 2` / `-n 3` jobs launched in a subprocess
(with a timeout), each running many checks of `tests/distributed_worker.py` -- collectives'
values, their VJPs and JVPs against finite differences across ranks (plain, under `jit`, under
`vmap`), DDP for 20 steps on B/size per rank against one process on B (SGD and Adam, with and
without `no_sync`), the sampler's shards, checkpoints, and a failing rank ending the job. The
in-process tests check the plumbing on `COMM_SELF` (where every collective is the identity),
argument errors, and that the optional dependency stays optional.

Needs `pip install 'chainrule[mpi]'` (mpi4py and the mpich wheel, which brings `mpiexec`);
without them the MPI tests are skipped, saying so.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
import chainrule.testing  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'distributed_worker.py')
TIMEOUT = 600     # seconds per MPI job: generous, the CI machine has 2 shared cores


def test_chainrule_never_imports_mpi4py_and_the_error_names_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import chainrule, chainrule.nn, chainrule.optim\n"
            "assert 'mpi4py' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "try:\n"
            "    import chainrule.distributed\n"
            "except ImportError as e:\n"
            "    print('ERR', e)\n")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'ERR' in out.stdout and "chainrule[mpi]" in out.stdout


def test_post_accumulate_grad_hook_sees_the_accumulated_gradient():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * w).sum().backward()
    (3 * w).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 4.0])
    np.testing.assert_array_equal(seen[1], [5.0, 7.0])       # after accumulation
    handle.remove()
    w.sum().backward()
    assert len(seen) == 2
    with pytest.raises(cr.GradientError):
        (w * 2).register_post_accumulate_grad_hook(lambda t: None)


try:
    from mpi4py import MPI
    import chainrule.distributed as dist
    SELF = MPI.COMM_SELF
except ImportError:
    MPI = dist = SELF = None
needs_mpi = pytest.mark.skipif(MPI is None, reason="mpi4py is not installed: pip install "
                               "'chainrule[mpi]' to run the distributed tests")


def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    return here if os.path.exists(here) else shutil.which('mpiexec')


def run_mpi(n, args, timeout=TIMEOUT):
    exe = _mpiexec()
    if exe is None:
        pytest.skip("mpiexec not found: pip install 'chainrule[mpi]' (the mpich wheel brings it)")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1', MKL_NUM_THREADS='1')
    return subprocess.run([exe, '-n', str(n), sys.executable] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


ALL_PARTS = ['values', 'mismatch', 'sampler', 'checkpoint', 'derivatives', 'model-parallel',
             'ddp', 'ddp-unused', 'mean-gradients']


@needs_mpi
@pytest.mark.parametrize('n', [2, 3])
def test_collectives_derivatives_and_ddp_under_mpiexec(n):
    out = run_mpi(n, [WORKER] + ALL_PARTS)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ['collective values', 'shape mismatch names both shapes',
                 'DistributedSampler shards', 'checkpoint on rank 0', 'derivatives of allgather-1',
                 'derivatives of reduce_scatter-0', 'derivatives of sendrecv-ring',
                 'derivatives of allreduce-max', 'derivatives of alltoall-1',
                 'derivatives of broadcast', 'derivatives of reduce', 'derivatives of composite',
                 'second order', 'model-parallel MLP',
                 'DDP on B/size per rank equals one process on B',
                 'a parameter used on one rank only', 'mean_gradients', 'all']:
        assert f'PASS {name}' in out.stdout, (name, out.stdout + out.stderr)


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error():
    out = run_mpi(2, [WORKER, 'fail'], timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert 'rank 1 failed on purpose' in text and '[rank 1]' in text, text
    assert 'rank 0 should never get here' not in text, text


@needs_mpi
def test_demo_trains_data_parallel(tmp_path):
    pytest.importorskip('sklearn', reason='the demo needs scikit-learn')
    pytest.importorskip('tqdm', reason='the demo needs tqdm')
    pytest.importorskip('matplotlib', reason='the demo needs matplotlib')
    out = run_mpi(2, ['-m', 'chainrule.demo', '--distributed', '--quick', '--no-progress',
                      '--out', str(tmp_path)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count('held-out accuracy') == 1          # printed by rank 0 only
    assert '2 ranks' in out.stdout and 'predicts identically: True' in out.stdout
    assert (tmp_path / 'model.npz').exists()


# --- in process, on COMM_SELF: the plumbing ---------------------------------------------------

ONE_RANK = [
    ('allreduce', lambda x: dist.allreduce(x, 'sum', comm=SELF)),
    ('allreduce', lambda x: dist.allreduce(x, 'max', comm=SELF)),
    ('allgather', lambda x: dist.allgather(x, -1, comm=SELF)),
    ('reduce_scatter', lambda x: dist.reduce_scatter(x, 0, comm=SELF)),
    ('broadcast', lambda x: dist.broadcast(x, 0, comm=SELF)),
    ('reduce', lambda x: dist.reduce(x, 0, comm=SELF)),
    ('alltoall', lambda x: dist.alltoall(x, 0, comm=SELF)),
    ('sendrecv', lambda x: dist.sendrecv(x, 0, 0, comm=SELF)),
]


@needs_mpi
@pytest.mark.parametrize('name,f', ONE_RANK, ids=[f'{n}-{i}' for i, (n, _) in
                                                  enumerate(ONE_RANK)])
def test_on_one_rank_every_collective_is_the_identity_under_every_transform(name, f):
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_array_equal(f(x), x)
    np.testing.assert_array_equal(cr.jit(f)(x), x)
    np.testing.assert_array_equal(cr.vmap(f, in_axes=1)(x), x.T)
    cr.testing.check_grads(lambda z: cr.numpy.sin(f(z)), (x,), order=2, modes=('fwd', 'rev'))
    g = cr.jit(cr.grad(lambda z: cr.numpy.sum(f(z) ** 2)))(x)
    np.testing.assert_allclose(g, 2 * x)
    t = cr.tensor(x, requires_grad=True)
    (f(t) ** 2).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * x)
    assert name in cr.jit(f).source(x)


@needs_mpi
def test_zero_dimensional_values_stay_zero_dimensional():
    for f in (lambda x: dist.allreduce(x, comm=SELF), lambda x: dist.broadcast(x, comm=SELF),
              lambda x: dist.reduce(x, comm=SELF), lambda x: dist.sendrecv(x, 0, 0, comm=SELF)):
        assert np.shape(f(2.0)) == () and np.shape(f(np.float32(2.0))) == ()
        assert cr.grad(lambda x: f(x * x))(3.0) == 6.0
        assert cr.jit(lambda x: f(x * x))(3.0) == 9.0


@needs_mpi
def test_communicators_are_hashable_static_parameters():
    a, b = dist.as_comm(SELF), dist.as_comm(SELF)
    assert a == b and hash(a) == hash(b) and dist.as_comm(a) is a
    assert dist.as_comm(None) == dist.as_comm(MPI.COMM_WORLD) != a
    with pytest.raises(TypeError, match='mpi4py'):
        dist.as_comm('world')
    graph = cr.make_graph(lambda x: dist.allreduce(x, 'mean', comm=SELF))(np.ones(2))
    assert "allreduce[comm=COMM_SELF(size=1) op='mean']" in str(graph)


@needs_mpi
def test_bad_arguments_are_clear_errors():
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match="op must be one of"):
        dist.allreduce(x, op='prod', comm=SELF)
    with pytest.raises(cr.ShapeError, match=r'axis 2 is out of range for shape \(3, 2\)'):
        dist.allgather(x, axis=2, comm=SELF)
    with pytest.raises(cr.ShapeError, match='at least one axis'):
        dist.allgather(np.float64(1.0), comm=SELF)
    with pytest.raises(ValueError, match='root 1 is not a rank'):
        dist.broadcast(x, root=1, comm=SELF)
    with pytest.raises(ValueError, match='dest 3 is not a rank'):
        dist.sendrecv(x, 0, 3, comm=SELF)
    with pytest.raises(cr.ChainruleError, match='sendrecv'):
        cr.grad(lambda z: dist.send(z, 0, comm=SELF))(x)
    with pytest.raises(cr.ChainruleError, match='sendrecv'):
        dist.send(cr.tensor(x, requires_grad=True), 0, comm=SELF)


@needs_mpi
def test_sampler_shards_without_mpi():
    shards = [dist.DistributedSampler(10, num_replicas=3, rank=r, seed=5) for r in range(3)]
    idx = [s.indices() for s in shards]
    assert [len(i) for i in idx] == [4, 4, 4] and [len(s) for s in shards] == [4, 4, 4]
    assert set(np.concatenate(idx)) == set(range(10))        # padded by wrapping around
    dropped = [dist.DistributedSampler(10, num_replicas=3, rank=r, drop_last=True).indices()
               for r in range(3)]
    flat = np.concatenate(dropped)
    assert len(flat) == 9 and len(set(flat)) == 9
    ordered = dist.DistributedSampler(7, num_replicas=2, rank=1, shuffle=False)
    assert ordered.indices().tolist() == [1, 3, 5, 0]
    with pytest.raises(ValueError, match='rank 3'):
        dist.DistributedSampler(10, num_replicas=3, rank=3)
    with pytest.raises(ValueError, match='sampler'):
        cr.data.DataLoader((np.ones(4),), shuffle=True, sampler=ordered)


@needs_mpi
def test_ddp_on_one_rank_is_the_plain_model():
    from chainrule import nn
    model = nn.Sequential(nn.Linear(4, 3, rng=0, dtype=np.float64), nn.Tanh(),
                          nn.Linear(3, 2, rng=0, dtype=np.float64))
    ref = nn.Sequential(nn.Linear(4, 3, rng=0, dtype=np.float64), nn.Tanh(),
                        nn.Linear(3, 2, rng=0, dtype=np.float64))
    ddp = dist.DistributedDataParallel(model, comm=SELF, bucket_cap_mb=1e-5)
    x = np.random.default_rng(1).standard_normal((5, 4))
    (ddp(cr.tensor(x)) ** 2).sum().backward()
    (ref(cr.tensor(x)) ** 2).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-13)
    assert list(ddp.state_dict())[0].startswith('module.')
    g = dist.mean_gradients(cr.grad(lambda m: (m(x) ** 2).sum())(ref), comm=SELF)
    np.testing.assert_allclose(g[0].weight, ref[0].weight.grad.numpy(), rtol=1e-13)
