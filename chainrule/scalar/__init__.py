"""Scalar automatic differentiation in pure Python: micrograd's `Value`, done right.

`chainrule.scalar` lets you differentiate expressions built one number at a time, with no
dependency beyond the standard library -- the on-ramp for learners and an independent oracle in
tests:

    >>> from chainrule.scalar import Value
    >>> a, b = Value(3.0), Value(4.0)
    >>> c = a * b + a
    >>> c.backward()
    >>> a.grad, b.grad            # dc/da = b + 1, dc/db = a
    (5.0, 3.0)

`chainrule.scalar.engine` holds `Value`; `chainrule.scalar.nn` holds micrograd's small neural
network library (`Module`, `Neuron`, `Layer`, `MLP`) built on it. Drawing a graph:
`chainrule.viz.draw(c)`.
"""

from chainrule.scalar.engine import Value, dot

__all__ = ['Value', 'dot']
