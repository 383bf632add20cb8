"""Scale out over MPI: differentiable collectives and data-parallel training.

What you can do with it (launch every script with `mpiexec -n N python script.py`; MPI comes
from PyPI wheels, `pip install 'chainrule[mpi]'` installs `mpi4py` and MPICH, `mpiexec`
included):

- `allreduce`, `allgather`, `reduce_scatter`, `broadcast`, `reduce`, `alltoall`, `sendrecv`:
  collectives as primitives, usable on arrays and `Tensor`s and under `grad`, `vmap` and `jit`
  (`chainrule.distributed.collectives` explains their derivatives);
- `DistributedDataParallel(model)`: PyTorch-style data parallelism; gradients are averaged in
  buckets with non-blocking all-reduces started while `backward()` is still running;
  `mean_gradients(grads)` is the functional counterpart for `cr.grad` users;
- `DistributedSampler`: each rank's shard of a dataset, reshuffled per epoch;
- `save_checkpoint`/`load_checkpoint` (written by rank 0, read by every rank),
  `reduce_metrics` (averages for logging), `is_main_process`, `progress` (a bar on rank 0 only);
- failures: importing this package in a job of more than one rank installs an excepthook that
  prints the failing rank's traceback and aborts the whole job (`MPI_Abort`), so one rank's
  exception never leaves the others waiting in a collective; `abort_on_error()` does the same
  as a context manager.

    import chainrule as cr, chainrule.distributed as dist
    model = dist.DistributedDataParallel(make_model())
    for xb, yb in cr.data.DataLoader(data, batch_size=32, sampler=...):
        ...
"""

try:
    import mpi4py  # noqa: F401
    from mpi4py import MPI  # noqa: F401
except ImportError as e:      # pragma: no cover - depends on the environment
    raise ImportError(
        "chainrule.distributed needs mpi4py and an MPI library: pip install 'chainrule[mpi]' "
        f'(which installs mpi4py and the mpich wheel, mpiexec included). ({e})') from None

from chainrule.distributed.collectives import (  # noqa: E402
    Comm, allgather, allreduce, alltoall, as_comm, broadcast, rank, recv, reduce, reduce_scatter,
    send, sendrecv, size)
from chainrule.distributed.ddp import DistributedDataParallel, mean_gradients  # noqa: E402
from chainrule.distributed.utils import (  # noqa: E402
    DistributedSampler, abort_on_error, barrier, install_excepthook, is_main_process,
    load_checkpoint, progress, reduce_metrics, save_checkpoint)

__all__ = [
    'Comm', 'as_comm', 'rank', 'size', 'allreduce', 'allgather', 'reduce_scatter', 'broadcast',
    'reduce', 'alltoall', 'sendrecv', 'send', 'recv', 'DistributedDataParallel',
    'mean_gradients', 'DistributedSampler', 'save_checkpoint', 'load_checkpoint',
    'reduce_metrics', 'is_main_process', 'progress', 'barrier', 'abort_on_error',
    'install_excepthook']

if MPI.COMM_WORLD.Get_size() > 1:
    install_excepthook()
