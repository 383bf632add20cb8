"""Whole PyTorch programs, written once against an import alias `T`, run on PyTorch 2.13 and on
chainrule with the same initial weights and the same data, compared result by result (losses
at every step, gradients, final weights).

How a program is written:

    def my_program(T, lib):
        model = lib.same_weights('model', T.nn.Linear(3, 2))   # torch's initial weights, on both
        x = lib.tensor(lib.rng.standard_normal((4, 3)))          # the same data on both
        loss = model(x).square().mean()
        loss.backward()
        return {'loss': loss, 'grad': model.weight.grad}         # compared entry by entry

`T` is `torch` or `chainrule`; only `lib` knows which. PyTorch runs first: `lib.same_weights`
records each module's initial `state_dict` there and loads it into the chainrule module; `lib.rng`
is a NumPy generator seeded the same for both runs. Results may be tensors, numbers, or lists /
tuples / dicts of them.
"""

import copy

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for these programs')
torch.set_num_threads(1)


class Lib:
    """What a program needs besides `T`: the same weights, the same data, conversions."""

    def __init__(self, T, weights=None):
        self.T = T
        self.is_torch = T is torch
        self.weights = {} if weights is None else weights
        self.rng = np.random.default_rng(1234)

    def same_weights(self, name, module):
        """`module` with the initial weights PyTorch's run drew for `name`."""
        if self.is_torch:
            self.weights[name] = {k: v.detach().numpy().copy()
                                  for k, v in module.state_dict().items()}
        else:
            module.load_state_dict(copy.deepcopy(self.weights[name]))
        return module

    def tensor(self, a, dtype=None, requires_grad=False):
        a = np.asarray(a)
        if dtype is None and a.dtype == np.float64:
            dtype = 'float32'
        if self.is_torch:
            t = torch.tensor(a, dtype=getattr(torch, dtype) if dtype else None)
            return t.requires_grad_(requires_grad)
        return cr.tensor(a, dtype=getattr(cr, dtype) if dtype else None,
                         requires_grad=requires_grad)

    def numpy(self, t):
        if self.is_torch and isinstance(t, torch.Tensor):
            return t.detach().numpy()
        if isinstance(t, cr.Tensor):
            return np.asarray(t.detach().numpy())
        return np.asarray(t)


def _flatten(result, prefix=''):
    if isinstance(result, dict):
        for k, v in result.items():
            yield from _flatten(v, f'{prefix}{k}.')
    elif isinstance(result, (list, tuple)):
        for i, v in enumerate(result):
            yield from _flatten(v, f'{prefix}{i}.')
    else:
        yield prefix.rstrip('.'), result


def run_both(program, rtol=2e-4, atol=2e-5):
    """Run `program` on PyTorch, then on chainrule with PyTorch's initial weights, and compare."""
    ref = Lib(torch)
    theirs = dict(_flatten(program(torch, ref)))
    lib = Lib(cr, ref.weights)
    ours = dict(_flatten(program(cr, lib)))
    assert ours.keys() == theirs.keys()
    for name in theirs:
        a, b = lib.numpy(ours[name]), ref.numpy(theirs[name])
        assert a.shape == b.shape, f'{program.__name__}: {name}: shape {a.shape} vs {b.shape}'
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol,
                                   err_msg=f'{program.__name__}: {name}')
    return ours, theirs


# --- the programs ---------------------------------------------------------------------------


def gradient_penalty(T, lib):
    """WGAN-GP style critic training: the penalty is built from `autograd.grad(create_graph=True)`
    of the critic's output with respect to its (interpolated) input, and trained through."""
    critic = lib.same_weights('critic', T.nn.Sequential(
        T.nn.Linear(5, 16), T.nn.Tanh(), T.nn.Linear(16, 16), T.nn.SiLU(), T.nn.Linear(16, 1)))
    opt = T.optim.Adam(critic.parameters(), lr=1e-2, betas=(0.5, 0.9))
    losses, penalties = [], []
    for _ in range(5):
        real = lib.tensor(lib.rng.standard_normal((8, 5)) + 1.0)
        fake = lib.tensor(lib.rng.standard_normal((8, 5)))
        alpha = lib.tensor(lib.rng.uniform(size=(8, 1)))
        mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        out = critic(mix)
        g, = T.autograd.grad(out, mix, grad_outputs=T.ones_like(out), create_graph=True)
        penalty = ((g.norm(2, dim=1) - 1) ** 2).mean()
        loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss)
        penalties.append(penalty)
    return {'loss': losses, 'penalty': penalties,
            'weights': [p.detach() for p in critic.parameters()]}


def custom_function(T, lib):
    """A user-written `autograd.Function` (a straight-through clipped identity, whose backward is
    deliberately not the derivative of its forward) inside a model trained with SGD."""

    class ClipST(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, bound):
            ctx.save_for_backward(x)
            ctx.bound = bound
            return x.clamp(-bound, bound)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * (x.abs() < 2 * ctx.bound).to(g.dtype), None

    lin1 = lib.same_weights('lin1', T.nn.Linear(4, 8))
    lin2 = lib.same_weights('lin2', T.nn.Linear(8, 3))
    params = list(lin1.parameters()) + list(lin2.parameters())
    opt = T.optim.SGD(params, lr=0.1, momentum=0.9)
    x = lib.tensor(lib.rng.standard_normal((16, 4)) * 2)
    y = lib.tensor(lib.rng.integers(0, 3, 16), dtype='int64')
    losses = []
    for _ in range(6):
        h = ClipST.apply(lin1(x), 0.5)
        loss = T.nn.functional.cross_entropy(lin2(h), y)
        opt.zero_grad()
        loss.backward()
        losses.append(loss)
        grads = [p.grad.clone() for p in params]
        opt.step()
    return {'loss': losses, 'last_grads': grads, 'weights': [p.detach() for p in params]}


def checkpoint_resume(T, lib):
    """Train with Adam and a OneCycleLR schedule; after 4 steps save the model's, optimizer's and
    scheduler's state with `T.save`, load it with `T.load` into fresh objects and continue for
    6 steps. Returned: the uninterrupted run and the resumed one (which must agree bit for bit,
    see `test_checkpoint_resume_is_exact`)."""
    import os
    import tempfile

    x = lib.tensor(lib.rng.standard_normal((16, 4)))
    y = lib.tensor(lib.rng.integers(0, 3, 16), dtype='int64')

    def make():
        model = T.nn.Sequential(T.nn.Linear(4, 16), T.nn.Tanh(), T.nn.Linear(16, 3))
        opt = T.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
        sched = T.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=12)
        return model, opt, sched

    def train(model, opt, sched, steps, losses):
        for _ in range(steps):
            loss = T.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss)

    with tempfile.TemporaryDirectory() as tmp:
        model, opt, sched = make()
        lib.same_weights('model', model)
        T.save(model.state_dict(), os.path.join(tmp, 'init.pt'))
        whole = []
        train(model, opt, sched, 10, whole)
        # the same run from the same weights, interrupted after 4 steps
        model1, opt1, sched1 = make()
        model1.load_state_dict(T.load(os.path.join(tmp, 'init.pt')))
        resumed = []
        train(model1, opt1, sched1, 4, resumed)
        T.save({'model': model1.state_dict(), 'opt': opt1.state_dict(),
                'sched': sched1.state_dict()}, os.path.join(tmp, 'ckpt.pt'))
        model2, opt2, sched2 = make()                  # fresh objects, other initial weights
        ckpt = T.load(os.path.join(tmp, 'ckpt.pt'))
        model2.load_state_dict(ckpt['model'])
        opt2.load_state_dict(ckpt['opt'])
        sched2.load_state_dict(ckpt['sched'])
        train(model2, opt2, sched2, 6, resumed)
    return {'loss': whole, 'resumed_loss': resumed,
            'weights': [p.detach() for p in model.parameters()],
            'resumed_weights': [p.detach() for p in model2.parameters()],
            'lr': sched2.get_last_lr(), 'beta1': opt2.param_groups[0]['betas'][0]}


def transformer_classifier(T, lib):
    """A transformer encoder block classifier: token embeddings plus learned positions, two
    pre-norm `TransformerEncoderLayer`s (GELU, a padding mask) and a final `LayerNorm`, mean
    pooling over the real tokens, a linear head; trained with AdamW and gradient-norm clipping,
    then evaluated (PyTorch's eval path) on held-out sequences."""

    class Classifier(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = T.nn.Embedding(20, 16)
            self.pos = T.nn.Parameter(T.zeros(1, 7, 16, dtype=T.float32))  # cr's default: f64
            layer = T.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0,
                                                 activation='gelu', batch_first=True,
                                                 norm_first=True)
            self.encoder = T.nn.TransformerEncoder(layer, 2, norm=T.nn.LayerNorm(16),
                                                   enable_nested_tensor=False)
            self.head = T.nn.Linear(16, 3)

        def forward(self, tokens, pad):
            h = self.encoder(self.embed(tokens) + self.pos, src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).to(h.dtype)
            return self.head((h * keep).sum(1) / keep.sum(1))

    model = lib.same_weights('classifier', Classifier())
    opt = T.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    lengths = lib.rng.integers(3, 8, 10)
    tokens = lib.tensor(lib.rng.integers(0, 20, (10, 7)), dtype='int64')
    pad = lib.tensor(np.arange(7) >= lengths[:, None])
    y = lib.tensor(lib.rng.integers(0, 3, 10), dtype='int64')
    losses, norms = [], []
    for _ in range(4):
        loss = T.nn.functional.cross_entropy(model(tokens, pad), y)
        opt.zero_grad()
        loss.backward()
        norms.append(T.nn.utils.clip_grad_norm_(model.parameters(), 0.5))
        losses.append(loss)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        opt.step()
    model.eval()
    test_tokens = lib.tensor(lib.rng.integers(0, 20, (4, 7)), dtype='int64')
    with T.no_grad():
        test_logits = model(test_tokens, lib.tensor(np.zeros((4, 7), bool)))
    # the key part of in_proj_bias moves each query's scores by a constant, which softmax
    # ignores: its gradient is zero up to rounding, and Adam scales rounding noise to full
    # steps (in either library), so its values are left out of the comparison
    weights = {n: p.detach() for n, p in model.named_parameters()}
    for n in weights:
        if n.endswith('in_proj_bias'):
            weights[n] = T.cat([weights[n][:16], weights[n][32:]])
    return {'loss': losses, 'grad_norm': norms, 'last_grads': grads, 'weights': weights,
            'eval_logits': test_logits}


def lstm_language_model(T, lib):
    """A token-level language model: Embedding -> two-layer LSTM -> Linear over the vocabulary,
    next-token cross-entropy, the state carried (detached) from batch to batch as in truncated
    backpropagation through time; Adam steps, then SGD with momentum, gradients clipped with
    `nn.utils.clip_grad_norm_`; finally evaluation under `no_grad`."""
    vocab, emb, hidden, steps, batch = 11, 6, 8, 7, 4

    class LanguageModel(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = T.nn.Embedding(vocab, emb)
            self.rnn = T.nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
            self.head = T.nn.Linear(hidden, vocab)

        def forward(self, tokens, state=None):
            h, state = self.rnn(self.embed(tokens), state)
            return self.head(h), state

    model = lib.same_weights('lm', LanguageModel())
    adam = T.optim.Adam(model.parameters(), lr=1e-2)
    sgd = T.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses, norms, state = [], [], None
    for i in range(6):
        tokens = lib.tensor(lib.rng.integers(0, vocab, (batch, steps + 1)), dtype='int64')
        logits, state = model(tokens[:, :-1], state)
        state = tuple(s.detach() for s in state)
        loss = T.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                             tokens[:, 1:].reshape(-1))
        opt = adam if i < 4 else sgd
        opt.zero_grad()
        loss.backward()
        norms.append(T.nn.utils.clip_grad_norm_(model.parameters(), 0.5))
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        opt.step()
        losses.append(loss)
    model.eval()
    with T.no_grad():
        test = lib.tensor(lib.rng.integers(0, vocab, (2, steps)), dtype='int64')
        logits, (h, c) = model(test)
    return {'loss': losses, 'grad_norm': norms, 'last_grads': grads, 'state': state,
            'eval_logits': logits, 'eval_state': [h, c],
            'weights': {n: p.detach() for n, p in model.named_parameters()}}


def _same_dropout_masks(T, lib, model):
    """Dropout draws its masks from each library's own generator, so the two runs could never
    agree; this forward hook on every `Dropout` (in training) replaces its output by the input
    times a mask drawn from `lib.rng` (the same on both sides), scaled by 1/(1-p) as Dropout
    does. What Dropout's own masks look like is checked in test_nn."""
    def hook(module, args, out):
        if not module.training:
            return None
        (x,) = args
        keep = lib.rng.uniform(size=tuple(x.shape)) >= module.p
        return x * lib.tensor(keep / (1 - module.p))
    for m in model.modules():
        if isinstance(m, T.nn.Dropout):
            m.register_forward_hook(hook)


def cnn_batchnorm_dropout(T, lib):
    """A CNN with BatchNorm and Dropout trained with Adam and a StepLR schedule; then the
    running statistics normalise in evaluation and Dropout steps aside."""
    tnn = T.nn
    model = lib.same_weights('cnn', tnn.Sequential(
        tnn.Conv2d(1, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(8, 16, 3, padding=1, bias=False), tnn.BatchNorm2d(16, momentum=0.2),
        tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Dropout(0.25), tnn.Linear(64, 10)))
    # (no conv bias before a BatchNorm: its gradient is zero up to rounding, which Adam's
    # normalised steps would turn into differences of size lr)
    _same_dropout_masks(T, lib, model)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    sched = T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    losses, lrs = [], []
    for _ in range(5):
        x = lib.tensor(lib.rng.standard_normal((16, 1, 8, 8)))
        y = lib.tensor(lib.rng.integers(0, 10, 16), dtype='int64')
        model.train()
        loss = tnn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss)
        lrs.append(opt.param_groups[0]['lr'])
    grads = [p.grad.clone() for p in model.parameters()]
    model.eval()
    with T.no_grad():
        out = model(lib.tensor(lib.rng.standard_normal((4, 1, 8, 8))))
    return {'loss': losses, 'lr': lrs, 'last_grads': grads, 'eval_out': out,
            'state': dict(model.state_dict())}


PROGRAMS = [gradient_penalty, custom_function, checkpoint_resume, transformer_classifier,
            lstm_language_model, cnn_batchnorm_dropout]


@pytest.mark.parametrize('program', PROGRAMS, ids=lambda p: p.__name__)
def test_program_matches_pytorch(program):
    run_both(program)


def test_checkpoint_resume_is_exact():
    """Resuming from the checkpoint gives the uninterrupted run's losses and weights bit for bit
    on chainrule (and on PyTorch: the harness compares both with PyTorch's)."""
    ours, theirs = run_both(checkpoint_resume)
    for result, lib in ((ours, Lib(cr)), (theirs, Lib(torch))):
        for name in result:
            if name.startswith(('loss', 'weights')):
                np.testing.assert_array_equal(lib.numpy(result['resumed_' + name]),
                                              lib.numpy(result[name]), err_msg=name)


def test_harness_detects_a_difference():
    """The comparison is not vacuous: a program whose chainrule run differs must fail."""

    def differs(T, lib):
        w = lib.tensor([1.0, 2.0])
        return {'w': w * (1.0 if lib.is_torch else 1.01)}

    with pytest.raises(AssertionError):
        run_both(differs)
