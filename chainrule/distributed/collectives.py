"""MPI collectives as differentiable primitives (mpi4jax's idea on chainrule's engine).

What you can do with it: call `allreduce`, `allgather`, `reduce_scatter`, `broadcast`, `reduce`,
`alltoall` and `sendrecv` on arrays, `Tensor`s or traced values, and differentiate, batch and
`jit` programs that use them -- data-parallel losses, model-parallel layers -- like any other
program. Run the script on every rank (`mpiexec -n 4 python script.py`); every rank must call the
same collectives in the same order with the same shapes.

    >>> import chainrule as cr, chainrule.distributed as dist   # doctest: +SKIP
    >>> cr.grad(lambda w: dist.allreduce(w * x, op='mean').sum())(w)   # doctest: +SKIP

Each collective is one `Primitive` declared once with all of its rules. The derivatives are
those of the *global* function of every rank's inputs: a rank's cotangent of its input sums the
contributions of every rank's output, so transposes are collectives again --

    allreduce(sum)  <->  allreduce(sum)         allgather(axis)  <->  reduce_scatter(axis)
    broadcast(root) <->  reduce(root)           alltoall(axis)   <->  alltoall(axis)
    sendrecv(source=s, dest=d)  <->  sendrecv(source=d, dest=s)

A consequence worth knowing: a loss computed identically on every rank (after an all-reduce)
counts once per rank in that global function, so its gradients are `size` times those of one
process; divide such a loss by `size` (or compute it on one rank) to get the one-process
gradient, as the Megatron-style test in `tests/distributed_worker.py` does.

`max`/`min` split the cotangent between the ranks that attain the extremum (as `np.max`'s rule
does between tied elements). The linear ones are their own JVP; every batching rule moves the
op's axis past the batch axis. Under `jit` a collective is one equation whose generated code
calls the primitive's `impl` (the generic path), so communication happens every call. `jit`'s
passes stay consistent across ranks because every rank stages the same program: a collective
whose result is unused is dropped on every rank, two identical ones are merged on every rank,
and one on constants is folded (run once, at trace time) on every rank.

The communicator is a static parameter: a `Comm` (hashable; `as_comm` wraps any mpi4py
communicator, `None` meaning `COMM_WORLD`). Before moving data, each collective gathers every
rank's shape and dtype (a few integers) and raises `ShapeError` naming both shapes if they
disagree, on every rank, so a mismatch is an error rather than a hang or garbage.

Point-to-point: `sendrecv` is differentiable (each rank sends and receives in one call, so the
backward pass is the same exchange reversed). A lone `send`/`recv` pair has no transpose a
transform can run: `recv` has no input a transform could trace, so nothing on the receiving
rank would ever send the cotangent back, and the sending rank's backward pass would wait for
it forever. So `send` and `recv` are eager-only helpers for concrete arrays, and refuse traced
values with an error that points to `sendrecv`.
"""

import numpy as np
from mpi4py import MPI

from chainrule import _graphcheck, ops
from chainrule.core import (
    ChainruleError, DTypeError, Primitive, ShapeError, Tracer, bind, registry)

__all__ = ['Comm', 'as_comm', 'allreduce', 'allgather', 'reduce_scatter', 'broadcast', 'reduce',
           'alltoall', 'sendrecv', 'send', 'recv', 'rank', 'size']


# --- communicators ------------------------------------------------------------------------------

class Comm:
    """A hashable handle on an mpi4py communicator, so it can be a primitive's static parameter
    (a key of `jit`'s caches). Equal handles wrap the same MPI communicator."""

    __slots__ = ('comm', 'key')

    def __init__(self, comm):
        self.comm = comm
        self.key = comm.py2f()

    def __hash__(self):
        return hash(('mpi-comm', self.key))

    def __eq__(self, other):
        return isinstance(other, Comm) and other.key == self.key

    @property
    def rank(self):
        return self.comm.Get_rank()

    @property
    def size(self):
        return self.comm.Get_size()

    def __repr__(self):
        name = {MPI.COMM_WORLD.py2f(): 'COMM_WORLD', MPI.COMM_SELF.py2f(): 'COMM_SELF'}.get(
            self.key, f'comm#{self.key:#x}')
        return f'{name}(size={self.size})'


_wrapped = {}


def as_comm(comm=None):
    """`comm` as a `Comm`: `None` gives `COMM_WORLD`; an mpi4py communicator is wrapped."""
    if comm is None:
        comm = MPI.COMM_WORLD
    if isinstance(comm, Comm):
        return comm
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f'expected an mpi4py communicator (mpi4py.MPI.Comm) or None, got '
                        f'{type(comm).__name__}')
    c = _wrapped.get(comm.py2f())
    if c is None or c.comm != comm:
        c = _wrapped[comm.py2f()] = Comm(comm)
    return c


def rank(comm=None):
    """This process's rank in `comm` (default `COMM_WORLD`)."""
    return as_comm(comm).rank


def size(comm=None):
    """The number of ranks in `comm` (default `COMM_WORLD`)."""
    return as_comm(comm).size


# --- the shape check ----------------------------------------------------------------------------

_HEADER = 34    # ndim, dtype number, up to 32 dimensions


def _header(x):
    h = np.full(_HEADER, -1, np.int64)
    h[0] = x.ndim
    h[1] = ord(x.dtype.char)
    h[2:2 + x.ndim] = x.shape
    return h


def _describe(h):
    nd = int(h[0])
    dt = np.dtype(chr(int(h[1])))
    return f'{tuple(int(d) for d in h[2:2 + nd])} {dt}'


def _check_same(name, x, comm):
    """Raise `ShapeError` on every rank if the ranks' shapes or dtypes differ (one small
    allgather; done by every collective before it moves data)."""
    c = comm.comm
    n = c.Get_size()
    if n == 1:
        return
    if x.ndim > _HEADER - 2:
        raise ShapeError(f'{name}: arrays of more than {_HEADER - 2} dimensions are not '
                         f'supported (got shape {x.shape})')
    mine = _header(x)
    every = np.empty((n, _HEADER), np.int64)
    c.Allgather(mine, every)
    bad = [r for r in range(n) if not np.array_equal(every[r], every[0])]
    if bad:
        r = bad[0]
        raise ShapeError(
            f'{name}: the ranks of {comm!r} passed different shapes or dtypes: rank 0 has '
            f'{_describe(every[0])} but rank {r} has {_describe(every[r])} (this is rank '
            f'{c.Get_rank()}). Every rank must pass the same shape and dtype to a collective.')


def contiguous(x):
    """`x` as a C-contiguous array (an MPI buffer), keeping 0-d arrays 0-d (which
    `np.ascontiguousarray` does not)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else np.array(x, order='C')


def _front(x, axis):
    """`x` with `axis` moved to the front, C-contiguous."""
    return contiguous(np.moveaxis(np.asarray(x), axis, 0))


_OPS = {'sum': MPI.SUM, 'mean': MPI.SUM, 'max': MPI.MAX, 'min': MPI.MIN}


# --- impls and shape rules ----------------------------------------------------------------------

def _mean_dtype(dtype):
    return (np.zeros((), dtype) / 2).dtype


def _allreduce_impl(x, *, op, comm):
    x = contiguous(x)
    _check_same(f'allreduce(op={op!r})', x, comm)
    out = np.empty_like(x)
    comm.comm.Allreduce(x, out, op=_OPS[op])
    if op == 'mean':
        out = np.true_divide(out, comm.size, dtype=_mean_dtype(x.dtype))
    return out


def _allreduce_shape(x, *, op, comm):
    return x.shape, _mean_dtype(x.dtype) if op == 'mean' else x.dtype


def _allgather_impl(x, *, axis, comm):
    xf = _front(x, axis)
    _check_same(f'allgather(axis={axis})', xf, comm)
    out = np.empty((comm.size * xf.shape[0],) + xf.shape[1:], xf.dtype)
    comm.comm.Allgather(xf, out)
    return np.moveaxis(out, 0, axis)


def _scaled(shape, axis, factor):
    s = list(shape)
    s[axis] = int(s[axis] * factor)
    return tuple(s)


def _reduce_scatter_impl(x, *, axis, comm):
    xf = _front(x, axis)
    _check_same(f'reduce_scatter(axis={axis})', xf, comm)
    out = np.empty((xf.shape[0] // comm.size,) + xf.shape[1:], xf.dtype)
    comm.comm.Reduce_scatter_block(xf, out, op=MPI.SUM)
    return np.moveaxis(out, 0, axis)


def _broadcast_impl(x, *, root, comm):
    out = np.array(x, copy=True, order='C')
    _check_same(f'broadcast(root={root})', out, comm)
    comm.comm.Bcast(out, root=root)
    return out


def _reduce_impl(x, *, root, comm):
    x = contiguous(x)
    _check_same(f'reduce(root={root})', x, comm)
    out = np.zeros_like(x)
    comm.comm.Reduce(x, out if comm.rank == root else None, op=MPI.SUM, root=root)
    return out


def _alltoall_impl(x, *, axis, comm):
    xf = _front(x, axis)
    _check_same(f'alltoall(axis={axis})', xf, comm)
    out = np.empty_like(xf)
    comm.comm.Alltoall(xf, out)
    return np.moveaxis(out, 0, axis)


def _sendrecv_impl(x, *, source, dest, tag, comm):
    x = contiguous(x)
    c = comm.comm
    src = MPI.PROC_NULL if source is None else source
    dst = MPI.PROC_NULL if dest is None else dest
    # the shapes first (same tag: messages between two ranks on one tag do not overtake)
    theirs = np.full(_HEADER, -1, np.int64)
    c.Sendrecv(_header(x), dest=dst, sendtag=tag, recvbuf=theirs, source=src, recvtag=tag)
    if source is not None and not np.array_equal(theirs, _header(x)):
        raise ShapeError(
            f'sendrecv: rank {c.Get_rank()} expects {_describe(_header(x))} from rank {source}, '
            f'which sent {_describe(theirs)}. sendrecv receives an array of the shape and dtype '
            'it sends; make both ranks pass the same shape.')
    out = np.zeros_like(x)
    c.Sendrecv(x, dest=dst, sendtag=tag, recvbuf=out, source=src, recvtag=tag)
    return out


def _same_shape(x, **params):
    return x.shape, x.dtype


# --- derivative rules ---------------------------------------------------------------------------

def _extremum_weights(out, x, comm):
    """Where this rank attains the max/min, divided by how many ranks tie there."""
    hit = ops.astype(ops.equal(x, out), ops.dtype_of(out))
    return ops.div(hit, bind(allreduce_p, hit, op='sum', comm=comm))


def _allreduce_vjp(g, out, x, *, op, comm):
    if op in ('sum', 'mean'):
        return bind(allreduce_p, g, op=op, comm=comm)
    return ops.mul(bind(allreduce_p, g, op='sum', comm=comm), _extremum_weights(out, x, comm))


def _allreduce_jvp(t, out, x, *, op, comm):
    if op in ('sum', 'mean'):
        return bind(allreduce_p, t, op=op, comm=comm)
    return bind(allreduce_p, ops.mul(t, _extremum_weights(out, x, comm)), op='sum', comm=comm)


def _batch_axis_shifted(name):
    """The batching rule of collective `name` with an `axis`: the batch axis (first) is
    carried along, the op's axis moves one to the right."""
    def rule(args, dims, *, axis, comm):
        return bind(registry[name], args[0], axis=axis + 1, comm=comm), 0
    return rule


def _batch_as_is(name):
    """The batching rule of collective `name` when it treats every element alike (a reduction
    over the ranks, a broadcast, an exchange): the whole stack is communicated as one array."""
    def rule(args, dims, **params):
        return bind(registry[name], args[0], **params), 0
    return rule


allreduce_p = Primitive('allreduce', _allreduce_impl, shape=_allreduce_shape,
                        vjp=[_allreduce_vjp], jvp=[_allreduce_jvp],
                        batch=_batch_as_is('allreduce'))


def _transpose_is(name, **swap):
    """The VJP rule of a linear collective: the collective `name` (its transpose) applied to
    the cotangent, with the same parameters except those renamed in `swap`
    (`source='dest'`: the transpose's source is this op's dest)."""
    def rule(g, out, x, **params):
        ps = dict(params)
        ps.update({k: params[v] for k, v in swap.items()})
        return bind(registry[name], g, **ps)
    return [rule]


def _gathered_shape(x, *, axis, comm):
    return _scaled(x.shape, axis, comm.size), x.dtype


def _scattered_shape(x, *, axis, comm):
    return _scaled(x.shape, axis, 1 / comm.size), x.dtype


# the linear collectives (their own JVPs), each with its transpose and batching rule
allgather_p = Primitive('allgather', _allgather_impl, shape=_gathered_shape, linear=True,
                        vjp=_transpose_is('reduce_scatter'),
                        batch=_batch_axis_shifted('allgather'))
reduce_scatter_p = Primitive('reduce_scatter', _reduce_scatter_impl, shape=_scattered_shape,
                             linear=True, vjp=_transpose_is('allgather'),
                             batch=_batch_axis_shifted('reduce_scatter'))
broadcast_p = Primitive('broadcast', _broadcast_impl, shape=_same_shape, linear=True,
                        vjp=_transpose_is('reduce'), batch=_batch_as_is('broadcast'))
reduce_p = Primitive('reduce', _reduce_impl, shape=_same_shape, linear=True,
                     vjp=_transpose_is('broadcast'), batch=_batch_as_is('reduce'))
alltoall_p = Primitive('alltoall', _alltoall_impl, shape=_same_shape, linear=True,
                       vjp=_transpose_is('alltoall'), batch=_batch_axis_shifted('alltoall'))
sendrecv_p = Primitive('sendrecv', _sendrecv_impl, shape=_same_shape, linear=True,
                       vjp=_transpose_is('sendrecv', source='dest', dest='source'),
                       batch=_batch_as_is('sendrecv'))

# a communicator is a live connection, not data: graphs holding collectives run (and `jit`
# compiles them) but are not saved to graph files, like those carrying Python functions
_graphcheck._NOT_LOADABLE.update(p.name for p in (
    allreduce_p, allgather_p, reduce_scatter_p, broadcast_p, reduce_p, alltoall_p, sendrecv_p))


# --- the public functions -----------------------------------------------------------------------

def _operand(name, x):
    if isinstance(x, Tracer):
        return x
    x = np.asarray(x)
    if x.dtype == object:
        raise DTypeError(f'{name}: cannot communicate an array of Python objects')
    return x


def _axis(name, x, axis, comm, divisible):
    nd = len(ops.shape_of(x))
    if nd == 0:
        raise ShapeError(f'{name}: needs an array with at least one axis, got a 0-d value '
                         '(reshape it to (1,) first)')
    if not -nd <= axis < nd:
        raise ShapeError(f'{name}: axis {axis} is out of range for shape {ops.shape_of(x)}')
    axis %= nd
    n = ops.shape_of(x)[axis]
    if divisible and n % comm.size:
        raise ShapeError(f'{name}: axis {axis} of shape {ops.shape_of(x)} has length {n}, '
                         f'which does not split into {comm.size} equal blocks (one per rank)')
    return axis


def _root(name, root, comm):
    if not 0 <= root < comm.size:
        raise ValueError(f'{name}: root {root} is not a rank of {comm!r} (0..{comm.size - 1})')
    return int(root)


def allreduce(x, op='sum', comm=None):
    """Combine `x` over every rank of `comm`; every rank gets the result.

    Args:
        x: an array, `Tensor` or traced value (the same shape and dtype on every rank).
        op: 'sum', 'mean', 'max' or 'min'.
        comm: an mpi4py communicator (default `COMM_WORLD`) or a `Comm`.

    Returns:
        The reduced array (for 'mean' of integers, float64).
    """
    if op not in _OPS:
        raise ValueError(f"allreduce: op must be one of 'sum', 'mean', 'max', 'min', got {op!r}")
    return bind(allreduce_p, _operand('allreduce', x), op=op, comm=as_comm(comm))


def allgather(x, axis=0, comm=None):
    """Every rank's `x` concatenated along `axis` in rank order, on every rank (the shape
    grows by a factor of the number of ranks along `axis`)."""
    comm = as_comm(comm)
    x = _operand('allgather', x)
    return bind(allgather_p, x, axis=_axis('allgather', x, axis, comm, False), comm=comm)


def reduce_scatter(x, axis=0, comm=None):
    """The sum of every rank's `x`, cut into `size` equal blocks along `axis`: rank r gets
    block r. The transpose of `allgather`."""
    comm = as_comm(comm)
    x = _operand('reduce_scatter', x)
    return bind(reduce_scatter_p, x, axis=_axis('reduce_scatter', x, axis, comm, True),
                comm=comm)


def broadcast(x, root=0, comm=None):
    """Rank `root`'s `x` on every rank (each rank passes an array of the same shape; only the
    root's values are used, and only the root's input gets a gradient)."""
    comm = as_comm(comm)
    return bind(broadcast_p, _operand('broadcast', x), root=_root('broadcast', root, comm),
                comm=comm)


def reduce(x, root=0, comm=None):
    """The sum of every rank's `x` on rank `root`; zeros of the same shape on the others.
    The transpose of `broadcast`."""
    comm = as_comm(comm)
    return bind(reduce_p, _operand('reduce', x), root=_root('reduce', root, comm), comm=comm)


def alltoall(x, axis=0, comm=None):
    """Cut `x` into `size` equal blocks along `axis` and send block j to rank j; the result
    holds the blocks received, in rank order, along the same axis. Its own transpose."""
    comm = as_comm(comm)
    x = _operand('alltoall', x)
    return bind(alltoall_p, x, axis=_axis('alltoall', x, axis, comm, True), comm=comm)


def sendrecv(x, source, dest, tag=0, comm=None):
    """Send `x` to rank `dest` and receive an array of the same shape and dtype from rank
    `source`, in one deadlock-free exchange (a ring shift is `sendrecv(x, (r - 1) % n,
    (r + 1) % n)`). `None` for either side skips it (receiving gives zeros). Differentiable:
    the cotangent travels back from `dest` to this rank."""
    comm = as_comm(comm)
    for name, r in (('source', source), ('dest', dest)):
        if r is not None and not 0 <= r < comm.size:
            raise ValueError(f'sendrecv: {name} {r} is not a rank of {comm!r} '
                             f'(0..{comm.size - 1}, or None)')
    return bind(sendrecv_p, _operand('sendrecv', x), source=None if source is None else
                int(source), dest=None if dest is None else int(dest), tag=int(tag), comm=comm)


def _concrete_array(name, x):
    if getattr(x, '_is_tensor', False):
        if x.requires_grad or isinstance(x.data, Tracer):
            raise ChainruleError(
                f'{name}: a lone send/recv cannot be differentiated, batched or staged (the '
                'backward pass would need a message the other rank never asks for). Use '
                'sendrecv, whose transpose is the reverse exchange, or detach() the Tensor.')
        x = x.data
    if isinstance(x, Tracer):
        raise ChainruleError(
            f'{name}: called on a value traced by grad/vmap/jit; a lone send/recv cannot be '
            'transformed. Use sendrecv (differentiable, batchable, jit-able) instead.')
    return contiguous(x)


def send(x, dest, tag=0, comm=None):
    """Send a concrete array to rank `dest` (eager only; pair it with `recv` there). Sends a
    small header first, so `recv` needs no shape."""
    c = as_comm(comm).comm
    x = _concrete_array('send', x)
    c.Send(_header(x), dest=dest, tag=tag)
    c.Send(x, dest=dest, tag=tag)


def recv(source, tag=0, comm=None):
    """Receive the array rank `source` sent with `send` (eager only); returns a new array."""
    c = as_comm(comm).comm
    h = np.empty(_HEADER, np.int64)
    c.Recv(h, source=source, tag=tag)
    nd = int(h[0])
    out = np.empty(tuple(int(d) for d in h[2:2 + nd]), np.dtype(chr(int(h[1]))))
    c.Recv(out, source=source, tag=tag)
    return out
