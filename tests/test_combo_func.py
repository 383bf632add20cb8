"""`chainrule.func` where it meets modules with state and the other transforms: buffers given
to `functional_call` are updated as PyTorch updates them (BatchNorm's running statistics and
its batch counter, which the cumulative average divides by), and recurrent layers called
functionally under grad, jit and vmap (per-example gradients, ensembles) give PyTorch's
numbers."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.func as cf
import chainrule.numpy as cnp
from chainrule import nn
from torch_ref import load_from_torch, torch_or_skip

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3, 2, 2))


def _bn_pair(torch, momentum):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3, momentum=momentum)
                                 ).double()
    ours = nn.Sequential(nn.Conv2d(3, 3, 1, dtype=np.float64),
                         nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64))
    load_from_torch(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize('given_as', ['arrays', 'tensors'])
@pytest.mark.parametrize('momentum', [0.1, None])
def test_functional_call_updates_the_buffers_it_is_given_as_torch(momentum, given_as):
    """Three training-mode calls with the buffers passed in: each call must count (with
    momentum=None the running averages are cumulative, weighted by the counter)."""
    torch = torch_or_skip('PyTorch is the reference for BatchNorm running statistics')
    ours, theirs = _bn_pair(torch, momentum)
    tb = {k: v.clone() for k, v in theirs.named_buffers()}
    ob = {k: v.detach().numpy().copy() for k, v in ours.named_buffers()}
    if given_as == 'tensors':
        ob = {k: cr.Tensor(v) for k, v in ob.items()}
    own_before = {k: v.detach().numpy().copy() for k, v in ours.named_buffers()}
    for i in range(3):
        with torch.no_grad():
            want = torch.func.functional_call(theirs, tb, (torch.from_numpy(X * (i + 1)),))
        got = cf.functional_call(ours, ob, (X * (i + 1),))
        np.testing.assert_allclose(np.asarray(got.detach().numpy()), want.numpy(), atol=1e-12)
    for k in tb:
        np.testing.assert_allclose(np.asarray(getattr(ob[k], 'data', ob[k])), tb[k].numpy(),
                                   rtol=1e-12, atol=1e-15, err_msg=k)
    for k, v in ours.named_buffers():             # the module's own buffers are untouched
        np.testing.assert_array_equal(v.detach().numpy(), own_before[k])


@pytest.mark.parametrize('momentum', [0.1, None])
def test_grad_of_functional_call_in_training_mode_updates_the_modules_buffers_once(momentum):
    torch = torch_or_skip('PyTorch is the reference for BatchNorm running statistics')
    ours, theirs = _bn_pair(torch, momentum)
    params = {k: v.detach().numpy() for k, v in ours.named_parameters()}
    for i in range(3):
        g = cr.grad(lambda p: cnp.sum(cf.functional_call(ours, p, (X * (i + 1),)) ** 3))(params)
        theirs.zero_grad()
        (theirs(torch.from_numpy(X * (i + 1))) ** 3).sum().backward()
        for k, p in theirs.named_parameters():
            np.testing.assert_allclose(g[k], p.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, v in theirs.named_buffers():
        np.testing.assert_allclose(dict(ours.named_buffers())[k].detach().numpy(), v.numpy(),
                                   rtol=1e-12, atol=1e-15, err_msg=k)


RECURRENT = [('LSTM', {'num_layers': 2, 'bidirectional': True}),
             ('GRU', {'num_layers': 2, 'batch_first': True}),
             ('RNN', {'nonlinearity': 'relu', 'bidirectional': True})]


@pytest.mark.parametrize('kind,kw', RECURRENT, ids=[k for k, _ in RECURRENT])
def test_recurrent_layers_functionally_under_jit_and_vmap_match_torch(kind, kw):
    torch = torch_or_skip('PyTorch is the reference for the recurrent layers')
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours = getattr(nn, kind)(3, 4, dtype=np.float64, **kw)
    load_from_torch(ours, theirs)
    x = RNG.standard_normal((5, 2, 3))
    params = {k: v.detach().numpy() for k, v in ours.named_parameters()}
    tparams = {k: v.detach() for k, v in theirs.named_parameters()}

    def loss(p, x):
        return cnp.sum(cnp.sin(cf.functional_call(ours, p, (x,))[0]))

    def tloss(p, x):
        return torch.sin(torch.func.functional_call(theirs, p, (x,))[0]).sum()

    want = torch.func.grad(tloss)(tparams, torch.from_numpy(x))
    for got in (cr.grad(loss)(params, x), cr.jit(cr.grad(loss))(params, x)):
        for k in params:
            np.testing.assert_allclose(got[k], want[k].numpy(), rtol=1e-10, atol=1e-12)
    # per-example gradients: each example unbatched, against a loop of torch.func.grad
    xs = x if kw.get('batch_first') else np.moveaxis(x, 1, 0)
    per = [torch.func.grad(tloss)(tparams, torch.from_numpy(xi)) for xi in xs]
    for fn in (cf.vmap(cf.grad(loss), in_dims=(None, 0)),
               cr.jit(cf.vmap(cf.grad(loss), in_dims=(None, 0)))):
        got = fn(params, xs)
        for k in params:
            np.testing.assert_allclose(got[k], np.stack([d[k].numpy() for d in per]),
                                       rtol=1e-10, atol=1e-12)
    # an ensemble of two: stacked state, vmapped functional calls
    torch.manual_seed(1)
    theirs2 = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours2 = getattr(nn, kind)(3, 4, dtype=np.float64, **kw)
    load_from_torch(ours2, theirs2)
    sp, sb = cf.stack_module_state([ours, ours2])
    ens = cf.vmap(lambda p, b, x: cf.functional_call(ours, (p, b), (x,))[0],
                  in_dims=(0, 0, None))(sp, sb, x)
    for i, m in enumerate((theirs, theirs2)):
        np.testing.assert_allclose(np.asarray(ens[i]), m(torch.from_numpy(x))[0].detach().numpy(),
                                   atol=1e-12)
