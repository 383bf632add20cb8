"""A scalar reverse-mode autodiff engine: micrograd's `Value`, without micrograd's defects.

With it you can build an expression out of Python numbers one operation at a time and get the
derivative of the result with respect to every number that went in:

    >>> from chainrule.scalar import Value
    >>> x = Value(2.0)
    >>> y = x * x + x.tanh()
    >>> y.backward()
    >>> round(x.grad, 6)           # d/dx (x**2 + tanh x) = 2x + 1 - tanh(x)**2
    4.070651

Code written for micrograd runs after changing only the import: `Value(data, _children=(),
_op='')`, `.data`, `.grad` (starts at 0), `._prev` (a set), `._op`, `._backward`, `backward()`,
`+ - * / **` and unary `-` with Python numbers on either side, and `relu()`. In addition there are
`tanh() exp() log() sigmoid() sqrt() abs() sin() cos()`.

How it differs from micrograd
-----------------------------
* **No recursion.** `backward()` sorts the graph with `chainrule._graph.toposort`, an explicit-stack
  search, so a chain of a million nodes works.
* **No reference cycles, one object per node.** micrograd stores on each node a `_backward`
  closure that captures the node itself, so every node is a cycle that only Python's cyclic
  garbage collector can free, and the collector then spends most of a training step scanning
  the graph. Here a node stores what its backward step needs in `__slots__` -- its one or two
  inputs (`_a`, `_b`) and the local derivatives d(out)/d(input) (`_da`, `_db`), computed in the
  forward pass -- and `backward()` applies the chain rule from them. No closure, no per-node
  tuple or set: a graph is freed by reference counting as soon as it is dropped, and the
  collector has a third as many objects to scan while it is alive.
* **`backward()` twice accumulates, correctly.** Each call adds d(self)/d(v) to `v.grad` for
  every node `v` in the graph (the output included), exactly as if the two calls' gradients were
  summed, as in PyTorch. (micrograd re-propagates the gradients already stored on intermediate
  nodes, so its second call adds twice the right amount.) Reset with `v.grad = 0`, or
  `Module.zero_grad()` in `chainrule.scalar.nn`.

Number types
------------
* **Exact arithmetic.** `+ - * /` and `**` with an integer exponent keep `int` and
  `fractions.Fraction` data exact, and so do the gradients: `.grad` starts at the integer 0 and the
  output's seed gradient is the integer 1, so `Value(Fraction(1, 3))` has `Fraction` data and
  gradients throughout. (`int / int` is a float, as in Python.)
* **Transcendental functions compute in float.** `exp log tanh sin cos`, and `sqrt`, `sigmoid`
  and non-integer powers built on them, convert non-float real data with `float(x)` (the `math`
  module does this) and return float data with float local derivatives, so gradients that flow
  through them are floats. Exactness is kept only where the operations allow it.
* **Complex data** works for the holomorphic operations (`+ - * / **`, `exp log tanh sin cos
  sigmoid sqrt`), computed with `cmath`. The gradient is the complex derivative f'(z), seeded with
  1 -- JAX's `holomorphic=True` convention; PyTorch's `z.grad` is its complex conjugate.
  `relu()` and `abs()` are not holomorphic and raise `TypeError` on complex data.
* Data of other `numbers.Number` types passes through as far as their own arithmetic allows.
  Operands that are not numbers make Python raise its usual `TypeError: unsupported operand
  type(s)`, which names the operator and both types.

The primitives (each with its local derivative, in one table below) are `+`, `*`, `**` with a
constant exponent, `exp`, `log`, `tanh`, `sin`, `cos` and `relu`; everything else is composed from
them and has no derivative code of its own. One more primitive is earned by speed alone: `dot(ws,
xs, start)`, a neuron's `start + sum(w * x)` as one node with many inputs, equal bit for bit to
the sum of products it replaces (`chainrule.scalar.nn` uses it; its graph is 2n times smaller).
"""

import cmath
import math
from numbers import Number

from chainrule._graph import toposort

__all__ = ['Value', 'dot']

_new = object.__new__


class Value:
    """A scalar in a computation graph, with the gradient of some output with respect to it.

    Args:
        data: the number (`int`, `float`, `fractions.Fraction`, `complex`, or another
            `numbers.Number`).
        _children: micrograd's argument, for compatibility: the nodes this one was computed from.
            A node built this way passes no gradient to them unless you also assign a
            micrograd-style `_backward` closure to it.
        _op: a label for the operation that produced the node (shown by `chainrule.viz`).

    Attributes:
        data: the number.
        grad: the accumulated derivative, with respect to this node, of every output
            `backward()` was called on; starts at the integer 0.
    """

    # How a node stores its backward rule, by the number of inputs:
    #   one or two (the operators):  _a, _da = d(self)/d(_a), and _b, _db (or _b = None);
    #   any number (`dot`):           _a = None, _kids = the inputs, _dks = their local derivatives;
    #   a leaf:                       _a = None, _kids = ();
    #   micrograd-style:              _a = None, _kids = Value(data, _children)'s children,
    #                                 _dks = None, and the `_backward` closure, if any, in _custom.
    # _ct is the node's cotangent during a backward pass, and 0 outside one. Slots a node never
    # reads are left unset, to keep the hot path short.
    __slots__ = ('data', 'grad', '_ct', '_op', '_a', '_b', '_da', '_db', '_kids', '_dks',
                 '_custom', '__weakref__')

    def __init__(self, data, _children=(), _op=''):
        if not isinstance(data, Number):
            raise TypeError(
                f"Value(data) needs a number (int, float, Fraction, complex, ...), "
                f"got {type(data).__name__}: {data!r}")
        self.data = data
        self.grad = 0
        self._ct = 0
        self._op = _op
        self._a = None
        self._kids = tuple(_children)
        self._dks = None

    # ------------------------------------------------------------------ primitives
    # Each returns a node holding its inputs and the local derivative with respect to each.

    def __add__(self, other):                       # d/da (a + b) = 1, d/db = 1
        if other.__class__ is not Value:
            other = _lift(other)
            if other is None:
                return NotImplemented
        return _node2(self.data + other.data, self, 1, other, 1, '+')

    def __mul__(self, other):                       # d/da (a b) = b, d/db = a
        if other.__class__ is not Value:
            other = _lift(other)
            if other is None:
                return NotImplemented
        a, b = self.data, other.data
        return _node2(a * b, self, b, other, a, '*')

    def __pow__(self, n):                           # d/dx x**n = n x**(n-1), n a constant
        if isinstance(n, Value):                    # d/dx x**y = y x**(y-1), d/dy = x**y log x
            x, y = self.data, n.data
            try:
                out = x ** y                            # Python's power: 2.0 ** 3.0 is 8.0 exactly
            except OverflowError:
                out = math.inf
            dy = 0 if x == 0 else out * _call('log', x)    # 0**y is flat in y (0 for y > 0)
            try:
                dx = y * x ** (y - 1) if y != 0 else 0
            except ZeroDivisionError:                   # x == 0 and 0 < y < 1
                dx = math.inf
            return _node2(out, self, dx, n, dy, '**')
        if not isinstance(n, Number):
            return NotImplemented
        x = self.data
        out = x ** n
        if n == 0:
            d = 0
        else:
            try:
                d = n * x ** (n - 1)
            except ZeroDivisionError:               # x == 0 and 0 < n < 1: an infinite slope
                d = math.inf
        return _node1(out, self, d, f'**{n}')

    def exp(self):                                  # d/dx e**x = e**x
        e = _call('exp', self.data)
        return _node1(e, self, e, 'exp')

    def log(self):                                  # d/dx log x = 1/x
        x = _inexact(self.data)
        return _node1(_call('log', x), self, 1 / x, 'log')

    def tanh(self):                                 # d/dx tanh x = 1 - tanh(x)**2
        t = _call('tanh', self.data)
        return _node1(t, self, 1 - t * t, 'tanh')

    def sin(self):                                  # d/dx sin x = cos x
        x = self.data
        return _node1(_call('sin', x), self, _call('cos', x), 'sin')

    def cos(self):                                  # d/dx cos x = -sin x
        x = self.data
        return _node1(_call('cos', x), self, -_call('sin', x), 'cos')

    def relu(self):                                 # d/dx max(x, 0) = [x > 0]
        x = self.data
        if x.__class__ is complex:
            raise TypeError("relu() is not defined for complex data (it compares with 0, so it "
                            f"is not holomorphic); got {x!r}")
        if x > 0:
            return _node1(x, self, 1, 'ReLU')
        return _node1(0, self, 0, 'ReLU')

    # ------------------------------------------------------------------ composites
    # No derivative code below: each is built from the primitives above.

    def __neg__(self):                              # -x
        return self * -1

    def __radd__(self, other):                      # other + self
        return self.__add__(other)

    def __sub__(self, other):                       # self - other
        if not isinstance(other, (Value, Number)):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):                      # other - self
        if not isinstance(other, Number):
            return NotImplemented
        return other + (-self)

    def __rmul__(self, other):                      # other * self
        return self.__mul__(other)

    def __truediv__(self, other):                   # self / other
        if isinstance(other, Value):
            return self * other ** -1
        if not isinstance(other, Number):
            return NotImplemented
        # by a plain number: one node, d/dx (x / c) = 1 / c, computed as x**0 / c so that it has
        # x / c's type (other ** -1 made Fraction(1, 3) / 3 a float: 3 ** -1 is 1/3 in float)
        x = self.data
        return _node1(x / other, self, x ** 0 / other, '/')

    def __rtruediv__(self, other):                  # other / self
        if not isinstance(other, Number):
            return NotImplemented
        return other * self ** -1

    def __rpow__(self, base):                       # d/dx base**x = base**x log(base)
        if not isinstance(base, Number):
            return NotImplemented
        # Python's own power for the value (2 ** Value(3) is 8, where exp(3 log 2) is
        # 7.999999999999998); 0 ** x is flat (0 for x > 0)
        try:
            out = base ** self.data
        except OverflowError:
            out = math.inf
        d = 0 if base == 0 else out * _call('log', base)
        return _node1(out, self, d, f'{base}**')

    def sigmoid(self):
        """1 / (1 + e**-x), computed as (1 + tanh(x/2)) / 2, which never overflows.

        Returns:
            A new Value.
        """
        return ((self * 0.5).tanh() + 1) * 0.5

    def sqrt(self):
        """The square root, as `self ** 0.5`; a negative real raises (use complex data).

        Returns:
            A new Value.
        """
        x = self.data
        if not isinstance(x, complex) and x < 0:
            raise ValueError(f"sqrt of a negative real number ({x!r}); for the complex root "
                             "use complex data, e.g. Value(complex(x))")
        return self ** 0.5

    def abs(self):
        """|x| = relu(x) + relu(-x); its derivative at 0 is 0, as in PyTorch and NumPy's sign.

        Returns:
            A new Value.
        """
        if isinstance(self.data, complex):
            raise TypeError("abs() is not defined for complex data (|z| is not holomorphic); "
                            f"got {self.data!r}")
        return self.relu() + (-self).relu()

    __abs__ = abs

    # ------------------------------------------------------------------ backward

    def backward(self, steps=False):
        """Add d(self)/d(v) to `v.grad` for every node `v` this one was computed from.

        With `steps=True`, return a generator that does the same one node at a time, yielding
        a `chainrule.debug.stepping.Step` per node (op, upstream gradient, local derivatives,
        contributions to each input), for teaching and debugging.

        Calling it twice accumulates: each `.grad` gains the derivative again, as in micrograd and
        PyTorch (set `.grad = 0`, or call `Module.zero_grad()`, to start afresh). `self.grad`
        gains 1 (the integer, so exact data keeps exact gradients).

        Returns:
            None.
        """
        if steps:
            from chainrule.debug.stepping import value_steps
            return value_steps(self)
        topo = toposort((self,), _parents)
        self._ct = 1
        try:
            # Reverse topological order: when a node is reached, every node computed from it has
            # already passed back its share, so its cotangent g is complete. The chain rule then
            # adds g * d(v)/d(input) to each input's cotangent.
            for v in reversed(topo):
                g = v._ct
                v._ct = 0
                v.grad += g
                a = v._a
                if a is not None:
                    a._ct += v._da * g
                    b = v._b
                    if b is not None:
                        b._ct += v._db * g
                elif v._kids:
                    dks = v._dks
                    if dks is None:
                        _run_custom_backward(v, g)
                    else:
                        for child, d in zip(v._kids, dks):
                            child._ct += d * g
        except BaseException:
            for v in topo:
                v._ct = 0
            raise

    # ------------------------------------------------------------------ micrograd compatibility

    @property
    def _children(self):
        """The nodes this one was computed from, in operand order (a tuple)."""
        return _parents(self)

    @property
    def _prev(self):
        """The set of nodes this one was computed from (micrograd's attribute)."""
        return set(_parents(self))

    @property
    def _backward(self):
        """micrograd's per-node step: add this node's contribution to its inputs' `.grad`.

        Reading it gives a function that applies the stored local derivatives using
        `self.grad`, as micrograd's closures do (handy for backpropagating by hand). Assigning a
        micrograd-style closure to it (one that reads `out.grad` and adds to its inputs' `.grad`)
        makes `backward()` use that closure for this node, so custom operations written for
        micrograd keep working.
        """
        custom = getattr(self, '_custom', None)
        if custom is not None:
            return custom
        if self._a is None and getattr(self, '_dks', None) is None:
            return _no_backward
        return _LocalStep(self)

    @_backward.setter
    def _backward(self, fn):
        self._kids = _parents(self)
        self._a = None
        self._dks = None
        self._custom = fn

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


def _node1(data, a, da, op):
    """A node computed from one input `a`, with local derivative `da` (no argument checks)."""
    v = _new(Value)
    v.data = data
    v.grad = 0
    v._ct = 0
    v._op = op
    v._a = a
    v._da = da
    v._b = None
    return v


def _node2(data, a, da, b, db, op):
    """A node computed from inputs `a` and `b`, with local derivatives `da` and `db`."""
    v = _new(Value)
    v.data = data
    v.grad = 0
    v._ct = 0
    v._op = op
    v._a = a
    v._da = da
    v._b = b
    v._db = db
    return v


def dot(ws, xs, start=0):
    """`start + w[0]*x[0] + w[1]*x[1] + ...` as a single node: a neuron's pre-activation.

    The data and the gradients equal those of `sum((w * x for w, x in zip(ws, xs)), start)`
    bit for bit (the sum is accumulated in the same order), but the graph has one node instead of
    `2 * len(ws)`: less to build, sort and walk, and far less for the garbage collector to scan.

    Args:
        ws: a sequence of Values or numbers.
        xs: a sequence of Values or numbers, as long as `ws`.
        start: a Value or number added first (the bias).

    Returns:
        A Value whose inputs are the Values among `ws`, `xs` and `start`.
    """
    ws = list(ws)
    xs = list(xs)
    if len(ws) != len(xs):
        raise ValueError(f"dot: ws has {len(ws)} entries but xs has {len(xs)}")
    kids, dks = [], []
    if start.__class__ is Value or isinstance(start, Value):
        acc = start.data
        kids.append(start)
        dks.append(1)                               # d/d(start) = 1
    elif isinstance(start, Number):
        acc = start
    else:
        raise TypeError(f"dot: start must be a Value or a number, got {type(start).__name__}")
    for w, x in zip(ws, xs):
        wd = w.data if isinstance(w, Value) else _number('dot', w)
        xd = x.data if isinstance(x, Value) else _number('dot', x)
        acc = acc + wd * xd
        if isinstance(w, Value):                    # d/dw (w x) = x
            kids.append(w)
            dks.append(xd)
        if isinstance(x, Value):                    # d/dx (w x) = w
            kids.append(x)
            dks.append(wd)
    v = _new(Value)
    v.data = acc
    v.grad = 0
    v._ct = 0
    v._op = 'dot'
    v._a = None
    v._kids = tuple(kids)
    v._dks = tuple(dks)
    return v


def _number(op, x):
    """`x` itself if it is a number, else a TypeError naming the operation."""
    if isinstance(x, Number):
        return x
    raise TypeError(f"{op}: expected a Value or a number, got {type(x).__name__}: {x!r}")


def _lift(x):
    """A number as a constant leaf node, a Value as itself, anything else as None."""
    if isinstance(x, Value):
        return x
    if isinstance(x, Number):
        v = _new(Value)
        v.data = x
        v.grad = 0
        v._ct = 0
        v._op = ''
        v._a = None
        v._kids = ()
        return v
    return None


def _parents(v):
    """The inputs of node `v`, as a tuple (what `toposort` walks)."""
    a = v._a
    if a is None:
        return v._kids
    b = v._b
    if b is None:
        return (a,)
    return (a, b)


def _inexact(x):
    """float(x) for real data that is not already a float; float and complex data unchanged."""
    if isinstance(x, (float, complex)):
        return x
    return float(x)


def _call(name, x):
    """math.<name>(x), or cmath.<name>(x) for complex x, with errors that name the function.

    Real data that is not a float is converted with float(x). An overflow gives an infinity (as
    in NumPy and PyTorch) instead of Python's OverflowError.
    """
    if isinstance(x, complex):
        return getattr(cmath, name)(x)
    try:
        return getattr(math, name)(x)
    except ValueError:
        raise ValueError(f"{name}({x!r}) is outside the real domain of {name}; for a complex "
                         "result use complex data, e.g. Value(complex(x))") from None
    except OverflowError:
        return math.inf


def _no_backward():
    """The step of a leaf, or of a node built with `Value(data, _children)` and no rule."""


class _LocalStep:
    """`v._backward` for a node made by an operation: micrograd's step, from the stored rule."""

    __slots__ = ('node',)

    def __init__(self, node):
        self.node = node

    def __call__(self):
        v = self.node
        g = v.grad
        if v._a is None:
            for child, d in zip(v._kids, v._dks):
                child.grad += d * g
            return
        v._a.grad += v._da * g
        if v._b is not None:
            v._b.grad += v._db * g


def _run_custom_backward(v, g):
    """Apply a micrograd-style `_backward` closure to node `v`, whose cotangent is `g`.

    The closure reads `v.grad` and adds into its inputs' `.grad`; here `.grad` is the running
    total over all backward calls, so the closure is shown `g` in `v.grad` and zeros in the
    inputs, and what it adds to them is moved into their cotangents.
    """
    fn = getattr(v, '_custom', None)
    if fn is None:                      # Value(data, _children) without a rule: nothing flows
        return
    inputs = list(dict.fromkeys(v._kids))
    saved = [c.grad for c in inputs]
    total = v.grad
    for c in inputs:
        c.grad = 0
    v.grad = g
    try:
        fn()
    finally:
        v.grad = total
        for c, s in zip(inputs, saved):
            c._ct += c.grad
            c.grad = s
