"""Neural-network primitives: the few operations that earn a primitive by speed or stability.

What this module lets you do: build `chainrule.nn` layers from a handful of fused operations, so
an eager training step records few tape nodes (on small arrays the cost of an op is Python
overhead, not arithmetic). Every rule is written in chainrule's own ops, so derivatives of
derivatives work.

| primitive | computes | why a primitive |
|---|---|---|
| `linear(x, w, b)` | `x @ w.T + b` | one node instead of transpose, matmul, broadcast, add |
| `relu(x)` | `max(x, 0)` | `maximum` splits ties and needs a broadcast of 0 |
| `sigmoid(x)` | `1 / (1 + exp(-x))` (SciPy's `expit`, or a two-sided formula) | exact to rounding for any `x`, one node |
| `erf(x)` | the error function (exact GELU) | NumPy has none |
| `log_softmax(x, axis)` | `x - logsumexp(x)` | stable, VJP `g - softmax * sum(g)` |
| `cross_entropy(z, t)` | `-mean(log_softmax(z)[i, t_i])` | one node, VJP `(softmax - onehot) / N` |
| `batch_norm(x, w, b)` | `(x - mean) / sqrt(var + eps) * w + b`, batch statistics | one node; one fused derivative formula |

Convolution and pooling (`unfold`, `fold`, `conv2d`, `max_pool2d`) live in `chainrule.ops.conv`.

Each primitive also has a `vmap` rule (at the end of its module), so per-example gradients of a
network vectorise.

Rules with NumPy fast paths: when no argument is traced (the eager backward pass), a rule
computes its formula with NumPy directly; the same formula in chainrule ops serves every traced
case (higher derivatives, `jit`, `vmap`), so the fast path never changes what is differentiable.

Where each lives: `nn_linear` (`linear`), `nn_activations` (`relu`, `sigmoid`, `erf`,
`log_softmax`), `nn_cross_entropy` (`cross_entropy` and the checked `class_labels`),
`nn_batch_norm` (`batch_norm`, `batch_moments`), and `nn_common` (what they and
`chainrule.ops.conv`/`recurrent` share: per-thread workspaces, the NumPy fast-path test
`_plain`, one dtype for an impl's arguments, and the helpers of the `vmap` rules). Every name
stays importable from here.
"""

from chainrule.ops.nn_activations import (  # noqa: F401
    _erf_impl, _log_softmax_impl, _relu_impl, _sigmoid_impl, erf, erf_p, log_softmax,
    log_softmax_p, relu, relu_p, sigmoid, sigmoid_p)
from chainrule.ops.nn_batch_norm import (  # noqa: F401
    _ChannelsLast, batch_moments, batch_norm, batch_norm_p)
from chainrule.ops.nn_common import (  # noqa: F401  (chainrule.ops.conv and recurrent use them)
    _batch_size, _filled, _matmul2d, _merged_batch, _plain, _same_dtype, _stacked, _workspace)
from chainrule.ops.nn_cross_entropy import (  # noqa: F401
    _onehot, check_label_values, class_labels, class_labels_p, cross_entropy, cross_entropy_p,
    mean_over_kept)
from chainrule.ops.nn_linear import linear, linear_p  # noqa: F401

__all__ = ['linear', 'relu', 'sigmoid', 'erf', 'log_softmax', 'cross_entropy', 'class_labels',
           'batch_norm']

# the convolution family moved to chainrule.ops.conv; these names keep working from here
_MOVED_TO_CONV = ('unfold', 'fold', 'conv2d', 'max_pool2d', 'conv_output_size', '_window_args',
                  '_pad_hw', '_pair')


def __getattr__(name):
    if name in _MOVED_TO_CONV:
        from chainrule.ops import conv
        return getattr(conv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
