"""Forward mode, vectorisation and the derivatives built from them: `jvp`, `vmap`, `jacfwd`,
`jacrev`, `jacobian`, `hessian`, `hvp`, `elementwise_grad`, `linearize`.

What you can do with it: differentiate in forward mode, batch a function written for one
example, and take whole Jacobians and Hessians -- composed to any depth with each other and
with `grad`/`vjp` (`chainrule.api`).

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.jvp(cnp.sin, (np.array([0.0, 1.0]),), (np.array([2.0, 0.0]),))   # sin x, cos x * t
    (array([0.        , 0.84147098]), array([2., 0.]))
    >>> cr.vmap(lambda x: cnp.sum(x ** 2))(np.arange(6.0).reshape(2, 3))
    array([ 5., 50.])
    >>> cr.hessian(lambda x: cnp.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])

Per-example gradients, the classic use of `vmap`:

    >>> loss = lambda w, x, y: (cnp.dot(x, w) - y) ** 2
    >>> w, xs, ys = np.ones(3), np.eye(3), np.zeros(3)
    >>> cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)   # one gradient per row
    array([[2., 0., 0.],
           [0., 2., 0.],
           [0., 0., 2.]])

`jacfwd` pushes the whole basis of the input space through one `jvp` at once, and `jacrev`
pulls the whole basis of the output space back through one `vjp` at once, both with `vmap`:
there is no Python loop over rows or columns. `hessian` is `jacfwd(jacrev(f))` (forward over
reverse). Inputs and outputs may be pytrees (nested tuples, lists, dicts, registered
classes); they are flattened here, once, and the interpreters in `chainrule.interpreters`
see flat lists of arrays.
"""

import numpy as np

from chainrule import ops
from chainrule._results import owned, owned_copies
from chainrule._tensor_face_args import faced_for
from chainrule.api import (_argnums_tuple, _as_array, _distinct_argnums, _per_request,
                           check_output_leaves, vjp)
from chainrule.core import (
    ChainruleError, ConcretizationError, DTypeError, ShapeError, Tracer, next_level)
from chainrule.interpreters.batching import batch_size, moveaxis, vmap_flat
from chainrule.interpreters.forward import jvp_flat, zeros_like_value
from chainrule.interpreters.reverse import vjp_flat
from chainrule.tree import tree_flatten, tree_map, tree_structure, tree_unflatten

__all__ = ['jvp', 'vmap', 'jacfwd', 'jacrev', 'jacobian', 'hessian', 'hvp', 'elementwise_grad',
           'linearize']


def _name(fun):
    return getattr(fun, '__name__', 'fun')


def _leaf_array(x):
    """A leaf as an array or tracer (Python numbers become 0-d arrays)."""
    if isinstance(x, (Tracer, np.ndarray)):
        return x
    if getattr(x, '_is_tensor', False):
        return x
    return np.asarray(x)


# --- forward mode --------------------------------------------------------------------------------

def jvp(fun, primals, tangents, has_aux=False):
    """Evaluate `fun` and its directional derivative: the Jacobian-vector product.

    Args:
        fun: a function of `len(primals)` arguments (pytrees of arrays), returning a pytree.
        primals: a tuple (or list) of the arguments.
        tangents: a tuple with one tangent per argument, each with its argument's structure
            and shapes. Integer (and boolean) arguments take no tangent: theirs is zero.
        has_aux: `fun` returns `(out, aux)`; the result is then `(out, out_tangent, aux)`.

    Returns:
        `(out, out_tangent)`: `fun(*primals)` and its derivative along `tangents`, with the
        structure of `out`. Outputs that do not depend on the inputs get a zero tangent.

        >>> import chainrule as cr, chainrule.numpy as cnp
        >>> out, t = cr.jvp(lambda x, y: x * y, (3.0, 4.0), (1.0, 0.0))   # d(xy) = y dx + x dy
        >>> float(out), float(t)
        (12.0, 4.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError('jvp(fun, primals, tangents): primals and tangents must be tuples (or '
                        'lists) with one entry per argument, e.g. jvp(f, (x,), (t,))')
    if len(primals) != len(tangents):
        raise ChainruleError(f'jvp: {len(primals)} primal(s) but {len(tangents)} tangent(s)')
    p_leaves, p_def = tree_flatten(tuple(primals))
    try:
        t_leaves = p_def.flatten_up_to(tuple(tangents))
    except ValueError:
        raise ChainruleError(f'jvp: tangents have structure {tree_structure(tuple(tangents))}, '
                             f'but primals have structure {p_def}') from None
    xs, ts = [], []
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        x = _as_array(p, f'primal {i} of {_name(fun)}', differentiable=False)
        if x.dtype.kind not in 'fc':
            xs.append(x)
            ts.append(None)           # integer inputs have no tangent space
            continue
        t = _leaf_array(t)
        if ops.shape_of(t) != ops.shape_of(x):
            raise ShapeError(f'jvp: tangent {i} has shape {ops.shape_of(t)}, but its primal has '
                             f'shape {ops.shape_of(x)}')
        if ops.dtype_of(t) != x.dtype:
            t = ops.astype(t, x.dtype) if isinstance(t, Tracer) else np.asarray(t, x.dtype)
        xs.append(x)
        ts.append(t)
    info = []
    faced = faced_for(fun, primals)
    flat = _leaf_fun(lambda leaves: faced(*tree_unflatten(p_def, leaves)), has_aux, info, 'jvp',
                     _name(fun))
    outs, t_outs = jvp_flat(flat, xs, ts)
    o_def, aux = info[0]
    # results the caller owns: an output that was no traced value is a constant of `fun`
    given = xs + [t for t in ts if t is not None]
    outs = owned(outs, given, copy=info[1])
    res = (tree_unflatten(o_def, outs), tree_unflatten(o_def, owned(t_outs, given + outs)))
    return res + (owned_copies(aux),) if has_aux else res


def _split_aux(out):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ChainruleError('has_aux=True needs fun to return a pair (out, aux)')
    return out


def _leaf_fun(call, has_aux, info, transform, fname):
    """`call(input leaves)` as a function of the leaves returning its output leaves (what the
    flat interpreters take); the output's structure and the aux value go to `info`, then the
    positions of the outputs that are no traced value (constants of `call`). An output leaf
    that is not numeric (a string, ...) raises OutputTypeError naming `transform`."""
    # levels of transforms started from here on are above `floor` (core.next_level hands them
    # out in increasing order): aux values are stripped of those transforms' tracers (and of
    # Tensors made inside them), which would otherwise escape (aux is returned as it is, not
    # differentiated)
    floor = next_level()

    def value(x):
        while isinstance(x, Tracer) and x._trace.level > floor:
            try:
                x = x._concrete()
            except ConcretizationError:     # a batched value of an inner vmap: leave it
                break
        return x

    def f(*leaves):
        out = call(list(leaves))
        aux = None
        if has_aux:
            out, aux = _split_aux(out)
            aux = tree_map(value, aux)
        o_leaves, o_def = tree_flatten(out)
        check_output_leaves(out, o_leaves, transform, fname)
        info.append((o_def, aux))
        info.append({i for i, o in enumerate(o_leaves) if not isinstance(o, Tracer)})
        return o_leaves
    return f


def linearize(fun, *primals):
    """`fun(*primals)` and its linearisation `f_jvp(*tangents) -> out_tangent` at `primals`.

    `f_jvp` is a `jvp` closure: each call re-runs `fun` in forward mode (nothing is stored
    between calls, so it costs about as much as a `jvp`).

    Args:
        fun: a function of arrays (pytrees).
        *primals: the point to linearise at.

    Returns:
        `(out, f_jvp)`: `fun(*primals)`, and `f_jvp(*tangents)` giving the output tangent for
        one tangent per primal.
    """
    out = fun(*primals)

    def f_jvp(*tangents):
        return jvp(fun, primals, tangents)[1]

    f_jvp.__name__ = f'linearize({_name(fun)})'
    return out, f_jvp


# --- vmap ----------------------------------------------------------------------------------------

def _is_axis(a):
    return a is None or isinstance(a, (int, np.integer))


def _broadcast_prefix(prefix, tree, what):
    """One axis per leaf of `tree`, from `prefix`: an int/None for the whole tree, or a pytree
    of them matching the top of `tree`'s structure (JAX's in_axes convention)."""
    n = len(tree_flatten(tree)[0])
    if _is_axis(prefix):
        return [prefix] * n
    axes, a_def = tree_flatten(prefix, is_leaf=lambda x: x is None)
    try:
        subtrees = a_def.flatten_up_to(tree)
    except ValueError:
        raise ChainruleError(f'vmap: {what} {prefix!r} does not match the structure '
                             f'{tree_structure(tree)}') from None
    out = []
    for a, sub in zip(axes, subtrees):
        if not _is_axis(a):
            raise TypeError(f'vmap: {what} entries must be ints or None, got {a!r}')
        out.extend([a] * len(tree_flatten(sub)[0]))
    return out


def vmap(fun, in_axes=0, out_axes=0, report=False):
    """Vectorise `fun` over a batch axis: `vmap(f)(xs)` stacks `f(x)` for each `x` in `xs`,
    computed with whole-batch operations (no Python loop).

    Args:
        fun: a function written for one example.
        in_axes: which axis of each argument is the batch axis: an int (every argument), None
            (not mapped: the same value for every example), or a tuple with one entry per
            positional argument (each an int, None, or a pytree prefix of that argument).
        out_axes: where the batch axis goes in each output: an int, None (the output must not
            depend on the batch) or a pytree prefix of the output.
        report: return `(out, fallbacks)` instead of `out`, where `fallbacks` is a dict
            `{primitive name: calls}` of the primitives that had no batching rule and were
            looped over (without `report`, each such primitive emits a
            `BatchingFallbackWarning`).

    Returns:
        The vectorised function. Keyword arguments it is called with are passed to `fun`
        unmapped (the same for every example).

    Raises:
        ShapeError: the mapped axes have different sizes (the message names each argument
            and its shape), or an axis does not exist.
    """
    def vmapped(*args, **kwargs):
        if isinstance(in_axes, (tuple, list)):
            if len(in_axes) != len(args):
                raise ChainruleError(
                    f'vmap: in_axes has {len(in_axes)} entries but {_name(fun)} was called '
                    f'with {len(args)} positional argument(s); give one entry per argument')
            axes = []
            for a, x in zip(in_axes, args):
                axes.extend(_broadcast_prefix(a, x, 'in_axes entry'))
        else:
            axes = _broadcast_prefix(in_axes, tuple(args), 'in_axes')
        leaves, a_def = tree_flatten(tuple(args))
        # an unmapped Python number stays one (NumPy 2 keeps it weak: a float32 batch times 2.0
        # stays float32, as outside vmap; np.asarray(2.0) would make it float64)
        leaves = [x if a is None and type(x) in (int, float, complex) else _leaf_array(x)
                  for x, a in zip(leaves, axes)]
        size = batch_size(leaves, axes)
        out_defs = []

        faced = faced_for(fun, args)

        def flat(*xs):
            out = faced(*tree_unflatten(a_def, xs), **kwargs)
            o_leaves, o_def = tree_flatten(out)
            out_defs.append((o_def, out))
            return o_leaves

        outs, dims, fallbacks = vmap_flat(flat, leaves, axes, report=report)
        o_def, out_tree = out_defs[0]
        o_axes = _broadcast_prefix(out_axes, out_tree, 'out_axes')
        res = [_place_batch_axis(o, d, a, size, i) for i, (o, d, a) in
               enumerate(zip(outs, dims, o_axes))]
        # results the caller owns; an unbatched output with out_axes None is returned as it is,
        # and may be a constant of `fun`
        res = owned(res, leaves, copy={i for i, (d, a) in enumerate(zip(dims, o_axes))
                                       if d is None and a is None})
        res = tree_unflatten(o_def, res)
        return (res, fallbacks) if report else res

    vmapped.__name__ = f'vmap({_name(fun)})'
    vmapped.__doc__ = fun.__doc__
    return vmapped


def _place_batch_axis(o, d, axis, size, i):
    if axis is None:
        if d is not None:
            raise ChainruleError(f'vmap: out_axes is None for output {i}, but it differs from '
                                 'one example to the next; give it an int out_axes')
        return o
    if d is None:
        # the same for every example: stack `size` copies
        o = _leaf_array(o)
        shape = (size,) + tuple(ops.shape_of(o))
        o = ops.broadcast_to(ops.reshape(o, (1,) + shape[1:]), shape) if isinstance(o, Tracer) \
            else np.array(np.broadcast_to(o, shape))
    nd = len(ops.shape_of(o))
    if not -nd <= axis < nd:
        raise ShapeError(f'vmap: out_axes {axis} is out of range for output {i} of shape '
                         f'{tuple(ops.shape_of(o))[1:]} (plus the batch axis)')
    return moveaxis(o, 0, axis)


# --- Jacobians -----------------------------------------------------------------------------------

class _Flat:
    """The differentiated arguments of a call, flattened: their leaves (as arrays), and how
    to rebuild the call and the per-argument structure of a result."""

    def __init__(self, fun, args, argnums):
        self.single, nums = _argnums_tuple(argnums, len(args))
        self.nums, self.where = _distinct_argnums(nums)
        self.fun, self.args = fun, list(args)
        self.defs, self.leaves = [], []
        for i in self.nums:
            lv, td = tree_flatten(args[i])
            self.defs.append(td)
            self.leaves.extend(_as_array(x, f'argument {i} of {_name(fun)}') for x in lv)

    def call(self, xs):
        call, k = list(self.args), 0
        for i, td in zip(self.nums, self.defs):
            n = td.num_leaves
            call[i] = tree_unflatten(td, xs[k:k + n])
            k += n
        return self.fun(*call)

    def per_input(self, blocks):
        """Leaf-wise blocks (one per input leaf) rebuilt into the arguments' structure."""
        out, k = [], 0
        for td in self.defs:
            n = td.num_leaves
            out.append(tree_unflatten(td, blocks[k:k + n]))
            k += n
        out = _per_request(out, self.where)
        return out[0] if self.single else tuple(out)


def _basis(leaves):
    """The standard basis of the space of `leaves`, split per leaf: for n = total size, leaf j
    gets an (n,) + shape_j array whose row r is e_r restricted to that leaf."""
    sizes = [int(np.prod(ops.shape_of(x))) for x in leaves]
    n = int(sum(sizes))
    eye = np.eye(n)
    out, start = [], 0
    for x, s in zip(leaves, sizes):
        block = eye[:, start:start + s].astype(ops.dtype_of(x), copy=False)
        out.append(block.reshape((n,) + tuple(ops.shape_of(x))))
        start += s
    return out, sizes


def _jac_structure(flat, out_def, jac_rows):
    """Assemble `jac_rows[o][j]` (output leaf o, input leaf j, shape out_o + in_j) into the
    output's structure, each leaf of which holds the inputs' structure."""
    return tree_unflatten(out_def, [flat.per_input(row) for row in jac_rows])


def _owned_rows(rows, xs):
    """The Jacobian's blocks (`rows[o][j]`) as arrays the caller owns (`owned`)."""
    flat = owned([b for row in rows for b in row], xs)
    n = len(xs)
    return [flat[k * n:(k + 1) * n] for k in range(len(rows))]


def _check_holomorphic(name, leaves, what):
    for x in leaves:
        dt = ops.dtype_of(x)
        if dt.kind != 'c':
            raise DTypeError(f'{name}(holomorphic=True) needs complex {what}, got dtype {dt}; '
                             'convert with x.astype(complex)')


def jacfwd(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian of `fun` by forward mode: one `jvp` per input direction, all at once
    (vectorised with `vmap` over the basis of the input space). Best for few inputs and many
    outputs.

    Args:
        fun: a function of arrays (pytrees), returning arrays (a pytree).
        argnums: which argument(s) to differentiate: an int or a tuple of ints.
        has_aux: `fun` returns `(out, aux)`; the result is then `(jacobian, aux)`.
        holomorphic: `fun` is complex-differentiable: inputs (and outputs) must be complex,
            and the Jacobian holds the complex derivatives `d out / d z`. (Complex inputs
            without it give the same numbers: derivatives along the direction 1 of each
            input, which for a holomorphic `fun` are its complex derivatives; the flag checks
            the dtypes, as JAX's does.)

    Returns:
        A function returning the Jacobian: for output shape `S` and input shape `T`, an array
        of shape `S + T` (`J[i..., j...] = d out[i...] / d x[j...]`); pytrees of such for
        pytree inputs/outputs (the output's structure outside, the input's inside).
    """
    def jac(*args):
        flat = _Flat(faced_for(fun, args), args, argnums)
        xs = flat.leaves
        if holomorphic:
            _check_holomorphic('jacfwd', xs, 'inputs')
        basis, sizes = _basis(xs)
        info = []

        def pushforward(*ts):
            return jvp_flat(_leaf_fun(flat.call, has_aux, info, 'jacfwd', _name(fun)), xs,
                            list(ts))[1]

        t_outs, dims, _ = vmap_flat(pushforward, basis, [0] * len(basis))
        o_def, aux = info[0]
        rows = []
        for t, d in zip(t_outs, dims):
            # t: (n,) + out_shape, the tangent of this output along each basis direction
            if d is None:
                t = np.zeros((sum(sizes),) + tuple(ops.shape_of(t)), ops.dtype_of(t))
            out_shape = tuple(ops.shape_of(t))[1:]
            row, start = [], 0
            for x, s in zip(xs, sizes):
                block = moveaxis(t[start:start + s], 0, -1) if out_shape else t[start:start + s]
                row.append(ops.reshape(block, out_shape + tuple(ops.shape_of(x))))
                start += s
            rows.append(row)
        res = _jac_structure(flat, o_def, _owned_rows(rows, xs))
        return (res, owned_copies(aux)) if has_aux else res

    jac.__name__ = f'jacfwd({_name(fun)})'
    return jac


def jacrev(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian of `fun` by reverse mode: one `vjp` per output direction, all at once
    (vectorised with `vmap` over the basis of the output space; a scalar output needs just
    one pullback). Best for many inputs and few outputs.

    Args and Returns: as `jacfwd`.
    """
    def jac(*args):
        flat = _Flat(faced_for(fun, args), args, argnums)
        xs = flat.leaves
        if holomorphic:
            _check_holomorphic('jacrev', xs, 'inputs')
        info = []
        outs, pullback = vjp_flat(_leaf_fun(flat.call, has_aux, info, 'jacrev', _name(fun)),
                                  xs)
        o_def, aux = info[0]
        outs = [_leaf_array(o) for o in outs]
        if holomorphic:
            _check_holomorphic('jacrev', outs, 'outputs')
        for o in outs:
            if ops.dtype_of(o).kind not in 'fc':
                raise ChainruleError(f'jacrev: {_name(fun)} returned an output of dtype '
                                     f'{ops.dtype_of(o)}; only floating outputs have '
                                     'derivatives')

        def pull(*cts):
            gs = pullback(list(cts))
            return [zeros_like_value(x) if g is None else g for g, x in zip(gs, xs)]

        basis, sizes = _basis(outs)
        m = sum(sizes)
        if m == 0:
            # no output entries (None, or empty arrays): an empty Jacobian, nothing to pull
            gs = [np.zeros((0,) + tuple(ops.shape_of(x)), ops.dtype_of(x)) for x in xs]
        elif m == 1:
            # a scalar output: one pullback of 1, no batch
            gs = pull(*[np.ones(ops.shape_of(o), ops.dtype_of(o)) for o in outs])
            gs = [ops.reshape(g, (1,) + tuple(ops.shape_of(x))) for g, x in zip(gs, xs)]
        else:
            gs, dims, _ = vmap_flat(pull, basis, [0] * len(basis))
            gs = [_place_batch_axis(g, d, 0, m, j) for j, (g, d) in enumerate(zip(gs, dims))]
        rows, start = [], 0
        for o, s in zip(outs, sizes):
            out_shape = tuple(ops.shape_of(o))
            rows.append([ops.reshape(g[start:start + s], out_shape + tuple(ops.shape_of(x)))
                         for g, x in zip(gs, xs)])
            start += s
        res = _jac_structure(flat, o_def, _owned_rows(rows, xs))
        return (res, owned_copies(aux)) if has_aux else res

    jac.__name__ = f'jacrev({_name(fun)})'
    return jac


jacobian = jacrev    # as in JAX and HIPS autograd, `jacobian` is reverse mode


def hessian(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Hessian of scalar `fun`, as `jacfwd(jacrev(fun))` (forward over reverse: one
    reverse pass, differentiated in forward mode along every direction at once).

    Args:
        fun: a function returning a scalar.
        argnums: which argument(s) to differentiate (an int or a tuple of ints).
        has_aux: `fun` returns `(value, aux)`; the result is then `(hessian, aux)`.

    Returns:
        A function returning, for an input of shape `T`, an array of shape `T + T` (for a
        non-scalar `fun` of output shape `S`, `S + T + T`).
    """
    h = jacfwd(jacrev(fun, argnums, has_aux, holomorphic), argnums, has_aux, holomorphic)
    h.__name__ = f'hessian({_name(fun)})'
    return h


def hvp(fun, primals, tangents):
    """The Hessian-vector product `H v` of scalar `fun` at `primals` (forward over reverse:
    the `jvp` of `grad`, never forming `H`).

    Args:
        fun: a scalar function of `len(primals)` arguments.
        primals: a tuple of the arguments.
        tangents: a tuple of vectors `v`, one per argument.

    Returns:
        `H v`: for one argument, an array of its shape; for several, a tuple.
    """
    from chainrule.api import grad
    nums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    return jvp(grad(fun, argnums=nums), tuple(primals), tuple(tangents))[1]


def elementwise_grad(fun, argnum=0):
    """The gradient of `sum(fun(x))` with respect to argument `argnum` (HIPS autograd's
    `elementwise_grad`): for an elementwise `fun`, the derivative at every element.

    Args:
        fun: a function of arrays.
        argnum: the position of the argument to differentiate.

    Returns:
        A function with `fun`'s arguments returning an array (pytree) shaped like that argument.

        >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
        >>> cr.elementwise_grad(cnp.tanh)(np.zeros(3))
        array([1., 1., 1.])
    """
    def eg(*args):
        def partial(x):
            call = list(args)
            call[argnum] = x
            return fun(*call)
        out, f_vjp = vjp(partial, args[argnum])
        ones = tree_map(lambda o: np.ones(ops.shape_of(o), ops.dtype_of(o)), out)
        return f_vjp(ones)[0]

    eg.__name__ = f'elementwise_grad({_name(fun)})'
    return eg
