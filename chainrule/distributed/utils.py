"""The pieces of a data-parallel training script besides the gradients: sharding the data,
checkpoints, metrics, progress bars, and ending the whole job when one rank fails.

    sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                     # a new permutation, the same on every rank
        for xb, yb in progress(loader):              # a bar on rank 0 only
            ...
        stats = reduce_metrics({'loss': total / n})  # averaged over the ranks
    save_checkpoint('ckpt.npz', {'model': model.state_dict()})   # written by rank 0
"""

import io
import math
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

from chainrule.distributed.collectives import as_comm

__all__ = ['DistributedSampler', 'save_checkpoint', 'load_checkpoint', 'reduce_metrics',
           'is_main_process', 'progress', 'barrier', 'abort_on_error', 'install_excepthook']


class DistributedSampler:
    """The indices of this rank's shard of a dataset, for `DataLoader(..., sampler=...)`.

    Every rank draws the same permutation (seeded by `seed + epoch`) and takes every
    `num_replicas`-th index starting at its rank, so the shards are disjoint and together cover
    the dataset. With `drop_last=False` the permutation is padded with its first indices to a
    multiple of the number of ranks (every rank gets the same number of examples, so every rank
    runs the same number of steps and none waits in a collective the others never reach); with
    `drop_last=True` the tail that does not divide evenly is dropped instead.

    Args:
        dataset: anything with `len()` (or its length as an int).
        num_replicas: number of shards (default: the size of `comm`).
        rank: this shard (default: the rank in `comm`).
        shuffle: a new permutation every epoch (call `set_epoch`); otherwise 0..n-1.
        seed: seed of the permutations, the same on every rank.
        drop_last: drop the uneven tail instead of padding.
        comm: communicator (default `COMM_WORLD`).
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False, comm=None):
        c = as_comm(comm) if num_replicas is None or rank is None else None
        self.num_replicas = c.size if num_replicas is None else int(num_replicas)
        self.rank = c.rank if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f'DistributedSampler: rank {self.rank} is not in '
                             f'0..{self.num_replicas - 1}')
        self.n = dataset if isinstance(dataset, int) else len(dataset)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        if drop_last:
            self.num_samples = self.n // self.num_replicas
        else:
            self.num_samples = math.ceil(self.n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use the permutation of `epoch` (call it at the start of every epoch, on every rank)."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices for the current epoch, as an int64 array."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:
            reps = math.ceil(self.total_size / max(self.n, 1))
            order = np.tile(order, reps)[:self.total_size]
        else:
            order = order[:self.total_size]
        return order[self.rank::self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples


def is_main_process(comm=None):
    """True on rank 0 (the rank that logs, shows progress and writes checkpoints)."""
    return as_comm(comm).rank == 0


def barrier(comm=None):
    """Wait until every rank of `comm` gets here."""
    as_comm(comm).comm.Barrier()


def progress(iterable, comm=None, **tqdm_kwargs):
    """`tqdm(iterable)` on rank 0, the plain iterable elsewhere (needs tqdm on rank 0:
    `pip install 'chainrule[demo]'`)."""
    if not is_main_process(comm):
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        raise ImportError("progress bars need tqdm: pip install 'chainrule[demo]' "
                          '(or pip install tqdm)') from None
    tqdm_kwargs.setdefault('file', sys.stderr)
    return tqdm(iterable, **tqdm_kwargs)


def reduce_metrics(metrics, op='mean', comm=None):
    """Reduce a dict of numbers (losses, accuracies, counts) over the ranks in one all-reduce.

    Args:
        metrics: `{name: number}` (Python numbers, 0-d arrays or one-element Tensors), the same
            names on every rank.
        op: 'mean', 'sum', 'max' or 'min'.

    Returns:
        `{name: float}`, the same on every rank.
    """
    from chainrule.distributed.collectives import allreduce
    names = sorted(metrics)
    vals = np.array([float(np.asarray(getattr(metrics[k], 'data', metrics[k])))
                     for k in names], np.float64)
    out = allreduce(vals, op=op, comm=comm)
    return {k: float(v) for k, v in zip(names, out)}


def save_checkpoint(path, state, comm=None):
    """Write `state` with `chainrule.save` on rank 0 only, then wait for it on every rank (so a
    `load_checkpoint` that follows sees the complete file)."""
    c = as_comm(comm)
    from chainrule.io import save
    err = None
    if c.rank == 0:
        try:
            save(path, state)
        except Exception as e:      # noqa: BLE001 - reported on every rank below
            err = f'{type(e).__name__}: {e}'
    err = c.comm.bcast(err, root=0)
    if err is not None:
        raise OSError(f'save_checkpoint: rank 0 could not write {path!r}: {err}')


def load_checkpoint(path, comm=None):
    """Read a checkpoint on every rank: rank 0 reads the file and broadcasts its bytes, so the
    other ranks need no shared file system. Returns what `chainrule.load` returns."""
    c = as_comm(comm)
    from chainrule.io import load
    data, err = None, None
    if c.rank == 0:
        try:
            with open(path, 'rb') as f:
                data = np.frombuffer(f.read(), np.uint8)
        except OSError as e:
            err = f'{type(e).__name__}: {e}'
    n, err = c.comm.bcast((0 if data is None else data.size, err), root=0)
    if err is not None:
        raise FileNotFoundError(f'load_checkpoint: rank 0 could not read {path!r}: {err}')
    buf = data.copy() if c.rank == 0 else np.empty(n, np.uint8)
    c.comm.Bcast(buf, root=0)
    return load(io.BytesIO(buf.tobytes()))


def _abort(exc_type, exc, tb, comm=None):
    c = MPI.COMM_WORLD if comm is None else as_comm(comm).comm
    r = MPI.COMM_WORLD.Get_rank()
    text = ''.join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(f'[rank {r}] uncaught exception; aborting the MPI job\n' +
                     ''.join(f'[rank {r}] {line}\n' for line in text.rstrip('\n').split('\n')))
    sys.stderr.flush()
    sys.stdout.flush()
    # give the launcher a moment to forward this output before MPI_Abort tears the job down
    # (under load, Hydra's forwarding of a killed rank's last lines can otherwise be lost)
    time.sleep(0.5)
    c.Abort(1)


_installed = [False]


def install_excepthook():
    """Make an uncaught exception on any rank print its traceback (each line prefixed with the
    rank) and abort the whole MPI job, instead of leaving the other ranks blocked in their next
    collective. Installed when `chainrule.distributed` is imported in a job of more than one
    rank; installing it twice does nothing."""
    if _installed[0]:
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        try:
            _abort(exc_type, exc, tb)
        except Exception:     # noqa: BLE001 - the abort itself failed: report the usual way
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    _installed[0] = True


class abort_on_error:
    """`with abort_on_error():` -- an exception escaping the block prints the rank's traceback
    and aborts the whole job (for code that runs where the excepthook is not called: threads,
    embedded interpreters, notebooks)."""

    def __init__(self, comm=None):
        self.comm = comm

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and as_comm(self.comm).size > 1:
            _abort(exc_type, exc, tb, self.comm)
        return False
