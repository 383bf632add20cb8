"""A tiny neural-network library on scalar `Value`s: micrograd's `nn`, with seeds.

With it you can build and train a multi-layer perceptron one scalar at a time:

    >>> import random
    >>> from chainrule.scalar.nn import MLP
    >>> model = MLP(2, [16, 16, 1], rng=random.Random(0))
    >>> score = model([0.5, -1.0])           # a Value
    >>> model.zero_grad(); score.backward()
    >>> len(model.parameters())
    337

The behaviour is micrograd's: weights drawn from `random.uniform(-1, 1)`, biases start at 0,
ReLU on every layer but the last, a layer with one neuron returns a `Value` rather than a list.
Code written for micrograd (`MLP(nin, nouts)`, `Neuron(nin, nonlin=True)`,
`Layer(nin, nout, **kwargs)`) runs unchanged. In addition, every constructor takes `rng`: a
`random.Random` (or an int seed) to draw the initial weights from, instead of the global
`random` module, so a model can be made reproducible without touching global state.

Speed: a neuron computes `b + sum(w * x)` with `chainrule.scalar.dot`, one graph node per neuron
instead of micrograd's chain of `2 * nin` `+` and `*` nodes. The data and gradients are the same
bit for bit; the graph is far smaller, so a training step is much faster (see
`bench/scalar_moons.py`). `Neuron(nin, fused=False)` (or `MLP(..., fused=False)`) builds
micrograd's node-by-node graph instead, e.g. to draw every multiplication.

`Module.parameters()` finds the parameters by walking the module's attributes (Values, Modules,
and lists or tuples of them), so a new Module subclass need not write its own.
"""

import random

from chainrule.scalar.engine import Value, dot

__all__ = ['Module', 'Neuron', 'Layer', 'MLP']


def _as_rng(rng):
    """None -> the global `random` module (micrograd's behaviour); an int -> a seeded Random;
    anything with `uniform(a, b)` (a `random.Random`, a NumPy Generator) as it is; anything else
    `np.random.default_rng` accepts (a SeedSequence, a BitGenerator, ...) -> a NumPy generator."""
    if rng is None:
        return random
    if isinstance(rng, int):
        return random.Random(rng)
    if hasattr(rng, 'uniform'):
        return rng
    import numpy as np      # only here: the scalar engine itself needs no NumPy
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as e:
        raise TypeError(f'rng={rng!r:.40} is not accepted ({e}); pass None, an int seed, a '
                        'random.Random, or what numpy.random.default_rng accepts') from None


class Module:
    """Base class: `parameters()` finds the `Value`s among the attributes, `zero_grad()` resets."""

    def zero_grad(self):
        """Set `.grad = 0` on every parameter (gradients accumulate across `backward()` calls).

        Returns:
            None.
        """
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        """The parameters of this module and of the modules it holds, each once, in order.

        Attributes are searched in the order they were set; `Value`s, `Module`s, and lists or
        tuples of them are followed (iteratively, not recursively).

        Returns:
            A list of `Value`.
        """
        params, seen = [], set()
        stack = [iter(vars(self).values())]
        while stack:
            for item in stack[-1]:
                if isinstance(item, Value):
                    if id(item) not in seen:
                        seen.add(id(item))
                        params.append(item)
                elif isinstance(item, Module):
                    stack.append(iter(vars(item).values()))
                    break
                elif isinstance(item, (list, tuple)):
                    stack.append(iter(item))
                    break
            else:
                stack.pop()
        return params


class Neuron(Module):
    """One neuron: `relu(w . x + b)`, or `w . x + b` when `nonlin=False`.

    Args:
        nin: the number of inputs.
        nonlin: apply ReLU to the output.
        rng: where the initial weights come from: None (the global `random` module, as
            micrograd), an int seed, or a `random.Random`.
        fused: build `w . x + b` as one `dot` node (True) or as micrograd's chain of `*` and `+`
            nodes (False); the numbers are the same either way.
    """

    def __init__(self, nin, nonlin=True, rng=None, fused=True):
        rng = _as_rng(rng)
        self.w = [Value(float(rng.uniform(-1, 1))) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin
        self.fused = fused

    def __call__(self, x):
        """Apply the neuron to `x`, a sequence of `nin` numbers or Values; returns a Value."""
        if self.fused:
            act = dot(self.w, x, self.b)
        else:
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons reading the same `nin` inputs.

    Args:
        nin: the number of inputs.
        nout: the number of neurons (outputs).
        **kwargs: passed to each `Neuron` (`nonlin`, `rng`, `fused`).
    """

    def __init__(self, nin, nout, **kwargs):
        if 'rng' in kwargs:                 # one generator shared by all neurons
            kwargs['rng'] = _as_rng(kwargs['rng'])
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        """Apply every neuron to `x`; returns a list of Values, or one Value when `nout == 1`."""
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: ReLU layers, then a linear output layer.

    Args:
        nin: the number of inputs.
        nouts: the width of each layer, e.g. `[16, 16, 1]`.
        rng: where the initial weights come from: None (the global `random` module, as
            micrograd), an int seed, or a `random.Random`.
        fused: passed to every `Neuron` (one `dot` node per neuron, or micrograd's graph).
    """

    def __init__(self, nin, nouts, rng=None, fused=True):
        rng = _as_rng(rng)
        sz = [nin] + list(nouts)
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1, rng=rng, fused=fused)
                       for i in range(len(nouts))]

    def __call__(self, x):
        """Apply the layers in turn to `x`, a sequence of `nin` numbers or Values."""
        for layer in self.layers:
            x = layer(x)
        return x

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
