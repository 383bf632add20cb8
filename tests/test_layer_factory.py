"""PyTorch's factory keywords of the nn layers: `device=` (the CPU only; anything else a clear
error) and `dtype=` on every layer with parameters or buffers, the default dtype following
`cr.set_default_dtype` as PyTorch's layers follow `torch.set_default_dtype`, and
`Module.to(dtype)`/`.double()`/`.float()`/`.half()` casting floating parameters and buffers
but not integer buffers -- each checked against PyTorch's layers on the same weights."""

import contextvars

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.core import ChainruleError, DTypeError
from test_nn import TOL, _torch

# (name, positional arguments) of every layer with parameters or buffers, PyTorch's names
LAYERS = [
    ('Linear', (3, 4)), ('Embedding', (5, 3)), ('Conv1d', (2, 4, 3)), ('Conv2d', (2, 4, 3)),
    ('ConvTranspose2d', (2, 4, 3)), ('LayerNorm', (4,)), ('BatchNorm1d', (3,)),
    ('BatchNorm2d', (3,)), ('GroupNorm', (2, 4)), ('PReLU', (3,)), ('RMSNorm', (4,)),
    ('MultiheadAttention', (4, 2)), ('TransformerEncoderLayer', (4, 2, 8)), ('RNN', (3, 4)),
    ('LSTM', (3, 4)), ('GRU', (3, 4)), ('RNNCell', (3, 4)), ('LSTMCell', (3, 4)),
    ('GRUCell', (3, 4)),
]


def _dtypes(module):
    return {k: np.asarray(v).dtype for k, v in module.state_dict().items()}


def _torch_dtypes(module):
    return {k: np.dtype(str(v.dtype).replace('torch.', '')) for k, v in
            module.state_dict().items()}


@pytest.mark.parametrize('name,args', LAYERS)
def test_every_layer_takes_device_and_dtype_as_pytorch(name, args):
    torch = _torch()
    want32 = _torch_dtypes(getattr(torch.nn, name)(*args))
    want64 = _torch_dtypes(getattr(torch.nn, name)(*args, dtype=torch.float64))
    assert _dtypes(getattr(nn, name)(*args)) == want32
    assert _dtypes(getattr(nn, name)(*args, device='cpu', dtype=cr.float64)) == want64
    assert _dtypes(getattr(nn, name)(*args, dtype='float64', device=cr.device('cpu'))) == want64

    def under_default(dt):
        cr.set_default_dtype(dt)
        return _dtypes(getattr(nn, name)(*args))
    # the default dtype, set in a copy of this context (it is a context variable)
    assert contextvars.copy_context().run(under_default, cr.float64) == want64
    assert contextvars.copy_context().run(under_default, cr.float32) == want32
    assert _dtypes(getattr(nn, name)(*args)) == want32           # not leaked
    with pytest.raises(ChainruleError, match=rf"{name}\(\): device='cuda' is not available"):
        getattr(nn, name)(*args, device='cuda')
    with pytest.raises(DTypeError, match=f'{name}: dtype must be a floating dtype'):
        getattr(nn, name)(*args, dtype=cr.int64)


def test_default_dtype_follows_torch_set_default_dtype_in_values_and_gradients():
    # a float64 network built under set_default_dtype(float64), PyTorch's weights loaded, gives
    # PyTorch's float64 values and gradients (and the default-dtype factories agree)
    torch = _torch()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tnet = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3),
                                   torch.nn.ReLU(), torch.nn.MaxPool2d(2, ceil_mode=True),
                                   torch.nn.Flatten(), torch.nn.Linear(3 * 3 * 3, 2))
    finally:
        torch.set_default_dtype(old)

    def build():
        cr.set_default_dtype(cr.float64)
        return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                             nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                             nn.Linear(3 * 3 * 3, 2)), cr.randn(1).dtype
    net, factory_dtype = contextvars.copy_context().run(build)
    assert factory_dtype == np.float64
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    tx, xt = torch.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
    ty, y = tnet(tx), net(xt)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL[np.float64])
    ty.square().sum().backward()
    (y * y).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **TOL[np.float64])
    np.testing.assert_allclose(net[0].weight.grad.numpy(), tnet[0].weight.grad.numpy(),
                               **TOL[np.float64])
    assert _dtypes(net) == _torch_dtypes(tnet)


@pytest.mark.parametrize('cast', ['double', 'float', 'half', 'to64', 'to16'])
def test_module_casts_floating_parameters_and_buffers_and_keeps_integer_buffers(cast):
    torch = _torch()

    def apply(m, lib):
        if cast.startswith('to'):
            return m.to({'to64': lib.float64, 'to16': lib.float16}[cast])
        return getattr(m, cast)()
    for build in (lambda lib: lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4)),
                  lambda lib: lib.nn.LSTM(2, 3)):
        ours, theirs = apply(build(cr), cr), apply(build(torch), torch)
        assert _dtypes(ours) == _torch_dtypes(theirs)
    m = nn.BatchNorm1d(2).double()
    with pytest.raises(DTypeError, match='Module.to: only floating or complex dtypes'):
        m.to(cr.int64)
    assert m.running_mean.dtype == np.float64 and m.num_batches_tracked.dtype == np.int64
