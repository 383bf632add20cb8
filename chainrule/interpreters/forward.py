"""Forward mode: push tangents through a function alongside its values.

What you can do with it: `jvp_flat(f, primals, tangents)` runs `f` on a fresh trace level in
which every value carries its tangent (its directional derivative along `tangents`), and
returns the outputs and their tangents -- one Jacobian-vector product for the price of about
two or three evaluations of `f`, with no tape. `chainrule.transforms` builds `jvp`, `jacfwd`,
`hessian`, `hvp` and `linearize` on it.

Symbolic zeros. A value that does not depend on the inputs has tangent zero; instead of
materialising that zero, such a value simply is not a `JVPTracer`. An operation whose
arguments are all constants to this trace never reaches it (`bind` calls the lower level),
and a rule is only evaluated for the arguments whose tangent is non-zero: `W @ x` with a
constant `W` costs one product `W @ x_dot`, not two.

Where the rules come from, for a primitive `p` (all declared in `p`'s own block in
`chainrule.ops`):

1. `p.jvp`: a list with one rule per argument, `rule(t, out, *args, **params)`, the output
   tangent being the sum over the arguments with non-zero tangents; or one function
   `jvp(tangents, out, *args, **params)` that sees every tangent (zeros instantiated).
2. `p.linear`: the op is linear, so its tangent is the op applied to the tangents.
3. `p.elementwise`: the local derivative is a multiplication, so the VJP rule read with a
   tangent in place of the cotangent is the JVP (`g * cos(x)` becomes `t * cos(x)`).
4. `p.vjp is None`: the outputs are constants (their tangent is zero).
5. Otherwise the "double VJP" fallback: the JVP `t -> J t` is the transpose of the VJP
   `g -> J^T t`. Since `h(g) = sum(vjp(g) * t)` is linear in `g`, its gradient (taken with the
   reverse-mode interpreter) is `J t`. Correct to any order but slower; every primitive in
   `chainrule.ops` has a direct rule, so it serves primitives registered from user code.
"""

import numpy as np

from chainrule.core import Trace, Tracer, bind, concrete, new_level, unwrap_inner

__all__ = ['JVPTrace', 'JVPTracer', 'jvp_flat', 'jvp_rule_kind', 'zeros_like_value']


def zeros_like_value(x):
    """A zero array with the shape and dtype of value `x` (an instantiated zero tangent)."""
    if isinstance(x, (np.ndarray, np.generic, Tracer)):
        return np.zeros(x.shape, x.dtype)
    return np.zeros(np.shape(x), np.result_type(x))


class JVPTracer(Tracer):
    """A value of a `JVPTrace`: its `primal` (an array or a lower-level tracer) and its
    `tangent` (never a symbolic zero: values with zero tangent are not JVPTracers)."""

    __slots__ = ('_trace', 'primal', 'tangent')

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def shape(self):
        p = self.primal
        return p.shape if isinstance(p, (np.ndarray, np.generic, Tracer)) else np.shape(p)

    @property
    def dtype(self):
        p = self.primal
        return p.dtype if isinstance(p, (np.ndarray, np.generic, Tracer)) else np.result_type(p)

    def _concrete(self):
        return self.primal

    def __bool__(self):
        return bool(concrete(self.primal))

    def __repr__(self):
        return f'JVPTracer(primal={self.primal!r}, tangent={self.tangent!r})'


def jvp_rule_kind(prim):
    """How forward mode differentiates `prim`: 'rules', 'linear', 'elementwise', 'constant'
    or 'double-vjp' (the fallback)."""
    if prim.jvp is not None:
        return 'rules'
    if prim.vjp is None:
        return 'constant'
    if prim.linear:
        return 'linear'
    if prim.elementwise:
        return 'elementwise'
    return 'double-vjp'


def _add_tangents(a, b):
    if a is None:
        return b
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b


class JVPTrace(Trace):
    """Evaluates each primitive on the primals and its JVP rule on the tangents."""

    __slots__ = ()

    def process(self, prim, args, params):
        primals, tangents = [], []
        for a in args:
            if isinstance(a, JVPTracer) and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        out = bind(prim, *primals, **params)
        if prim.vjp is None:
            return out                       # not differentiable: a constant to this trace
        t_out = _jvp(prim, out, primals, tangents, params)
        if t_out is None:
            return out                       # only non-differentiable arguments were traced
        if prim.multiple_results:
            return tuple(o if t is None else JVPTracer(self, o, t) for o, t in zip(out, t_out))
        return JVPTracer(self, out, t_out)

    def new_input(self, primal, tangent):
        return JVPTracer(self, primal, tangent)


def _jvp(prim, out, primals, tangents, params):
    rules = prim.jvp
    if rules is not None:
        if callable(rules):
            ts = [zeros_like_value(p) if t is None else t for p, t in zip(primals, tangents)]
            return rules(ts, out, *primals, **params)
        total = None
        for i, t in enumerate(tangents):
            if t is None or rules[i] is None:
                continue
            total = _add_tangents(total, rules[i](t, out, *primals, **params))
        return total
    complete = all(t is not None for t in tangents)
    if prim.linear and (complete or not prim.elementwise):
        # a linear op is its own derivative; a constant argument gets a zero tangent
        ts = [zeros_like_value(p) if t is None else t for p, t in zip(primals, tangents)]
        return bind(prim, *ts, **params)
    if prim.elementwise:
        # t * f'(x): the VJP rule read forwards. Linear elementwise ops with a constant
        # argument (x + c, c - x) come here too: their rule (t, or -t) skips the zero.
        total = None
        for i, t in enumerate(tangents):
            rule = prim.vjp[i]
            if t is None or rule is None:
                continue
            total = _add_tangents(total, rule(t, out, *primals, **params))
        return total
    return _double_vjp(prim, out, primals, tangents, params)


def _double_vjp(prim, out, primals, tangents, params):
    """`J t` as the gradient in `g` of `sum(vjp(g) * t)`, which is linear in `g`."""
    from chainrule import ops
    from chainrule.core import AllArgs
    from chainrule.interpreters.reverse import computed_rules, vjp_flat

    multi = prim.multiple_results
    outs = list(out) if multi else [out]

    def h(*gs):
        g = tuple(gs) if multi else gs[0]
        rules = prim.vjp
        if type(rules) is AllArgs:
            rules = computed_rules(rules, [t is not None for t in tangents], g, out, primals,
                                   params)
        total = 0.0
        for i, t in enumerate(tangents):
            if t is None or rules[i] is None:
                continue
            total = total + ops.sum(rules[i](g, out, *primals, **params) * t)
        return [total]

    zeros = [zeros_like_value(o) for o in outs]
    res, pullback = vjp_flat(h, zeros)
    one = np.ones((), np.result_type(*[o.dtype for o in zeros]))
    cts = pullback([one])
    cts = [zeros_like_value(o) if c is None else c for c, o in zip(cts, outs)]
    return tuple(cts) if multi else cts[0]


def jvp_flat(f, primals, tangents, *, instantiate=True):
    """Run `f(*inputs)` with each input carrying its tangent.

    Args:
        f: a function of len(primals) values returning a list of values.
        primals: the input values (arrays or lower-level tracers).
        tangents: one tangent per primal (same shape), or None for a zero tangent.
        instantiate: give outputs that do not depend on the inputs a zero array as tangent
            (otherwise None).

    Returns:
        (outputs, output_tangents), two lists.
    """
    with new_level(JVPTrace) as trace:
        ins = [p if t is None else trace.new_input(p, t) for p, t in zip(primals, tangents)]
        outs = f(*ins)
        vals, tans = [], []
        for o in outs:
            o = unwrap_inner(o, trace.level)     # a Tensor made by Tensor code inside f
            if isinstance(o, JVPTracer) and o._trace is trace:
                vals.append(o.primal)
                tans.append(o.tangent)
            else:
                vals.append(o)
                tans.append(zeros_like_value(o) if instantiate else None)
    return vals, tans
