"""The numba backend's whole-program mode (`chainrule.jit.numba_program`).

A jitted program on small float arrays is compiled as one numba function: matrix products
through BLAS, elementwise runs as fused loops, sums, maxima and log-softmax as loops. Checked
here: values against eager chainrule, PyTorch (where installed) and the same program jitted
without the graph passes on the NumPy backend (`optimize=False`, the unoptimised program), in
float32 and float64, on odd shapes and non-contiguous inputs; the mode is really taken (the
source holds `_program`) or, for what it cannot write, falls back; the BLAS call for every
operand layout; and that results are the caller's (no aliasing across calls, with arguments,
or between results).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
import chainrule.numpy as cnp

numba = pytest.importorskip('numba', reason='the whole-program mode is the numba backend\'s '
                                            '(pip install numba)')


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _mlp_loss(hand):
    def loss(params, x, y1h):
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = cnp.maximum(h, 0.0)
        if hand:
            m = cnp.max(h, axis=1, keepdims=True)
            logp = h - m - cnp.log(cnp.sum(cnp.exp(h - m), axis=1, keepdims=True))
        else:
            logp = h - cnp.logsumexp(h, axis=1, keepdims=True)
        return -cnp.sum(logp * y1h) / x.shape[0]
    return loss


def _sgd_step(hand, lr=0.05):
    loss_fn = _mlp_loss(hand)

    def step(params, x, y1h):
        loss, grads = cr.value_and_grad(loss_fn)(params, x, y1h)
        return [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(params, grads)], loss
    return step


def _mlp_problem(sizes, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((m, n)).astype(dtype) / np.sqrt(m).astype(dtype),
               rng.standard_normal(n).astype(dtype) * dtype(0.1))
              for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y1h = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
    return params, x, y1h


def _torch_step(params, x, y1h, lr=0.05):
    torch = pytest.importorskip('torch', reason='PyTorch cross-check (pip install torch)')
    tp = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
          for w, b in params]
    h = torch.tensor(x)
    for i, (w, b) in enumerate(tp):
        h = h @ w + b
        if i < len(tp) - 1:
            h = torch.relu(h)
    loss = torch.nn.functional.cross_entropy(h, torch.tensor(y1h.argmax(1)))
    loss.backward()
    with torch.no_grad():
        return [((w - lr * w.grad).numpy(), (b - lr * b.grad).numpy()) for w, b in tp], \
            float(loss)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('hand', [False, True], ids=['logsumexp', 'by-hand'])
def test_mlp_step_is_one_program_equal_to_eager_and_torch(dtype, hand):
    params, x, y1h = _mlp_problem([13, 17, 9, 5], 7, dtype)
    step = _sgd_step(hand)
    j = cr.jit(step, backend='numba')
    src = j.source(params, x, y1h)
    assert 'def _program(' in src
    # each weight's SGD update is folded into its gradient's product (alpha = -lr, beta = 1)
    assert src.count('_gemm_update_') == 3
    got, got_loss = j(params, x, y1h)
    want, want_loss = step(params, x, y1h)
    ref, ref_loss = _torch_step(params, x, y1h)
    tol = _tol(dtype)
    np.testing.assert_allclose(got_loss, want_loss, **tol)
    np.testing.assert_allclose(got_loss, ref_loss, rtol=1e-4 if dtype == np.float32 else 1e-9)
    assert np.asarray(got_loss).dtype == dtype and np.ndim(got_loss) == 0
    for (gw, gb), (ww, wb), (rw, rb) in zip(got, want, ref):
        assert gw.dtype == dtype and gw.flags.c_contiguous and gw.flags.writeable
        np.testing.assert_allclose(gw, ww, **tol)
        np.testing.assert_allclose(gb, wb, **tol)
        np.testing.assert_allclose(gw, rw, rtol=1e-4 if dtype == np.float32 else 1e-9,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(gb, rb, rtol=1e-4 if dtype == np.float32 else 1e-9,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)


# the step's shapes where the product `g2 @ W2.T` is computed transposed (64 rows, an inner
# dimension of 128, twice as many columns): the transposed product's tiled read
def test_transposed_product_read_by_a_fused_loop():
    params, x, y1h = _mlp_problem([16, 160, 140, 3], 40, np.float32, seed=2)
    step = _sgd_step(False)
    j = cr.jit(step, backend='numba')
    src = j.source(params, x, y1h)
    assert 'def _program(' in src and '_tiled_c_copy(' in src and '.T).T' in src
    got, got_loss = j(params, x, y1h)
    want, want_loss = cr.jit(step, optimize=False)(params, x, y1h)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[0], w[0], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(g[1], w[1], rtol=2e-4, atol=2e-5)


# --- random programs against the unoptimised program --------------------------------------------

_ACTS = [lambda h: cnp.maximum(h, 0.0), cnp.tanh, lambda h: cnp.exp(-h * h) * h,
         lambda h: cnp.where(h > 0.5, h, h * 0.1)]


def _loss_of(kind, h, t):
    if kind == 0:
        return -cnp.sum((h - cnp.logsumexp(h, axis=1, keepdims=True)) * t)
    if kind == 1:
        m = cnp.max(h, axis=1, keepdims=True)
        return -cnp.sum((h - m - cnp.log(cnp.sum(cnp.exp(h - m), axis=1, keepdims=True))) * t)
    if kind == 2:
        return cnp.sum((h - t) ** 2) / h.shape[0]
    return cnp.sum(cnp.max(h, axis=0) * cnp.sum(t, axis=0)) + cnp.sum(h.T @ t)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=4), st.integers(1, 9),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 3), st.integers(0, 3),
       st.booleans(), st.sampled_from(['C', 'F', 'strided']))
def test_random_networks_equal_the_unoptimised_program(sizes, batch, dtype, act, loss_kind,
                                                       bias, layout):
    rng = np.random.default_rng(len(sizes) * 100 + batch)
    ws = [rng.standard_normal((m, n)).astype(dtype) for m, n in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(n).astype(dtype) for n in sizes[1:]]
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    t = rng.uniform(0, 1, (batch, sizes[-1])).astype(dtype)
    if layout == 'F':
        x = np.asfortranarray(x)
    elif layout == 'strided':
        x = np.repeat(x, 2, axis=1)[:, ::2]
        assert not x.flags.c_contiguous

    def loss(ws, bs, x, t):
        h = x
        for i, w in enumerate(ws):
            h = h @ w + bs[i] if bias else h @ w
            if i < len(ws) - 1:
                h = _ACTS[act](h)
        return _loss_of(loss_kind, h, t)

    f = cr.value_and_grad(loss, argnums=(0, 1))
    j = cr.jit(f, backend='numba')
    # (logsumexp over one column stays a composite with `isfinite`, which the mode lacks)
    if sizes[-1] > 1 or loss_kind != 0:
        assert 'def _program(' in j.source(ws, bs, x, t)
    (val, (gw, gb)) = j(ws, bs, x, t)
    (val0, (gw0, gb0)) = cr.jit(f, optimize=False)(ws, bs, x, t)
    tol = _tol(dtype)
    np.testing.assert_allclose(val, val0, **tol)
    for a, b in zip(gw + gb, gw0 + gb0):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


# --- BLAS through NumPy's OpenBLAS --------------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('m,k,n', [(1, 1, 1), (3, 5, 7), (64, 256, 10), (8, 1, 3), (1, 9, 1)])
def test_gemm_helper_every_operand_layout(dtype, m, k, n):
    from chainrule.jit import numba_program
    gemm = numba_program._helpers()['_gemm_s' if dtype == np.float32 else '_gemm_d']
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a0, b0 = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    want = a0.astype(np.float64) @ b0.astype(np.float64)
    layouts = {'C': lambda z: z, 'F': np.asfortranarray,
               'T': lambda z: np.ascontiguousarray(z.T).T,
               'strided': lambda z: np.repeat(np.repeat(z, 2, 0), 3, 1)[::2, ::3]}
    for la, fa in layouts.items():
        for lb, fb in layouts.items():
            a, b = fa(a0), fb(b0)
            np.testing.assert_array_equal(a, a0)
            got = gemm(a, b)
            assert got.dtype == dtype and got.shape == (m, n) and got.flags.c_contiguous
            np.testing.assert_allclose(got, want, **_tol(dtype), err_msg=f'{la} @ {lb}')
    # the SGD update folded into the product: w + alpha a @ b on a copy of w
    update = numba_program._helpers()['_gemm_update_s' if dtype == np.float32 else
                                      '_gemm_update_d']
    w = rng.standard_normal((n, m)).astype(dtype).T       # an F-ordered w: the copy is C
    w0 = w.copy()
    got = update(layouts['T'](a0), layouts['strided'](b0), w, -0.25)
    np.testing.assert_array_equal(w, w0)
    assert got.flags.c_contiguous and not np.shares_memory(got, w)
    np.testing.assert_allclose(got, w0 - 0.25 * want, **_tol(dtype))


# --- results are the caller's -------------------------------------------------------------------

def test_results_are_not_aliased_across_calls_arguments_or_each_other():
    w = np.arange(12.0).reshape(3, 4) / 10

    def f(x, y):
        p = x @ w
        return p, p, x, x.T, cnp.tanh(p) * y, cnp.sum(p)

    x = np.linspace(-1, 1, 6).reshape(2, 3)
    y = np.ones((2, 4))
    j = cr.jit(f, backend='numba')
    assert 'def _program(' in j.source(x, y)
    first = j(x, y)
    want = cr.jit(f)(x, y)
    keep = [np.array(a, copy=True) for a in first]
    for a, b in zip(first, want):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a in first[:-1]:
        assert isinstance(a, np.ndarray) and a.flags.writeable
        assert not np.shares_memory(a, x) and not np.shares_memory(a, y)
    arrays = first[:-1]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])
    assert isinstance(first[-1], np.float64)
    for a in arrays:
        a[...] = 7.0        # the caller writes into every result ...
    second = j(x, y)
    for a, b in zip(second, keep):      # ... and the next call does not see it
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a in arrays:        # nor does the next call write into what the caller keeps
        assert np.all(a == 7.0)
    np.testing.assert_array_equal(x, np.linspace(-1, 1, 6).reshape(2, 3))


def test_read_only_inputs_and_captured_arrays_read_on_each_call():
    w = np.eye(3) * 2.0
    f = lambda x: cnp.sum(cnp.tanh(x @ w) * 3.0 + 1.0, axis=1)
    x = np.linspace(0, 1, 6).reshape(2, 3)
    x.flags.writeable = False
    j = cr.jit(f, backend='numba')
    np.testing.assert_allclose(j(x), cr.jit(f)(x), rtol=1e-12)
    w[...] = np.ones((3, 3))    # a captured NumPy array, changed in place: NumPy's code sees it
    np.testing.assert_allclose(j(x), cr.jit(f)(x), rtol=1e-12)
    np.testing.assert_allclose(j(x), np.tanh(x @ np.ones((3, 3))).sum(1) * 3.0 + 3.0,
                               rtol=1e-12)


# --- what the mode does not write falls back -----------------------------------------------------

@pytest.mark.parametrize('f,args', [
    (lambda x: cnp.cumsum(x, axis=0) * 2.0, (np.ones((3, 2)),)),                 # no loop for it
    (lambda x, i: x[i] * 2.0 + 1.0, (np.ones((4, 2)), np.array([0, 2]))),        # an int input
    (lambda x: cnp.sum(x, axis=(0, 2)) * 2.0, (np.ones((2, 3, 4)),)),            # two axes of 3
    (lambda x: x * 2.0 + 1.0, (np.ones(300_000),)),                             # a large array
])
def test_unsupported_programs_fall_back_to_the_kernels(f, args):
    j = cr.jit(f, backend='numba')
    assert 'def _program(' not in j.source(*args)
    np.testing.assert_allclose(j(*args), cr.jit(f)(*args), rtol=1e-12)
