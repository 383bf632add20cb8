"""Custom derivative rules: `custom_vjp`, `custom_jvp`, and primitives of your own.

What this module lets you do: give a Python function a derivative of your choosing -- a
numerically stable one (`log1pexp`), a deliberately modified one (gradient clipping, a
straight-through estimator), or a cheaper one (an implicit-function gradient) -- with JAX's
decorators, and register a brand-new primitive operation with its own rules.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> @cr.custom_jvp
    ... def log1pexp(x):
    ...     return cnp.log1p(cnp.exp(x))
    >>> @log1pexp.defjvp
    ... def _(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t * (1 - 1 / (1 + cnp.exp(x)))   # d/dx = sigmoid(x), stably
    >>> float(cr.grad(log1pexp)(100.0))        # the plain composite gives nan here
    1.0

    >>> @cr.custom_vjp
    ... def clip_gradient(x, lo, hi):
    ...     return x                               # identity forward ...
    >>> clip_gradient.defvjp(lambda x, lo, hi: (x, (lo, hi)),
    ...                      lambda res, g: (cnp.clip(g, *res), None, None))  # ... clipped back
    >>> cr.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 1.0))(2.0)
    1.0

How it works. Calling a decorated function with traced arguments binds one *call primitive*
(`custom_vjp_call`, `custom_jvp_call`) whose parameters carry the user's functions; every
interpreter then treats it like any other primitive, through the rules declared here:

- `custom_jvp_call`: `impl` calls the function; the JVP rule is the user's rule; the VJP is the
  user's rule *transposed* -- the rule is linear in the tangents, so the gradient of
  `t -> <g, jvp(x, t)>` (taken by the reverse-mode interpreter) is `J^T g`. (JAX does the
  same by linearising and transposing.)
- `custom_vjp_call`: `impl` calls `fwd` and returns the outputs followed by the residuals, so
  reverse mode saves the residuals with the node instead of recomputing them; the VJP sends
  the outputs' cotangent through the user's `bwd`. A residual that is itself differentiated
  (the outer derivative in `grad(grad(f))`) is differentiated exactly, by running `fwd` under a
  reverse trace -- so higher derivatives of a `custom_vjp` function differentiate `fwd` and
  `bwd`, as in JAX. Forward mode uses the transpose of the custom VJP (JAX refuses it).

`vmap` binds the same primitive again with the user's functions vectorised, so a batched call
keeps its custom rules (per-example gradients through a `custom_vjp` use `bwd`); `jit` records
the call as one equation and keeps the rules too. With no traced argument the decorated
function is just called: no primitive, no overhead beyond flattening the arguments.

Rules are written with `chainrule.numpy` (never raw NumPy on the arguments), so they can be
differentiated again. A decorated function must not close over values being differentiated
(pass them as arguments); closed-over constants are fine.

A new primitive from user code: see `primitive` -- one call declares the NumPy
implementation and the derivative rules, and the result is a function usable under every
transform.

Where each piece lives: `call` (what every call primitive shares -- the parameters, the
decorator base class, closure conversion, `pull_back`; `chainrule.checkpoint` uses it too),
`batching` (`vmap` of a call primitive), `jvp` (`custom_jvp`), `vjp` (`custom_vjp`),
`user_primitive` (`primitive`: a new primitive from user code).
"""

from chainrule.custom.call import (  # noqa: F401  (the shared machinery, for chainrule.checkpoint)
    CallBypassedWarning, CallParams, CallWrapper, any_traced, per_arg_vjp, pull_back)
from chainrule.custom.batching import batch_call_rule, vectorised_fun  # noqa: F401
from chainrule.custom.jvp import custom_jvp, custom_jvp_call_p  # noqa: F401
from chainrule.custom.vjp import VJPCallParams, custom_vjp, custom_vjp_call_p  # noqa: F401
from chainrule.custom.user_primitive import primitive

__all__ = ['custom_vjp', 'custom_jvp', 'primitive', 'CallBypassedWarning']
