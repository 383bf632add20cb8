"""Export where it meets `jit`'s captures and the layers: a function that closes over a
module's parameters (which `jit` stages by reference, as extra inputs) is exported with those
values baked in, saved, loaded and run -- and differentiated -- giving what the module gives;
the conv family, BatchNorm in evaluation, attention with a mask argument and LSTMs too."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.func as cf
import chainrule.numpy as cnp
from chainrule import nn

RNG = np.random.default_rng(0)


def _round_trip(tmp_path, fun, *args):
    path = tmp_path / 'program.crg'
    cr.export(fun, *args).save(path)
    return cr.load_graph(path)


def _cnn():
    cr.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, padding_mode='reflect', dtype=np.float64),
        nn.BatchNorm2d(4, dtype=np.float64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, groups=2, dilation=2, padding=2, dtype=np.float64),
        nn.GroupNorm(2, 4, dtype=np.float64), nn.Upsample(scale_factor=2),
        nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.ConvTranspose2d(4, 2, 2, stride=2, dtype=np.float64), nn.AdaptiveAvgPool2d((3, 2)),
        nn.Flatten(), nn.Linear(12, 3, dtype=np.float64))
    x = RNG.standard_normal((2, 2, 8, 8))
    net(x)                                  # running statistics that are not the initial ones
    return net.eval(), x


def test_a_closure_over_a_module_exports_with_its_current_parameters(tmp_path):
    net, x = _cnn()
    want = np.asarray(net(x).detach().numpy())
    loaded = _round_trip(tmp_path, lambda x: net(x), x)
    assert len(loaded.in_avals) == 1                # x only: the parameters are constants
    np.testing.assert_allclose(np.asarray(loaded(x)), want, atol=1e-12)
    with cr.no_grad():                              # later changes do not reach the saved copy
        for p in net.parameters():
            p.mul_(2.0)
    np.testing.assert_allclose(np.asarray(loaded(x)), want, atol=1e-12)
    # differentiable in its argument, against the module run eagerly
    g = cr.grad(lambda x: cnp.sum(cnp.sin(loaded(x))))(x)
    with cr.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    xt = cr.Tensor(x, requires_grad=True)
    net(xt).sin().sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), atol=1e-12)


def test_functional_call_exports_and_differentiates_in_the_parameters(tmp_path):
    net, x = _cnn()
    params = {k: v.detach().numpy() for k, v in net.named_parameters()}
    bufs = {k: v.detach().numpy() for k, v in net.named_buffers()}
    f = lambda p, b, x: cf.functional_call(net, (p, b), (x,))      # noqa: E731
    loaded = _round_trip(tmp_path, f, params, bufs, x)
    np.testing.assert_allclose(np.asarray(loaded(params, bufs, x)), np.asarray(f(params, bufs, x)),
                               atol=1e-12)
    loss = lambda g: lambda p: cnp.sum(cnp.sin(g(p, bufs, x)))      # noqa: E731
    want = cr.grad(loss(f))(params)
    for got in (cr.grad(loss(loaded))(params), cr.jit(cr.grad(loss(loaded)))(params)):
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-12, err_msg=k)


def test_attention_with_a_mask_argument_and_an_lstm_export(tmp_path):
    mha = nn.MultiheadAttention(4, 2, batch_first=True, dtype=np.float64, rng=0)
    q = RNG.standard_normal((2, 3, 4))
    kpm = np.array([[False, False, True], [False, True, True]])
    f = lambda q, m: mha(q, q, q, key_padding_mask=m)[0]             # noqa: E731
    loaded = _round_trip(tmp_path, f, q, kpm)
    for m in (kpm, ~kpm | np.eye(2, 3, dtype=bool)):
        np.testing.assert_allclose(np.asarray(loaded(q, m)), f(q, m).detach().numpy(),
                                   atol=1e-12)
    lstm = nn.LSTM(3, 4, num_layers=2, dtype=np.float64)
    xs = RNG.standard_normal((5, 2, 3))
    g = lambda x: lstm(x)[0]                                        # noqa: E731
    np.testing.assert_allclose(np.asarray(_round_trip(tmp_path, g, xs)(xs)),
                               g(xs).detach().numpy(), atol=1e-12)


def test_exporting_a_closure_over_a_traced_value_is_refused():
    def outer(w):
        cr.export(lambda x: x * w, np.ones(3))
        return cnp.sum(w)
    with pytest.raises(cr.ChainruleError, match='export: .*traced by an enclosing transform'):
        cr.grad(outer)(np.ones(3))
