"""`custom_vjp`: a function whose reverse-mode derivative is given by functions you write.

The call primitive `custom_vjp_call`: `impl` calls `fwd` and returns the outputs followed by
the residuals, so reverse mode saves the residuals with the node instead of recomputing them;
the VJP sends the outputs' cotangent through the user's `bwd`. A residual that is itself
differentiated (`grad(grad(f))`) is differentiated exactly, by running `fwd` under a reverse
trace. Forward mode uses the transpose of the custom VJP.
"""

import numpy as np

from chainrule.core import ChainruleError, Primitive, Tracer, shape_of
from chainrule.custom.batching import _split_at, _vectorised, batch_call_rule, vectorised_fun
from chainrule.custom.call import (CallParams, CallWrapper, _aval, _flat_tree, _graph_fun,
                                   _positions, _stage, _union, _zeros, per_arg_vjp, pull_back)
from chainrule.tree import tree_flatten, tree_structure, tree_unflatten


class VJPCallParams(CallParams):
    """`CallParams` plus the structure of the residuals `fwd` returns."""

    __slots__ = ('res_tree', 'res_static')

    def __init__(self, *args):
        super().__init__(*args)
        self.res_tree = None
        self.res_static = None

    def residuals(self, dynamic):
        """The residual pytree from the primitive's residual results and the static parts."""
        dynamic = iter(dynamic)
        return tree_unflatten(self.res_tree, [next(dynamic) if r is _DYNAMIC else r
                                              for r in self.res_static])


_ARRAY_TYPES = (np.ndarray, np.generic, Tracer)
_DYNAMIC = object()   # marks a residual slot filled by a result of the primitive


def _fwd_flat(call, leaves):
    """The user's `fwd` on flat lists: the output leaves followed by the residual leaves."""
    res = call.fns[1](*tree_unflatten(call.in_tree, leaves))
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        raise ChainruleError(f'the fwd function of {call.name} must return a pair '
                             '(output, residuals)')
    out_leaves, out_tree = tree_flatten(res[0])
    call._set_out(out_tree)
    res_leaves, res_tree = tree_flatten(res[1])
    both = call.check_closure(leaves, out_leaves + res_leaves)
    out_leaves, res_leaves = both[:len(out_leaves)], both[len(out_leaves):]
    # Arrays (and tracers) among the residuals become results of the primitive, saved with its
    # node; anything else (a shape, a string, a flag) is static and kept on the parameters.
    dynamic = [r for r in res_leaves if isinstance(r, _ARRAY_TYPES)]
    if call.res_tree is None:
        call.res_tree = res_tree
        call.res_static = [_DYNAMIC if isinstance(r, _ARRAY_TYPES) else r for r in res_leaves]
    return out_leaves + dynamic


def _custom_vjp_impl(*leaves, call):
    return tuple(_fwd_flat(call, leaves))


def _bwd_flat(call, leaves, res_leaves, g_leaves):
    """The user's `bwd` on flat lists: one cotangent per argument leaf (None for zero)."""
    res = call.residuals(res_leaves)
    cts = call.fns[2](res, tree_unflatten(call.out_tree, g_leaves))
    diff_args = tree_unflatten(call.in_tree, leaves)
    if not isinstance(cts, (tuple, list)) or len(cts) != len(diff_args):
        raise ChainruleError(f'the bwd function of {call.name} must return a tuple with one '
                             f'cotangent per differentiable argument ({len(diff_args)}), got '
                             f'{type(cts).__name__}'
                             + (f' of length {len(cts)}' if isinstance(cts, (tuple, list))
                                else ''))
    flat = []
    for k, (c, a) in enumerate(zip(cts, diff_args)):
        a_leaves, a_tree = tree_flatten(a)
        if c is None:
            flat.extend([None] * len(a_leaves))
            continue
        try:
            c_leaves = a_tree.flatten_up_to(c)
        except ValueError:
            raise ChainruleError(f'the bwd function of {call.name} returned a cotangent of '
                                 f'structure {tree_structure(c)} for argument {k}, whose '
                                 f'structure is {a_tree}') from None
        for cl, al in zip(c_leaves, a_leaves):
            if cl is not None and shape_of(cl) != shape_of(al):
                raise ChainruleError(f'the bwd function of {call.name} returned a cotangent of '
                                     f'shape {shape_of(cl)} for an argument of shape '
                                     f'{shape_of(al)} (argument {k})')
        flat.extend(c_leaves)
    return flat


def _custom_vjp_all_cts(g, out, leaves, call):
    n = call.n_out
    flat = _bwd_flat(call, leaves, out[n:], g[:n])
    # Residuals are outputs of the primitive too. Their cotangent is zero unless an enclosing
    # derivative differentiates bwd (grad of grad); then it is pulled back exactly through
    # fwd, re-run under a reverse trace.
    g_res = list(g[n:])
    if any(_maybe_nonzero(c) for c in g_res):
        flat = _add_residual_cts(flat, leaves, g_res, call)
    return flat


def _maybe_nonzero(c):
    if isinstance(c, np.ndarray):
        return bool(c.any())
    return isinstance(c, Tracer) or bool(np.any(c))


def _add_residual_cts(flat, leaves, g_res, call):
    fwd = call.fns[1]
    res_cts = pull_back(
        lambda xs: [r for r in tree_flatten(fwd(*tree_unflatten(call.in_tree, xs))[1])[0]
                    if isinstance(r, _ARRAY_TYPES)], leaves, g_res)
    return [a if b is None else b if a is None else a + b for a, b in zip(flat, res_cts)]


custom_vjp_call_p = Primitive(
    'custom_vjp_call', _custom_vjp_impl, multiple_results=True,
    vjp=per_arg_vjp(_custom_vjp_all_cts),
    doc='A function with a user-supplied VJP (see chainrule.custom.custom_vjp); its results '
        'are the outputs followed by the residuals of fwd.')


def _batch_custom_vjp_fns(call, vals, dims, size):
    n = len(dims)
    fwd = _split_at(lambda: call.n_out, _vectorised(lambda *ys: _fwd_flat(call, ys), dims, size))

    def bwd(res, g):
        nr = len(res)

        def one(*ys):
            cts = _bwd_flat(call, ys[:n], ys[n:n + nr], ys[n + nr:])
            return [_zeros(y) if c is None else c for c, y in zip(cts, ys[:n])]
        return tuple(_vectorised(one, dims + [0] * (nr + len(g)), size, dims)(*vals, *res, *g))
    return vectorised_fun(call, dims, size), fwd, bwd


custom_vjp_call_p.batch = batch_call_rule(custom_vjp_call_p, _batch_custom_vjp_fns)


class custom_vjp(CallWrapper):
    """Decorator: a function whose reverse-mode derivative is given by functions you write.

    Args:
        fun: the function. Its arguments and results may be pytrees of arrays.
        nondiff_argnums: positions of static arguments (functions, flags); they are passed
            to `fwd` in place and to `bwd` first, and get no cotangent.

    Use `f.defvjp(fwd, bwd)`:
        - `fwd(*args) -> (out, residuals)`: the output (as `fun` computes it) and any pytree
          of arrays `bwd` will need;
        - `bwd(residuals, g) -> tuple` with one cotangent per differentiable argument, each of
          that argument's structure and shapes (`None` for a zero cotangent). With
          `nondiff_argnums`, `bwd(*nondiff_args, residuals, g)`.

    Without a traced argument, `fun` itself is called. Under `grad`, `fwd` runs instead and
    its residuals are saved for `bwd`. Derivatives of derivatives differentiate `fwd` and
    `bwd` (written with `chainrule.numpy`); `jvp` uses the transpose of `bwd`.
    """

    kind = 'custom_vjp'
    prim = custom_vjp_call_p
    params = VJPCallParams

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        """Set the forward function and backward rule (see the class docstring)."""
        self.fwd, self.bwd = fwd, bwd

    def _check_ready(self):
        if self.fwd is None:
            raise ChainruleError(f'{self.__name__} is a custom_vjp function without rules: '
                                 f'call {self.__name__}.defvjp(fwd, bwd) first')

    converts = True     # values `fun`, `fwd` and `bwd` close over become inputs of the call

    def _converted(self, leaves, in_tree, fns, staged):
        # the user's bwd gives the cotangents of the arguments; the closed-over values get the
        # derivative of what `fun` computes (reverse mode through its staged program, re-run
        # on the inputs, which become residuals)
        from chainrule.interpreters.staging import eval_graph
        graph, closure, out_tree = staged
        fwd, bwd = fns[1], fns[2]
        n, n_out = len(leaves), out_tree.num_leaves
        avals = [_aval(x) for x in leaves]
        info = []

        def fwd_flat(*xs):
            res = fwd(*tree_unflatten(in_tree, list(xs)))
            r_leaves, r_tree = tree_flatten(res[1])
            info.append((r_tree, [isinstance(r, _ARRAY_TYPES) for r in r_leaves], r_leaves))
            return res[0], [r for r in r_leaves if isinstance(r, _ARRAY_TYPES)]
        fs = _stage(fwd_flat, avals)
        if fs is None:
            return None
        fwd_graph, fwd_closure, _ = fs
        r_tree, r_is_array, r_leaves = info[0]
        out_avals = [v.aval for v in fwd_graph.outvars[:n_out]]
        res_avals = [v.aval for v in fwd_graph.outvars[n_out:]]
        n_res = len(res_avals)

        def bwd_flat(*ys):
            arrays = iter(ys[:n_res])
            res = tree_unflatten(r_tree, [next(arrays) if a else r
                                          for a, r in zip(r_is_array, r_leaves)])
            cts = bwd(res, tree_unflatten(out_tree, list(ys[n_res:])))
            flat = []
            for c, sub in zip(cts, tree_unflatten(in_tree, avals)):
                sub_leaves, sub_tree = tree_flatten(sub, is_leaf=lambda a: hasattr(a, 'dtype'))
                cs = [None] * len(sub_leaves) if c is None else sub_tree.flatten_up_to(c)
                flat.extend(np.zeros(a.shape, a.dtype) if x is None else x
                            for x, a in zip(cs, sub_leaves))
            return flat
        bs = _stage(bwd_flat, res_avals + out_avals)
        if bs is None:
            return None
        bwd_graph, bwd_closure, _ = bs
        allc = _union(closure, fwd_closure, bwd_closure)
        f_where = _positions(closure, allc)
        fw_where, bw_where = _positions(fwd_closure, allc), _positions(bwd_closure, allc)

        def fwd_converted(*xs):
            xs = list(xs)
            outs = eval_graph(fwd_graph, xs[:n] + [xs[n + i] for i in fw_where])
            return tree_unflatten(out_tree, outs[:n_out]), (list(outs[n_out:]), xs)

        def bwd_converted(res, g):
            arrays, xs = res
            g_leaves = out_tree.flatten_up_to(g)
            cts = eval_graph(bwd_graph, list(arrays) + g_leaves + [xs[n + i] for i in bw_where])
            closed = [None] * len(allc)
            got = pull_back(lambda c, consts: eval_graph(graph, consts + list(c)),
                            [xs[n + i] for i in f_where], g_leaves, consts=xs[:n])
            for i, c in zip(f_where, got):
                closed[i] = c
            return tuple(cts) + tuple(closed)

        fun = _graph_fun(graph, out_tree, f_where, n, self.__name__)
        return list(leaves) + allc, _flat_tree(n + len(allc)), (fun, fwd_converted,
                                                               bwd_converted)

    def _fns(self, full, static, rule):
        return full(self.fun), full(self.fwd), rule(lambda res, g: self.bwd(*static, res, g))
