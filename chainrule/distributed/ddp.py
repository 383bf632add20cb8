"""Data parallelism: every rank trains a replica of the model on its shard of each batch, and
the gradients are averaged over the ranks before the optimizer steps (PyTorch's
`DistributedDataParallel` behaviour).

    model = DistributedDataParallel(SmallCNN())      # rank 0's weights on every rank
    loss = F.cross_entropy(model(xb), yb)            # xb: this rank's part of the batch
    loss.backward()                                  # grads averaged over the ranks on return
    opt.step()

How the averaging overlaps the backward pass. The parameters are grouped into *buckets* of
about `bucket_cap_mb` megabytes (the first at most 1 MiB), in reverse order of registration
(roughly the order in which backward produces their gradients: the last layer's first). Each parameter has a
post-accumulate-grad hook; when the last gradient of a bucket has been accumulated, the bucket
is copied into one flat buffer and a non-blocking `Iallreduce` starts on it while backward goes
on computing the gradients of earlier layers. Buckets are launched strictly in index order, so
every rank issues the same sequence of collectives whatever order its gradients arrive in. When
the last expected gradient arrives the hook waits for every request, divides by the number of
ranks and writes the averages into `.grad` -- so `.grad` holds the global average as soon as
`backward()` returns. MPI makes progress on a non-blocking collective only inside MPI calls, so
the hooks -- and a hook on each recorded operation, added during the forward walk below --
test the outstanding requests, which drives them along during backward.

Which gradients to expect. At each forward call the recorded graph of the outputs is walked
(iteratively) to find the parameters it reaches; parameters it does not reach count as ready
(their bucket slot carries this rank's current `.grad`, or zeros) -- so a parameter unused in a
step, on one rank or on all, never stalls the others. A tiny all-reduce of the "used" flags at
the end leaves `.grad` of parameters that no rank used untouched (`None` stays `None`), as
PyTorch does. The collectives run on a duplicate of the communicator, so they never interleave
with collectives the training script issues itself.
"""

import contextlib
import time
import weakref

import numpy as np
from mpi4py import MPI

from chainrule import ops
from chainrule.core import ShapeError
from chainrule.distributed.collectives import allreduce, as_comm, contiguous
from chainrule.nn.modules import Module
from chainrule.tensor import Tensor, is_grad_enabled, no_grad
from chainrule.tree import tree_flatten, tree_unflatten

__all__ = ['DistributedDataParallel', 'mean_gradients']


class _Bucket:
    __slots__ = ('params', 'offsets', 'buffer', 'pending', 'request')

    def __init__(self, params, dtype):
        self.params = params          # indices into the DDP's parameter list
        self.offsets = []
        self.buffer = None
        self.pending = 0
        self.request = None


class DistributedDataParallel(Module):
    """Wrap `module` so that `backward()` averages its gradients over the ranks of `comm`.

    Args:
        module: the model (a `chainrule.nn.Module`); the same architecture on every rank.
        comm: mpi4py communicator (default `COMM_WORLD`).
        bucket_cap_mb: target bucket size in megabytes (one `Iallreduce` per bucket).
        broadcast_buffers: also copy rank 0's buffers (running statistics) to every rank at
            each forward call, as PyTorch does.
        find_unused_parameters: walk each forward's graph to find the parameters that will get
            no gradient this step (cheap: one visit per recorded operation). With False, every
            parameter is expected, and a step in which some parameter gets none completes at
            the next forward call (or `finish_gradient_sync()`) instead.
        overlap: start each bucket's all-reduce as soon as it is complete (default). False
            starts them all after the last gradient (for measuring what overlap buys).

    Attributes:
        module: the wrapped model (state-dict keys are prefixed `module.`, as in PyTorch).
        comm_wait_seconds: total time spent waiting for all-reduces to finish.
    """

    def __init__(self, module, comm=None, bucket_cap_mb=25, broadcast_buffers=True,
                 find_unused_parameters=True, overlap=True):
        self.module = module
        base = as_comm(comm).comm
        self._comm = base.Dup()           # DDP's own traffic never interleaves with the user's
        self._size = self._comm.Get_size()
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._broadcast_buffers = broadcast_buffers
        self._find_unused = find_unused_parameters
        self._overlap = overlap
        self._sync = True
        self._open = False
        self.comm_wait_seconds = 0.0
        self._check_replicas(module)
        self._broadcast_state(module.parameters() + module.buffers())
        self._make_buckets(bucket_cap_mb)
        ref = weakref.ref(self)
        # on one rank every gradient already is the average: no buckets to fill, no hooks
        self._handles = [] if self._size == 1 else [
            p.register_post_accumulate_grad_hook(_hook(ref, i))
            for i, p in enumerate(self._params)]

    # --- construction -----------------------------------------------------------------------
    def _check_replicas(self, module):
        mine = [(n, tuple(t.shape), str(t.dtype)) for n, t in
                module.named_parameters() + module.named_buffers()]
        every = self._comm.allgather(mine)
        for r, theirs in enumerate(every):
            if theirs != mine:
                diff = next((a, b) for a, b in zip(mine + [None] * len(theirs),
                                                   theirs + [None] * len(mine)) if a != b)
                raise ShapeError(
                    f'DistributedDataParallel: the model differs between ranks: this rank '
                    f'(rank {self._comm.Get_rank()}) has {diff[0]} where rank {r} has '
                    f'{diff[1]} (name, shape, dtype). Build the same model on every rank.')

    def _broadcast_state(self, tensors):
        with no_grad():
            for t in tensors:
                buf = contiguous(t.data)
                self._comm.Bcast(buf, root=0)
                if buf is not t.data:
                    t.data[...] = buf

    def _make_buckets(self, cap_mb):
        cap = max(1, int(cap_mb * 2 ** 20))
        self._buckets = []
        self._bucket_of = [0] * len(self._params)
        current, size, dtype = [], 0, None
        for i in reversed(range(len(self._params))):
            p = self._params[i]
            nbytes = p.data.size * p.data.dtype.itemsize
            # the first bucket is kept small (1 MiB, as PyTorch does): the last layer's
            # gradients start travelling early instead of waiting for a big first bucket
            limit = min(cap, 2 ** 20) if not self._buckets else cap
            if current and (p.data.dtype != dtype or size + nbytes > limit):
                self._buckets.append(self._new_bucket(current, dtype))
                current, size = [], 0
            current.append(i)
            size += nbytes
            dtype = p.data.dtype
        if current:
            self._buckets.append(self._new_bucket(current, dtype))
        for b, bucket in enumerate(self._buckets):
            for i in bucket.params:
                self._bucket_of[i] = b

    def _new_bucket(self, params, dtype):
        bucket = _Bucket(params, dtype)
        off = 0
        for i in params:
            bucket.offsets.append(off)
            off += self._params[i].data.size
        bucket.buffer = np.empty(off, dtype)
        return bucket

    # --- forward: open a step ---------------------------------------------------------------
    def forward(self, *args, **kwargs):
        if self._open and self._seen_any:
            self.finish_gradient_sync()     # the last step's backward missed some outputs
        if self._broadcast_buffers and self.module.buffers():
            self._broadcast_state(self.module.buffers())
        out = self.module(*args, **kwargs)
        if self._sync and self._size > 1 and is_grad_enabled():
            roots = [t._node for t in tree_flatten(out)[0]
                     if isinstance(t, Tensor) and t.requires_grad]
            if roots:
                self._open_step(roots)
        return out

    def _open_step(self, roots):
        reached = self._reached(roots) if self._find_unused else set(range(len(self._params)))
        if not self._open:
            self._open = True
            self._seen_any = False
            self._expected = set()
            self._ready = [False] * len(self._params)
            self._used = np.zeros(len(self._params), np.int32)
            self._next = 0
        new = reached - self._expected
        self._expected |= new
        for bucket in self._buckets:
            bucket.pending = sum(1 for i in bucket.params if i in self._expected
                                 and not self._ready[i])
        if not self._expected:
            self.finish_gradient_sync()

    def _reached(self, roots):
        """Indices of the parameters whose leaf nodes the graph of `roots` reaches. With
        overlap on, each operation's node also gets a hook that drives the launched all-reduces
        along (MPI progresses a non-blocking collective only inside MPI calls)."""
        index, found = self._index, set()
        seen, stack = set(), list(roots)
        poll = self._poll if self._overlap else None
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.prim is None:
                leaf = node.leaf() if node.leaf is not None else None
                i = index.get(id(leaf)) if leaf is not None else None
                if i is not None:
                    found.add(i)
                continue
            if poll is not None:
                if node.hooks is None:
                    node.hooks = [poll]
                elif poll not in node.hooks:
                    node.hooks.append(poll)
            stack.extend(node.parents)
        return found

    def _poll(self, g):
        if self._open and self._next:
            self._progress()

    # --- backward: the hooks ----------------------------------------------------------------
    def _grad_ready(self, i):
        if not self._open or i not in self._expected or self._ready[i]:
            return
        self._seen_any = True
        self._ready[i] = True
        self._used[i] = 1
        bucket = self._buckets[self._bucket_of[i]]
        bucket.pending -= 1
        if bucket.pending == 0 and self._overlap:
            self._launch_ready()
        else:
            self._progress()
        if all(b.pending == 0 for b in self._buckets):
            self.finish_gradient_sync()

    def _progress(self):
        reqs = [b.request for b in self._buckets[:self._next] if b.request is not None]
        if reqs:
            MPI.Request.Testall(reqs)

    def _launch_ready(self):
        while self._next < len(self._buckets) and self._buckets[self._next].pending == 0:
            self._launch(self._buckets[self._next])
            self._next += 1

    def _launch(self, bucket):
        buf = bucket.buffer
        for i, off in zip(bucket.params, bucket.offsets):
            p = self._params[i]
            n = p.data.size
            if p.grad is None:
                buf[off:off + n] = 0
            else:
                buf[off:off + n] = np.ravel(np.asarray(p.grad.data))
        bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def finish_gradient_sync(self):
        """Complete the current step's averaging now: launch the buckets not yet launched (with
        the gradients there are), wait for all, write the averages into `.grad`. Called by the
        last gradient hook of a backward pass; call it yourself only if a backward pass
        reached fewer parameters than the forward pass used (it also runs at the next forward)."""
        if not self._open:
            return
        for b in self._buckets:
            b.pending = 0
        self._launch_ready()
        start = time.perf_counter()
        MPI.Request.Waitall([b.request for b in self._buckets])
        used = np.empty_like(self._used)
        self._comm.Allreduce(self._used, used, op=MPI.MAX)
        self.comm_wait_seconds += time.perf_counter() - start
        scale = 1.0 / self._size
        for bucket in self._buckets:
            bucket.request = None
            buf = bucket.buffer
            for i, off in zip(bucket.params, bucket.offsets):
                if not used[i]:
                    continue        # no rank computed a gradient for it: leave .grad alone
                p = self._params[i]
                avg = buf[off:off + p.data.size].reshape(p.data.shape) * scale
                p.grad = Tensor._wrap(avg.astype(p.data.dtype, copy=False), None, p._trace)
        self._open = False

    @contextlib.contextmanager
    def no_sync(self):
        """Within this block, forward/backward passes accumulate gradients locally without
        communicating (gradient accumulation); the first synchronised step after it averages
        the accumulated `.grad`."""
        old, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = old

    def extra_repr(self):
        return f'ranks={self._size}, buckets={len(self._buckets)}'


def _hook(ref, i):
    def hook(tensor):
        ddp = ref()
        if ddp is not None:
            ddp._grad_ready(i)
    return hook


def mean_gradients(grads, comm=None):
    """Average a pytree of gradients over the ranks with one all-reduce per dtype: the leaves
    are flattened into one vector, reduced, and cut back into the tree's shapes.

    Works on arrays, `Tensor`s and traced values (inside `jit`, `grad`, `vmap` the all-reduce
    is the differentiable `allreduce` primitive), so a functional training step is
    `mean_gradients(cr.grad(loss)(params, xb, yb))`.

    Returns:
        The tree with every leaf replaced by its average over the ranks.
    """
    leaves, tree = tree_flatten(grads)
    vals = [t.data if isinstance(t, Tensor) else t for t in leaves]
    groups = {}
    for k, v in enumerate(vals):
        groups.setdefault(np.dtype(ops.dtype_of(v)).str, []).append(k)
    out = list(vals)
    for ks in groups.values():
        flat = [ops.reshape(vals[k], (-1,)) for k in ks]
        red = allreduce(flat[0] if len(flat) == 1 else ops.concatenate(flat, 0), op='mean',
                        comm=comm)
        off = 0
        for k in ks:
            shape = tuple(ops.shape_of(vals[k]))
            n = int(np.prod(shape))
            out[k] = ops.reshape(ops.getitem(red, (slice(off, off + n),)), shape)
            off += n
    out = [Tensor(o) if isinstance(t, Tensor) else o for t, o in zip(leaves, out)]
    return tree_unflatten(tree, out)
