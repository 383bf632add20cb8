"""Data-parallel training throughput over MPI: the 1024-2048-2048-10 MLP (float32, ReLU,
SGD), batch 512 per rank, on 1 and 2 ranks with one BLAS thread each, with and without overlap
of the gradient all-reduces and the backward pass; and the loopback all-reduce times that
`docs/scaling.md`'s cost model is fitted to.

    python bench/distributed.py                 # launches the mpiexec jobs itself
    python bench/distributed.py --steps 10 --bucket-mb 4

Needs `pip install 'chainrule[mpi]'`. The driver runs `mpiexec -n 1` and `mpiexec -n 2` on this
script (`--worker`), each rank with OMP/OPENBLAS/MKL_NUM_THREADS=1, and prints per
configuration: seconds per step (median), samples per second over all ranks, the time per step
spent waiting for all-reduces to finish, and the scaling efficiency (throughput on 2 ranks / 2x
one process without DDP). Then it fits the ring all-reduce model
`t(bytes) = 2 (N-1) alpha + 2 (N-1)/N bytes beta` to the loopback all-reduce times (N = 2),
and prints the cost model's predictions of docs/scaling.md.

Measured on the development machine (2 shared cores, load ~0.5, OpenBLAS, MPICH 5.0.2):
one process 0.210 s/step (2437 samples/s); 2 ranks 0.237-0.242 s/step, 4229-4314 samples/s
(1.74-1.77x), 15-21 ms/step waiting for all-reduces, overlap or not; all-reduce fit
alpha = 4.6 us, beta = 0.69 ns/byte.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = [(1024, 2048), (2048, 2048), (2048, 10)]
PER_RANK = 512


def worker(args):
    import numpy as np
    sys.path.insert(0, ROOT)
    from mpi4py import MPI

    import chainrule as cr
    import chainrule.distributed as dist
    from chainrule import nn, optim

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((PER_RANK, SIZES[0][0])).astype(np.float32)
    y = rng.integers(0, 10, PER_RANK)
    F = nn.functional

    def make():
        layers = []
        for k, (i, o) in enumerate(SIZES):
            layers.append(nn.Linear(i, o, rng=k, dtype=np.float32))
            if k < len(SIZES) - 1:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def run(name, model, ddp):
        opt = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        fwd = ddp or model
        times, waits = [], []
        for step in range(args.warmup + args.steps):
            comm.Barrier()
            w0 = ddp.comm_wait_seconds if ddp else 0.0
            t0 = time.perf_counter()
            opt.zero_grad()
            F.cross_entropy(fwd(cr.Tensor(x)), y).backward()
            opt.step()
            t = time.perf_counter() - t0
            if step >= args.warmup:
                times.append(t)
                waits.append((ddp.comm_wait_seconds if ddp else 0.0) - w0)
        # the slowest rank sets the pace
        step_t = comm.allreduce(float(np.median(times)), op=MPI.MAX)
        wait_t = comm.allreduce(float(np.median(waits)), op=MPI.MAX)
        return {'name': name, 'ranks': size, 'step_s': step_t, 'wait_s': wait_t,
                'samples_per_s': PER_RANK * size / step_t}

    results = []
    if size == 1:
        results.append(run('no DDP', make(), None))
    for overlap, cap in ((True, args.bucket_mb), (True, args.small_bucket_mb),
                         (False, args.bucket_mb)):
        model = make()
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap, overlap=overlap)
        name = f'DDP, {len(ddp._buckets)} buckets ({cap:g} MB), ' + (
            'overlap' if overlap else 'after backward')
        results.append(run(name, model, ddp))
    # loopback all-reduce times (float32 buffers), best of a few
    allreduce = []
    if size > 1:
        for p in range(10, 27, 2):
            buf = np.ones(2 ** p // 4, np.float32)
            out = np.empty_like(buf)
            best = float('inf')
            for _ in range(5 if p < 24 else 3):
                comm.Barrier()
                t0 = time.perf_counter()
                comm.Allreduce(buf, out)
                best = min(best, time.perf_counter() - t0)
            allreduce.append((2 ** p, comm.allreduce(best, op=MPI.MAX)))
    if rank == 0:
        print('RESULT ' + json.dumps({'runs': results, 'allreduce': allreduce}), flush=True)


def launch(n, args):
    exe = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    exe = exe if os.path.exists(exe) else shutil.which('mpiexec')
    if exe is None:
        raise SystemExit("mpiexec not found: pip install 'chainrule[mpi]'")
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1', MKL_NUM_THREADS='1')
    cmd = [exe, '-n', str(n), sys.executable, __file__, '--worker', '--steps', str(args.steps),
           '--warmup', str(args.warmup), '--bucket-mb', str(args.bucket_mb),
           '--small-bucket-mb', str(args.small_bucket_mb)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    line = [s for s in out.stdout.splitlines() if s.startswith('RESULT ')]
    if out.returncode or not line:
        raise SystemExit(f'{" ".join(cmd)} failed:\n{out.stdout}\n{out.stderr}')
    return json.loads(line[0][len('RESULT '):])


def fit_ring(points, n=2):
    """Least-squares alpha (s per message step) and beta (s per byte) of
    t = 2 (n-1) alpha + 2 (n-1)/n bytes beta."""
    import numpy as np
    a = np.array([[2 * (n - 1), 2 * (n - 1) / n * b] for b, _ in points])
    t = np.array([t for _, t in points])
    # weight by 1/t so small and large messages count alike (relative error)
    (alpha, beta), *_ = np.linalg.lstsq(a / t[:, None], np.ones_like(t), rcond=None)
    return alpha, beta


# the networks of docs/scaling.md: (name, bits per second, assumed wire latency per message)
NETWORKS = [('25 Gbit/s Ethernet', 25e9, 10e-6), ('200 Gbit/s InfiniBand', 200e9, 1e-6)]
MODELS = [('MLP 6.3M', None), ('100M params', 100e6)]


def predict(alpha, beta, t_compute, params, ranks=(8, 64, 512)):
    """Predicted step time of data-parallel SGD (float32 gradients, batch 512 per rank).

    Per rank and step: compute `t_c` (measured for the MLP on one rank; scaled by parameter
    count for the 100M model, as FLOPs are ~6 x params x samples) and one ring all-reduce of
    every gradient, `t_ar = 2 (N-1) (alpha + lat) + 2 (N-1)/N S (8/bw + beta)` -- the loopback
    fit's alpha and beta stand for the software and memory costs of each message and byte, the
    network adds its latency `lat` and wire time. Bounds: no overlap `t_c + t_ar`; ideal overlap
    with the backward pass (2/3 of the compute) `t_c/3 + max(2 t_c/3, t_ar)`. Efficiency is
    `t_c` over the step time."""
    rows = []
    for mname, p in MODELS:
        p = p or params
        tc = t_compute * p / params
        size = 4 * p
        for nname, bw, lat in NETWORKS:
            for n in ranks:
                tar = 2 * (n - 1) * (alpha + lat) + 2 * (n - 1) / n * size * (8 / bw + beta)
                serial = tc + tar
                overlapped = tc / 3 + max(2 * tc / 3, tar)
                rows.append((mname, nname, n, tc, tar, serial, overlapped))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--bucket-mb', type=float, default=25.0, help="DDP's bucket cap (PyTorch's "
                   'default, 25 MB, puts the MLP in 2 buckets, the big one ready last)')
    p.add_argument('--small-bucket-mb', type=float, default=4.0, help='a second, smaller cap '
                   '(4 buckets for the MLP: the second layer\'s weights travel while the first '
                   "layer's gradients are computed)")
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    params = sum(i * o + o for i, o in SIZES)
    print(f'MLP {"-".join(str(i) for i, _ in SIZES)}-10: {params:,} parameters '
          f'({params * 4 / 1e6:.1f} MB float32), batch {PER_RANK} per rank, one BLAS thread '
          f'per rank, median of {args.steps} steps')
    one, two = launch(1, args), launch(2, args)
    base = one['runs'][0]['samples_per_s']
    print(f'{"configuration":<44} {"ranks":>5} {"s/step":>8} {"samples/s":>10} '
          f'{"wait/step":>10} {"speed-up":>9}')
    for r in one['runs'] + two['runs']:
        print(f'{r["name"]:<44} {r["ranks"]:>5} {r["step_s"]:>8.3f} {r["samples_per_s"]:>10.0f} '
              f'{r["wait_s"] * 1e3:>8.1f}ms {r["samples_per_s"] / base:>8.2f}x')
    alpha, beta = fit_ring(two['allreduce'])
    print('loopback MPI_Allreduce on 2 ranks (float32):')
    for b, t in two['allreduce']:
        print(f'  {b:>10,} bytes  {t * 1e6:>10.1f} us   model {(2 * alpha + b * beta) * 1e6:>10.1f} us')
    print(f'ring fit: alpha = {alpha * 1e6:.2f} us per step, beta = {beta * 1e9:.3f} ns/byte '
          f'({1 / beta / 1e9:.2f} GB/s)')
    tc = one['runs'][0]['step_s']
    print(f'predicted step (compute {tc:.3f} s per MLP step measured here, scaled by parameters):')
    print(f'{"model":<12} {"network":<22} {"ranks":>5} {"compute":>9} {"all-reduce":>10} '
          f'{"step":>16} {"efficiency":>12}')
    for m, net, n, c, ar, serial, ov in predict(alpha, beta, tc, params):
        print(f'{m:<12} {net:<22} {n:>5} {c:>8.3f}s {ar:>9.3f}s {ov:>7.3f}-{serial:.3f}s '
              f'{c / serial:>5.0%}-{c / ov:.0%}')


if __name__ == '__main__':
    main()
