"""`chainrule.nn`: neural networks on `Tensor`s, PyTorch's `torch.nn` on chainrule's engine.

What this package lets you do: build a network from layers (`Linear`, `Conv1d`, `Conv2d`,
`ConvTranspose2d`, pooling (`MaxPool1d/2d/3d`, `AvgPool*`, `LPPool*`, `AdaptiveMaxPool*`,
`AdaptiveAvgPool*`, `MaxUnpool*`), `Upsample`, `Flatten`,
`Embedding`, `LayerNorm`, `BatchNorm1d`, `BatchNorm2d`, `GroupNorm`, `Dropout`, `Sequential`,
`RNN`/`LSTM`/`GRU`, activations), train
it eagerly with `loss.backward()` and a `chainrule.optim` optimizer, or functionally with
`cr.grad(loss_fn)(model, x, y)` (modules are pytrees), and save it with `cr.save`.

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn, optim
    >>> model = nn.Sequential(nn.Linear(2, 8, rng=0), nn.Tanh(), nn.Linear(8, 1, rng=1))
    >>> opt = optim.SGD(model.parameters(), lr=0.1)
    >>> x = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]], np.float32)
    >>> y = np.array([[0.], [1.], [1.], [0.]], np.float32)
    >>> for step in range(3):
    ...     opt.zero_grad()
    ...     loss = nn.functional.mse_loss(model(x), y)
    ...     loss.backward()
    ...     opt.step()
    >>> sorted(model.state_dict())
    ['0.bias', '0.weight', '2.bias', '2.weight']

`nn.functional` holds the same operations as functions (and the losses); `nn.init` the
initialisers, each with an explicit seed.
"""

from chainrule.nn import functional, init, utils
from chainrule.nn.modules import (Dropout, Embedding, Flatten, GELU, Identity, Linear,
                                  LogSoftmax, Module, Parameter, ReLU, Sequential, Sigmoid,
                                  Softmax, StateDictError, Tanh)
from chainrule.nn.conv import Conv1d, Conv2d, ConvTranspose2d, Upsample
from chainrule.nn import pooling
from chainrule.nn.pooling import *  # noqa: F401,F403 (PyTorch's module names)
from chainrule.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from chainrule.nn.containers import ModuleDict, ModuleList, ParameterList
from chainrule.nn import activations, losses
from chainrule.nn.activations import *  # noqa: F401,F403 (PyTorch's module names)
from chainrule.nn.losses import *  # noqa: F401,F403 (PyTorch's module names)
from chainrule.nn.attention import MultiheadAttention
from chainrule.nn.transformer import TransformerEncoder, TransformerEncoderLayer
from chainrule.nn.norm import GroupNorm
from chainrule.nn.recurrent import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell

__all__ = ['functional', 'init', 'Module', 'Parameter', 'StateDictError', 'Linear', 'Conv2d',
           'MaxPool2d', 'Flatten', 'Embedding', 'LayerNorm', 'BatchNorm1d', 'Dropout',
           'Sequential', 'Identity', 'ReLU', 'GELU', 'Tanh', 'Sigmoid', 'Softmax', 'LogSoftmax',
           'ModuleList', 'ModuleDict', 'ParameterList', 'GroupNorm',
           'RNN', 'LSTM', 'GRU', 'RNNCell', 'LSTMCell', 'GRUCell',
           # chainrule.nn.attention, chainrule.nn.transformer, chainrule.nn.utils
           'utils', 'MultiheadAttention', 'TransformerEncoderLayer', 'TransformerEncoder',
           # chainrule.nn.conv, chainrule.nn.norm
           'Conv1d', 'ConvTranspose2d', 'Upsample', 'BatchNorm2d',
           ] + activations.__all__ + losses.__all__ + [
               n for n in pooling.__all__ if n != 'MaxPool2d']
