"""`custom_jvp`: a function whose forward-mode derivative is a rule you write.

The call primitive `custom_jvp_call`: `impl` calls the function; the JVP rule is the user's
rule; the VJP is the user's rule *transposed* -- the rule is linear in the tangents, so the
gradient of `t -> <g, jvp(x, t)>` (taken by the reverse-mode interpreter) is `J^T g`.
"""

from chainrule.core import ChainruleError, Primitive, shape_of
from chainrule.custom.batching import _split_at, _vectorised, batch_call_rule, vectorised_fun
from chainrule.custom.call import (CallWrapper, _aval, _flat_tree, _graph_fun, _is_float,
                                   _positions, _stage, _union, _zeros, per_arg_vjp, pull_back)
from chainrule.tree import tree_flatten, tree_unflatten


def _custom_jvp_impl(*leaves, call):
    return tuple(call.call_flat(call.fns[0], leaves))


def _custom_jvp_rule_flat(call, leaves, tangents):
    """The user's JVP rule on flat lists: returns (primal out leaves, tangent out leaves)."""
    fun, rule = call.fns
    primals = tree_unflatten(call.in_tree, leaves)
    ts = tree_unflatten(call.in_tree, tangents)
    res = rule(primals, ts)
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        raise ChainruleError(f'the JVP rule of {call.name} must return a pair '
                             '(primal_out, tangent_out)')
    p_leaves, p_tree = tree_flatten(res[0])
    t_leaves, t_tree = tree_flatten(res[1])
    call._set_out(p_tree)
    if t_tree != p_tree:
        raise ChainruleError(f'the JVP rule of {call.name} returned a tangent of structure '
                             f'{t_tree} for a primal output of structure {p_tree}')
    for p, t in zip(p_leaves, t_leaves):
        if shape_of(t) != shape_of(p):
            raise ChainruleError(f'the JVP rule of {call.name} returned a tangent of shape '
                                 f'{shape_of(t)} for a primal output of shape {shape_of(p)}')
    return p_leaves, t_leaves


def _custom_jvp_jvp(tangents, out, *leaves, call):
    return tuple(_custom_jvp_rule_flat(call, leaves, list(tangents))[1])


def _custom_jvp_all_cts(g, out, leaves, call):
    # The rule is linear in the tangents, so J^T g is the gradient of t -> <g, J t>: one reverse
    # pass through the rule, taken at zero tangents (any point would do).
    return pull_back(lambda ts, xs: _custom_jvp_rule_flat(call, xs, ts)[1],
                     [_zeros(x) for x in leaves], list(g), consts=leaves)


custom_jvp_call_p = Primitive(
    'custom_jvp_call', _custom_jvp_impl, multiple_results=True, jvp=_custom_jvp_jvp,
    vjp=per_arg_vjp(_custom_jvp_all_cts),
    doc='A function with a user-supplied JVP rule (see chainrule.custom.custom_jvp).')


def _batch_custom_jvp_fns(call, vals, dims, size):
    n = len(dims)
    both = _vectorised(lambda *ys: (lambda p, t: p + t)(
        *_custom_jvp_rule_flat(call, ys[:n], list(ys[n:]))), dims + dims, size)
    rule = _split_at(lambda: call.n_out, both)
    return vectorised_fun(call, dims, size), lambda p, t: rule(*p, *t)


custom_jvp_call_p.batch = batch_call_rule(custom_jvp_call_p, _batch_custom_jvp_fns)


class custom_jvp(CallWrapper):
    """Decorator: a function whose forward-mode derivative is given by a rule you write.

    Args:
        fun: the function. Its arguments and results may be pytrees of arrays.
        nondiff_argnums: positions of arguments that are static (not arrays to
            differentiate: functions, flags); they are passed to the rule first.

    Use `f.defjvp(rule)` with `rule(primals, tangents) -> (primal_out, tangent_out)` (with
    `nondiff_argnums`, `rule(*nondiff_args, primals, tangents)`), where `primals` and `tangents`
    are tuples of the differentiable arguments and their tangents. The rule must be linear in
    the tangents and written with `chainrule.numpy`; reverse mode uses its transpose, and
    higher derivatives differentiate the rule itself. `f.defjvps(*rules)` gives one rule per
    argument instead, `rule(t, primal_out, *primals) -> tangent_out contribution`.
    """

    kind = 'custom_jvp'
    prim = custom_jvp_call_p

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp_rule = None

    def defjvp(self, jvp):
        """Set the JVP rule (see the class docstring); returns it, so it can decorate."""
        self.jvp_rule = jvp
        return jvp

    def defjvps(self, *rules):
        """One tangent rule per differentiable argument, `rule(t, primal_out, *primals)`
        (`None` for an argument with zero derivative); their contributions are summed."""
        def jvp(primals, tangents):
            out = self.fun(*primals) if not self.nondiff_argnums else None
            total = None
            for rule, t in zip(rules, tangents):
                if rule is None:
                    continue
                c = rule(t, out, *primals)
                total = c if total is None else total + c
            if total is None:
                total = _zeros(out)
            return out, total
        if self.nondiff_argnums:
            raise ChainruleError('defjvps with nondiff_argnums is not supported; use defjvp')
        self.jvp_rule = jvp
        return jvp

    def _check_ready(self):
        if self.jvp_rule is None:
            raise ChainruleError(f'{self.__name__} is a custom_jvp function without a rule: '
                                 f'call {self.__name__}.defjvp(rule) first')

    converts = True     # values `fun` and the rule close over become inputs of the call

    def _converted(self, leaves, in_tree, fns, staged):
        # the user's rule gives the tangent along the arguments; along the closed-over values
        # it is the derivative of what `fun` computes (forward mode through its staged program)
        from chainrule.interpreters.forward import jvp_flat
        from chainrule.interpreters.staging import eval_graph
        graph, closure, out_tree = staged
        rule = fns[1]
        n = len(leaves)
        avals = [_aval(x) for x in leaves]
        r = _stage(lambda *xs: rule(tree_unflatten(in_tree, list(xs[:n])),
                                    tree_unflatten(in_tree, list(xs[n:]))), avals + avals)
        if r is None:
            return None
        r_graph, r_closure, r_tree = r
        allc = _union(closure, r_closure)
        f_where, r_where = _positions(closure, allc), _positions(r_closure, allc)

        def rule_converted(p, t):
            p, t = list(p), list(t)
            p_out, t_out = tree_unflatten(r_tree, eval_graph(
                r_graph, p[:n] + t[:n] + [p[n + i] for i in r_where]))
            _, t_c = jvp_flat(lambda *c: eval_graph(graph, p[:n] + list(c)),
                              [p[n + i] for i in f_where],
                              [t[n + i] if _is_float(p[n + i]) else None for i in f_where])
            t_user = out_tree.flatten_up_to(t_out)
            return p_out, tree_unflatten(out_tree, [a + b for a, b in zip(t_user, t_c)])

        fun = _graph_fun(graph, out_tree, f_where, n, self.__name__)
        return list(leaves) + allc, _flat_tree(n + len(allc)), (fun, rule_converted)

    def _fns(self, full, static, rule):
        return full(self.fun), rule(lambda p, t: self.jvp_rule(*static, p, t))
