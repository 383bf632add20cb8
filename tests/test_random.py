"""`chainrule.random`: the Threefry-2x32 primitive against Random123's known answers, the
samplers against SciPy's distributions, keys through every transform, and randomness at the
`jit` boundary (chainrule's generators fed fresh bits per call; NumPy's refused)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import lax
from chainrule import random as crr
from chainrule.core import ShapeError, DTypeError, list_primitives
from chainrule.random._threefry import hash_pairs, threefry2x32_p

# --- known answers ---------------------------------------------------------------------------------
# Random123's tests/kat_vectors (D. E. Shaw Research, Random123 1.09; also quoted in JAX's
# tests/random_test.py::testThreefry2x32): "threefry2x32 ROUNDS ctr0 ctr1 key0 key1 out0 out1".
KAT = '''
threefry2x32 13 00000000 00000000 00000000 00000000 9d1c5ec6 8bd50731
threefry2x32 13 ffffffff ffffffff ffffffff ffffffff fd36d048 2d17272c
threefry2x32 13 243f6a88 85a308d3 13198a2e 03707344 ba3e4725 f27d669e
threefry2x32 20 00000000 00000000 00000000 00000000 6b200159 99ba4efe
threefry2x32 20 ffffffff ffffffff ffffffff ffffffff 1cb996fc bb002be7
threefry2x32 20 243f6a88 85a308d3 13198a2e 03707344 c4923a9c 483df7a0
threefry2x32 32 00000000 00000000 00000000 00000000 cee3d47e a23dfd5c
threefry2x32 32 ffffffff ffffffff ffffffff ffffffff 6e2fe0d0 b1b76f82
threefry2x32 32 243f6a88 85a308d3 13198a2e 03707344 e2827716 c3c05cdf
'''
KAT_ROWS = [line.split()[1:] for line in KAT.strip().splitlines()]


@pytest.mark.parametrize('row', KAT_ROWS, ids=lambda r: f'{r[0]}-{r[1]}')
def test_threefry_known_answers(row):
    rounds, c0, c1, k0, k1, o0, o1 = int(row[0]), *(np.uint32(int(x, 16)) for x in row[1:])
    y0, y1 = hash_pairs(k0, k1, c0, c1, rounds)
    assert (int(y0), int(y1)) == (int(o0), int(o1))


def test_threefry_known_answers_vectorised_and_through_the_primitive():
    rows = [r for r in KAT_ROWS if r[0] == '20']
    c0, c1, k0, k1, o0, o1 = (np.array([int(r[i], 16) for r in rows], np.uint32)
                              for i in range(1, 7))
    y0, y1 = hash_pairs(k0, k1, c0, c1)           # three keys and counters at once
    np.testing.assert_array_equal(y0, o0)
    np.testing.assert_array_equal(y1, o1)
    # the primitive with a batch of keys: counters (0, start + i); the first row's counter is 0
    keys = np.stack([k0, k1], axis=-1)
    out = threefry2x32_p(keys, np.uint32(0), shape=(1,))
    assert out.shape == (3, 1, 2) and out.dtype == np.uint32
    assert (int(out[0, 0, 0]), int(out[0, 0, 1])) == (0x6b200159, 0x99ba4efe)
    # a counter carried into the high word: start 2^32 - 1, then (1, 0)
    w = threefry2x32_p(keys[1], np.uint32(0xFFFFFFFF), shape=(2,))
    np.testing.assert_array_equal(w[0], hash_pairs(keys[1, 0], keys[1, 1], 0, 0xFFFFFFFF))
    np.testing.assert_array_equal(w[1], hash_pairs(keys[1, 0], keys[1, 1], 1, 0))


def test_large_requests_are_hashed_in_chunks_with_the_same_result():
    from chainrule.random import _threefry
    n = 2 * _threefry._CHUNK + 123
    x1 = np.arange(n, dtype=np.uint32)
    whole = _threefry._hash(np.uint32(5), np.uint32(7), np.uint32(3), x1, 20)
    chunked = hash_pairs(np.uint32(5), np.uint32(7), np.uint32(3), x1)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    b = crr.bits(crr.key(1), (3, n // 3))
    np.testing.assert_array_equal(b[2, -3:], crr.bits(crr.key(1), (n // 3 * 3,))[-3:])


def test_keys_split_and_fold_in_follow_the_threefry_layout():
    np.testing.assert_array_equal(crr.key(0), [0, 0])
    np.testing.assert_array_equal(crr.key(2 ** 40 + 5), [256, 5])
    np.testing.assert_array_equal(crr.key(-1), [2 ** 32 - 1, 2 ** 32 - 1])
    assert crr.key(7).dtype == np.uint32 and crr.PRNGKey is crr.key
    # split(key(0))[0] is the hash of counter 0 under key 0: the first known answer
    np.testing.assert_array_equal(crr.split(crr.key(0), 3)[0], [0x6b200159, 0x99ba4efe])
    k = crr.key(123)
    ks = crr.split(k, (2, 3))
    assert ks.shape == (2, 3, 2)
    for i in range(6):
        np.testing.assert_array_equal(ks.reshape(6, 2)[i], crr.fold_in(k, i))
    # random_bits: element i from the two words of counter i
    w = crr.split(k, 4)
    np.testing.assert_array_equal(crr.bits(k, (4,)), w[:, 0] ^ w[:, 1])
    np.testing.assert_array_equal(crr.bits(k, (4,), np.uint64),
                                  w[:, 0].astype(np.uint64) * 2 ** 32 + w[:, 1])
    np.testing.assert_array_equal(crr.bits(k, (4,), np.uint8), (w[:, 0] ^ w[:, 1]) & 0xFF)


def test_uniform_takes_the_top_mantissa_bits():
    k = crr.key(5)
    b64 = crr.bits(k, (6,), np.uint64)
    np.testing.assert_array_equal(crr.uniform(k, (6,)), (b64 >> 12) * 2.0 ** -52)
    b32 = crr.bits(k, (6,))
    u32 = crr.uniform(k, (6,), np.float32)
    assert u32.dtype == np.float32
    np.testing.assert_array_equal(u32, ((b32 >> 9) * 2.0 ** -23).astype(np.float32))


def test_same_key_same_numbers_and_split_keys_differ():
    k = crr.key(1)
    np.testing.assert_array_equal(crr.normal(k, (5,)), crr.normal(k, (5,)))
    a, b = crr.split(k)
    assert not np.any(crr.normal(a, (5,)) == crr.normal(b, (5,)))


def test_jax_gives_the_same_keys_bits_and_uniforms():
    jax = pytest.importorskip('jax', reason='the cross-check against JAX needs jax installed')
    jax.config.update('jax_enable_x64', True)
    jr = jax.random
    if not jax.config.jax_threefry_partitionable:
        pytest.skip('JAX is not using its partitionable Threefry layout (the default since 0.5)')
    k = crr.key(42)
    jk = jr.key(42)
    np.testing.assert_array_equal(jr.key_data(jk), k)
    np.testing.assert_array_equal(jr.key_data(jr.split(jk, 4)), crr.split(k, 4))
    np.testing.assert_array_equal(jr.key_data(jr.fold_in(jk, 9)), crr.fold_in(k, 9))
    np.testing.assert_array_equal(jr.bits(jk, (7,), np.uint32), crr.bits(k, (7,)))
    np.testing.assert_array_equal(jr.bits(jk, (7,), np.uint64), crr.bits(k, (7,), np.uint64))
    for dt in (np.float32, np.float64):
        np.testing.assert_array_equal(jr.uniform(jk, (7,), dt), crr.uniform(k, (7,), dt))
        # with bounds, to within rounding: XLA may fuse u * (b - a) + a into one multiply-add
        np.testing.assert_allclose(jr.uniform(jk, (7,), dt, -2.0, 3.0),
                                   crr.uniform(k, (7,), dt, -2.0, 3.0),
                                   rtol=4 * np.finfo(dt).eps, atol=4 * np.finfo(dt).eps)


# --- distributions against SciPy ----------------------------------------------------------------
# Fixed keys make every test deterministic; the thresholds are loose (a p-value above 1e-4) so a
# correct sampler passes with any key, and a wrong one (a shifted or scaled distribution) fails.

N = 20000
P_MIN = 1e-4


def _stats():
    return pytest.importorskip('scipy.stats', reason='the statistical tests compare with SciPy '
                               '(pip install chainrule[test])')


@pytest.mark.parametrize('name', ['normal', 'normal32', 'uniform', 'uniform32', 'uniform_ab',
                                  'truncated_normal', 'truncated_tail', 'exponential', 'gumbel'])
def test_continuous_samples_pass_a_kolmogorov_smirnov_test(name):
    st = _stats()
    k = crr.key(2024)
    samples, ref = {
        'normal': lambda: (crr.normal(k, (N,)), st.norm.cdf),
        'normal32': lambda: (crr.normal(k, (N,), np.float32), st.norm.cdf),
        'uniform': lambda: (crr.uniform(k, (N,)), st.uniform.cdf),
        'uniform32': lambda: (crr.uniform(k, (N,), np.float32), st.uniform.cdf),
        'uniform_ab': lambda: (crr.uniform(k, (N,), minval=-2.0, maxval=3.0),
                               st.uniform(-2, 5).cdf),
        'truncated_normal': lambda: (crr.truncated_normal(k, -1.0, 2.0, (N,)),
                                     st.truncnorm(-1, 2).cdf),
        'truncated_tail': lambda: (crr.truncated_normal(k, 3.0, 5.0, (N,)),
                                   st.truncnorm(3, 5).cdf),
        'exponential': lambda: (crr.exponential(k, (N,)), st.expon.cdf),
        'gumbel': lambda: (crr.gumbel(k, (N,)), st.gumbel_r.cdf),
    }[name]()
    assert samples.shape == (N,)
    assert st.kstest(np.asarray(samples, np.float64), ref).pvalue > P_MIN


def test_truncated_normal_stays_inside_its_bounds_elementwise():
    lo = np.array([-3.0, 0.5, 2.0])
    hi = np.array([-2.0, 1.0, np.inf])
    x = crr.truncated_normal(crr.key(3), lo, hi, (4000, 3))
    assert np.all(x >= lo) and np.all(x <= hi)
    st = _stats()
    for j in range(3):
        assert st.kstest(x[:, j], st.truncnorm(lo[j], hi[j]).cdf).pvalue > P_MIN


def test_split_streams_are_uncorrelated():
    a, b = crr.split(crr.key(11))
    r = np.corrcoef(crr.normal(a, (N,)), crr.normal(b, (N,)))[0, 1]
    assert abs(r) < 5 / np.sqrt(N)
    # neighbouring elements of one stream too
    z = crr.normal(crr.key(12), (N,))
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(N)


def _chisquare(counts, probs):
    st = _stats()
    counts = np.asarray(counts, np.float64)
    return st.chisquare(counts, counts.sum() * np.asarray(probs) / np.sum(probs)).pvalue


def test_bernoulli_frequencies():
    p = np.array([0.1, 0.5, 0.9])
    x = crr.bernoulli(crr.key(4), p, (N, 3))
    assert x.dtype == np.bool_ and x.shape == (N, 3)
    for j in range(3):
        assert _chisquare([np.sum(~x[:, j]), np.sum(x[:, j])], [1 - p[j], p[j]]) > P_MIN
    assert crr.bernoulli(crr.key(4), 0.25, (7,)).shape == (7,)


def test_categorical_frequencies_on_any_axis():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    x = crr.categorical(crr.key(6), np.log(probs), shape=(N,))
    assert _chisquare(np.bincount(x, minlength=4), probs) > P_MIN
    # a batch of two distributions with the classes on axis 0
    logits = np.log(np.array([[0.7, 0.1], [0.3, 0.9]]))
    y = crr.categorical(crr.key(7), logits, axis=0, shape=(N, 2))
    assert y.shape == (N, 2)
    assert _chisquare(np.bincount(y[:, 0], minlength=2), [0.7, 0.3]) > P_MIN
    assert _chisquare(np.bincount(y[:, 1], minlength=2), [0.1, 0.9]) > P_MIN


def test_permutations_are_uniform_over_orderings():
    # 6000 permutations of 3 items, one per key (and vmap over the keys)
    ps = cr.vmap(lambda k: crr.permutation(k, 3))(crr.split(crr.key(8), 6000))
    codes = ps[:, 0] * 9 + ps[:, 1] * 3 + ps[:, 2]
    counts = [np.sum(codes == c) for c in np.unique(codes)]
    assert len(counts) == 6 and _chisquare(counts, np.ones(6)) > P_MIN
    assert np.all(np.sort(ps, axis=1) == np.arange(3))


def test_permutation_of_arrays_moves_whole_slices_or_each_entry():
    x = np.arange(12.0).reshape(3, 4)
    p = crr.permutation(crr.key(9), x, axis=1)
    np.testing.assert_array_equal(np.sort(p, axis=1), x)
    assert len({tuple(np.argsort(row)) for row in p}) == 1        # the same column order
    q = crr.permutation(crr.key(9), np.tile(np.arange(50), (4, 1)), axis=1, independent=True)
    np.testing.assert_array_equal(np.sort(q, axis=1), np.tile(np.arange(50), (4, 1)))
    assert len({tuple(row) for row in q}) == 4                     # each row its own order


def test_randint_and_choice_frequencies():
    x = crr.randint(crr.key(10), (N,), 3, 10)
    assert x.dtype == np.int64 and x.min() == 3 and x.max() == 9
    assert _chisquare(np.bincount(x - 3), np.ones(7)) > P_MIN
    p = np.array([0.5, 0.25, 0.125, 0.125])
    c = crr.choice(crr.key(11), 4, (N,), p=p)
    assert _chisquare(np.bincount(c, minlength=4), p) > P_MIN
    c = crr.choice(crr.key(12), np.array([10, 20, 30]), (N,))
    assert _chisquare([np.sum(c == v) for v in (10, 20, 30)], np.ones(3)) > P_MIN
    # without replacement: distinct entries; with p, the first pick is a categorical draw
    d = crr.choice(crr.key(13), 10, (10,), replace=False)
    np.testing.assert_array_equal(np.sort(d), np.arange(10))
    firsts = cr.vmap(lambda k: crr.choice(k, 4, (2,), replace=False, p=p)[0])(
        crr.split(crr.key(14), 8000))
    assert _chisquare(np.bincount(firsts, minlength=4), p) > P_MIN


# --- keys through the transforms ------------------------------------------------------------------

SAMPLERS = {
    'normal': lambda k: crr.normal(k, (3,)),
    'uniform': lambda k: crr.uniform(k, (2, 2), minval=-1.0, maxval=2.0),
    'truncated_normal': lambda k: crr.truncated_normal(k, -1.0, 1.0, (3,)),
    'bernoulli': lambda k: crr.bernoulli(k, 0.3, (4,)),
    'categorical': lambda k: crr.categorical(k, np.log(np.array([0.2, 0.3, 0.5])), shape=(5,)),
    'gumbel': lambda k: crr.gumbel(k, (3,)),
    'exponential': lambda k: crr.exponential(k, (3,), np.float32),
    'randint': lambda k: crr.randint(k, (4,), -5, 5),
    'permutation': lambda k: crr.permutation(k, np.arange(6.0)),
    'choice': lambda k: crr.choice(k, 5, (3,), replace=False),
    'bits': lambda k: crr.bits(k, (3,), np.uint64),
    'split': lambda k: crr.split(k, 3),
    'fold_in': lambda k: crr.fold_in(k, 17),
}


@pytest.mark.parametrize('name', sorted(SAMPLERS))
def test_samplers_under_jit_and_vmap_equal_eager(name):
    f = SAMPLERS[name]
    k = crr.key(31)
    eager = f(k)
    np.testing.assert_array_equal(cr.jit(f)(k), eager)
    ks = crr.split(k, 5)
    stacked = np.stack([f(x) for x in ks])
    np.testing.assert_array_equal(cr.vmap(f)(ks), stacked)
    np.testing.assert_array_equal(cr.jit(cr.vmap(f))(ks), stacked)
    np.testing.assert_array_equal(cr.vmap(cr.jit(f))(ks), stacked)


def test_vmap_of_a_batch_of_keys_is_a_batch_of_streams_nested_too():
    key = crr.key(0)
    out = cr.vmap(lambda k: crr.normal(k, (3,)))(crr.split(key, 5))
    np.testing.assert_array_equal(out, np.stack([crr.normal(k, (3,)) for k in crr.split(key, 5)]))
    grid = crr.split(key, (3, 4))
    nested = cr.vmap(cr.vmap(lambda k: crr.uniform(k, (2,))))(grid)
    assert nested.shape == (3, 4, 2)
    np.testing.assert_array_equal(nested[2, 1], crr.uniform(grid[2, 1], (2,)))
    # a batch of fold_in data (a traced counter) under a shared key, and both batched
    np.testing.assert_array_equal(cr.vmap(lambda d: crr.fold_in(key, d))(np.arange(4)),
                                  crr.split(key, 4))
    both = cr.vmap(crr.fold_in)(crr.split(key, 3), np.arange(3))
    np.testing.assert_array_equal(both[1], crr.fold_in(crr.split(key, 3)[1], 1))
    # key batched in an inner vmap, data in the outer one
    mixed = cr.vmap(lambda d: cr.vmap(lambda k: crr.fold_in(k, d))(crr.split(key, 2)))(
        np.arange(3))
    np.testing.assert_array_equal(mixed[2, 1], crr.fold_in(crr.split(key, 2)[1], 2))


def test_reparameterised_samples_differentiate_in_their_parameters():
    k = crr.key(21)
    z = crr.normal(k, (4,))

    def loss(mu, sigma):
        return cnp.sum((mu + sigma * crr.normal(k, (4,))) ** 2)

    gm, gs = cr.grad(loss, argnums=(0, 1))(0.5, 2.0)
    np.testing.assert_allclose(gm, np.sum(2 * (0.5 + 2.0 * z)))
    np.testing.assert_allclose(gs, np.sum(2 * (0.5 + 2.0 * z) * z))
    gj = cr.jit(cr.grad(loss, argnums=(0, 1)))(0.5, 2.0)
    np.testing.assert_allclose(gj, (gm, gs))
    gg = cr.grad(cr.jit(loss), argnums=(0, 1))(0.5, 2.0)
    np.testing.assert_allclose(gg, (gm, gs))
    # uniform(minval, maxval) = minval + u (maxval - minval)
    u = crr.uniform(k, (3,))
    ga, gb = cr.grad(lambda a, b: cnp.sum(crr.uniform(k, (3,), minval=a, maxval=b)),
                     argnums=(0, 1))(1.0, 4.0)
    np.testing.assert_allclose([ga, gb], [np.sum(1 - u), np.sum(u)])
    # per-example keys and parameters under vmap(grad)
    ks = crr.split(k, 3)
    g = cr.vmap(cr.grad(lambda mu, kk: cnp.sum(mu * crr.normal(kk, (2,)))))(np.ones(3), ks)
    np.testing.assert_allclose(g, [crr.normal(x, (2,)).sum() for x in ks])


def test_keys_through_scan_carry_and_fold_in_of_the_step():
    def body(carry, i):
        k, total = carry
        k, sub = crr.split(k)
        x = crr.uniform(crr.fold_in(sub, i), ())
        return (k, total + x), x

    def run(k):
        return lax.scan(body, (k, 0.0), np.arange(5))

    (kf, total), xs = run(crr.key(3))
    expect, k = [], crr.key(3)
    for i in range(5):
        k, sub = crr.split(k)
        expect.append(crr.uniform(crr.fold_in(sub, i), ()))
    np.testing.assert_array_equal(xs, expect)
    np.testing.assert_array_equal(kf, k)
    np.testing.assert_allclose(total, np.sum(expect))
    (kj, tj), xj = cr.jit(run)(crr.key(3))
    np.testing.assert_array_equal(xj, expect)


def test_key_seeds_can_be_traced():
    np.testing.assert_array_equal(cr.jit(crr.key)(np.int64(2 ** 40 + 5)), crr.key(2 ** 40 + 5))
    np.testing.assert_array_equal(cr.vmap(crr.key)(np.arange(3)),
                                  np.stack([crr.key(i) for i in range(3)]))


def test_export_round_trip_of_a_sampling_program(tmp_path):
    def sample(k, mu, sigma):
        k1, k2 = crr.split(k)
        return mu + sigma * crr.normal(k1, (3,)), crr.bernoulli(k2, 0.5, (3,))

    k = crr.key(99)
    args = (k, np.zeros(3), np.ones(3))
    exp = cr.export(sample, *args)
    path = tmp_path / 'sample.crg'
    exp.save(path)
    loaded = cr.load_graph(path)
    for kk in (k, crr.key(100)):
        got = loaded(kk, np.zeros(3), np.ones(3))
        want = sample(kk, np.zeros(3), np.ones(3))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    # the loaded program still differentiates and batches
    gm = cr.grad(lambda mu: cnp.sum(loaded(k, mu, np.ones(3))[0]))(np.zeros(3))
    np.testing.assert_allclose(gm, np.ones(3))
    ks = crr.split(k, 2)
    batched = cr.vmap(lambda kk: loaded(kk, np.zeros(3), np.ones(3))[0])(ks)
    np.testing.assert_array_equal(batched[1], sample(ks[1], np.zeros(3), np.ones(3))[0])


def test_the_primitive_is_registered_without_derivatives():
    row = list_primitives()['threefry2x32']
    assert row['batch'] and row['shape'] and not row['vjp']
    assert threefry2x32_p.vjp is None


# --- bad input ------------------------------------------------------------------------------------

def test_bad_keys_and_arguments_are_named():
    with pytest.raises(ShapeError, match=r'random\.normal: the key must be a uint32 array of '
                                         r'shape \(2,\).*int64'):
        crr.normal(np.array([0, 1]), (3,))
    with pytest.raises(ShapeError, match='batch of keys: map over it with cr.vmap'):
        crr.uniform(crr.split(crr.key(0), 3), (2,))
    with pytest.raises(ShapeError, match=r'minval of shape \(4,\) does not broadcast to the '
                                         r'sample shape \(3,\)'):
        crr.uniform(crr.key(0), (3,), minval=np.zeros(4))
    with pytest.raises(ValueError, match='maxval must exceed minval'):
        crr.randint(crr.key(0), (3,), 5, 5)
    with pytest.raises(ValueError, match='cannot take 6 samples from 5 without replacement'):
        crr.choice(crr.key(0), 5, (6,), replace=False)
    with pytest.raises(DTypeError, match='random.bits: dtype must be an unsigned'):
        crr.bits(crr.key(0), (2,), np.float32)
    with pytest.raises(DTypeError, match='random.normal: dtype must be a floating type'):
        crr.normal(crr.key(0), (2,), np.int32)
    with pytest.raises(ShapeError, match='fold_in: data must be a scalar'):
        crr.fold_in(crr.key(0), np.arange(2))
    with pytest.raises(DTypeError, match='seed must be an integer'):
        crr.key(1.5)


# --- the jit boundary: chainrule's generators draw fresh bits per call ---------------------------

def _train_step_with_dropout():
    model = cr.nn.Sequential(cr.nn.Linear(4, 64), cr.nn.ReLU(), cr.nn.Dropout(0.5))
    model.train()

    @cr.jit
    def step(x):
        return model(cr.Tensor(x))

    return model, step


def test_jitted_dropout_draws_a_new_mask_each_call_and_reseeding_repeats_them():
    cr.manual_seed(0)
    model, step = _train_step_with_dropout()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    with cr.no_grad():
        ref = cr.nn.functional.relu(model[0](cr.Tensor(x))).numpy()
    live = ref > 0
    cr.manual_seed(123)
    outs = [step(x).detach().numpy() for _ in range(3)]
    assert step.cache_info().misses == 1                 # one trace, three masks
    kept = [(o != 0) & live for o in outs]
    assert not np.array_equal(kept[0], kept[1]) and not np.array_equal(kept[1], kept[2])
    for m, o in zip(kept, outs):
        assert 0.4 < m.sum() / live.sum() < 0.6          # about half the units are dropped
        np.testing.assert_allclose(o[m], 2 * ref[m], rtol=1e-6)   # the rest scaled by 1/(1-p)
    cr.manual_seed(123)
    for o in outs:
        np.testing.assert_array_equal(step(x).detach().numpy(), o)
    # the training step's gradient flows through the mask to the parameters
    loss = step(x).sum()
    loss.backward()
    assert np.any(model[0].weight.grad != 0)
    model.eval()                                         # no dropout, no randomness
    with cr.no_grad():
        np.testing.assert_array_equal(cr.jit(lambda x: model(cr.Tensor(x)).data)(x), ref)


def test_jitted_factories_and_local_generators_are_fresh_per_call():
    f = cr.jit(lambda x: x + cr.randn(5).data)
    a, b = f(np.zeros(5)), f(np.zeros(5))
    assert not np.any(a == b)
    g = cr.Generator().manual_seed(7)
    h = cr.jit(lambda x: x + cr.rand(5, generator=g).data + cr.randint(0, 10, (5,),
                                                                        generator=g).data)
    first = [h(np.zeros(5)) for _ in range(2)]
    assert not np.array_equal(first[0], first[1])
    g.manual_seed(7)                                     # reseeding the local generator
    np.testing.assert_array_equal(h(np.zeros(5)), first[0])
    perm = cr.jit(lambda x: x[cr.randperm(6).data])
    p = perm(np.arange(6.0))
    np.testing.assert_array_equal(np.sort(p), np.arange(6.0))
    # a NumPy Generator handed to dropout as rng= is drawn from at each call (its state moves)
    rng = np.random.default_rng(0)
    d = cr.jit(lambda x: cr.nn.functional.dropout(x, 0.5, True, rng=rng))
    before = rng.bit_generator.state['state']['state']
    m1, m2 = d(np.ones(50)), d(np.ones(50))
    assert not np.array_equal(m1, m2)
    assert rng.bit_generator.state['state']['state'] != before


def test_jitted_randomness_composes_with_grad_and_nested_jit():
    cr.manual_seed(5)

    def f(w, x):
        return cnp.sum(cr.nn.functional.dropout(x * w, 0.5, True))

    x = np.arange(1.0, 21.0)
    g = cr.jit(cr.grad(f))
    g1, g2 = g(1.0, x), g(1.0, x)
    assert g1 != g2                                      # d/dw sums a different subset
    assert float(g1 / 2).is_integer() and 0 < g1 < 2 * x.sum()   # 2 * a sum of kept x
    cr.manual_seed(5)
    np.testing.assert_array_equal([g(1.0, x), g(1.0, x)], [g1, g2])
    # grad through a jitted function: the program is called with fresh keys
    gj = cr.grad(cr.jit(f))
    assert gj(1.0, x) != gj(1.0, x)
    inner = cr.jit(lambda x: x + cr.randn(3).data)
    outer = cr.jit(lambda x: inner(x) - inner(x))        # two draws, different numbers
    assert np.all(outer(np.zeros(3)) != 0)
    assert not np.array_equal(outer(np.zeros(3)), outer(np.zeros(3)))


def test_jitted_attention_dropout_is_fresh_per_call():
    q = np.random.default_rng(0).normal(size=(2, 4, 8))
    f = cr.jit(lambda q: cr.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.5))
    cr.manual_seed(1)
    a, b = f(q), f(q)
    assert not np.array_equal(a, b) and f.cache_info().misses == 1
    cr.manual_seed(1)
    np.testing.assert_array_equal(f(q), a)


def test_export_of_a_program_using_the_global_generator_is_refused():
    with pytest.raises(cr.ChainruleError, match='take a key argument and draw with '
                                                'chainrule.random'):
        cr.export(lambda x: x + cr.randn(3).data, np.zeros(3))


# --- NumPy's generators cannot be staged ----------------------------------------------------------

_GLOBAL_RNG = np.random.default_rng(1)


def _uses_global_name(x):
    return x + _GLOBAL_RNG.normal(size=3)


class _Noisy:
    def __init__(self):
        self.rs = np.random.RandomState(0)

    def step(self, x):
        return x + self.rs.rand(3)


@pytest.mark.parametrize('case', ['np.random', 'closure', 'global', 'method', 'make_graph'])
def test_numpy_randomness_while_tracing_raises_naming_the_function(case):
    rng = np.random.default_rng(0)

    def noisy_closure(x):
        return x + rng.normal(size=3)

    def noisy_global_state(x):
        return x + np.random.normal(size=3)

    fn, where = {
        'np.random': (cr.jit(noisy_global_state), "NumPy's global generator"),
        'closure': (cr.jit(noisy_closure), "generator 'rng'"),
        'global': (cr.jit(_uses_global_name), "generator '_GLOBAL_RNG'"),
        'method': (cr.jit(_Noisy().step), "generator 'step.rs'"),
        'make_graph': (cr.make_graph(noisy_closure), "generator 'rng'"),
    }[case]
    with pytest.raises(crr.FrozenRandomnessError) as e:
        fn(np.zeros(3))
    msg = str(e.value)
    assert where in msg and 'chainrule.random' in msg and 'cr.randn' in msg
    assert case == 'make_graph' or 'jit(' in msg


def test_numpy_generators_not_consumed_while_tracing_are_fine():
    rng = np.random.default_rng(0)
    # a generator seeded inside the function gives the same numbers at every call, traced or
    # not; a generator only used outside the function is not consumed by the trace
    f = cr.jit(lambda x: x + np.random.default_rng(1).normal(size=3) + 0 * len(str(rng)))
    np.testing.assert_array_equal(f(np.zeros(3)), np.random.default_rng(1).normal(size=3))


def test_module_docstring_examples_run():
    import doctest
    res = doctest.testmod(crr, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0


def test_eager_draws_inside_a_loop_body_are_refused():
    """A loop body is staged once and run at every iteration: an eager draw there would repeat
    the same numbers in every iteration, so it is refused; a carried key works."""
    from chainrule import lax
    from chainrule.random import FrozenRandomnessError
    import chainrule.nn.functional as F

    def noisy(c, _):
        return c + cr.randn(3), c

    with pytest.raises(FrozenRandomnessError, match='lax.scan'):
        lax.scan(noisy, np.zeros(3), None, length=4)
    with pytest.raises(FrozenRandomnessError, match='lax.scan'):
        lax.fori_loop(0, 3, lambda i, c: F.dropout(c, 0.5), np.ones(4))
    with pytest.raises(FrozenRandomnessError, match='lax.while_loop'):
        lax.while_loop(lambda c: c[0] < 3, lambda c: c + cr.rand(2), np.zeros(2))
    with pytest.raises(FrozenRandomnessError, match='lax.scan'):
        cr.jit(lambda c: lax.scan(noisy, c, None, length=2)[0])(np.zeros(3))

    def keyed(carry, _):
        c, k = carry
        k, sub = crr.split(k)
        return (c + crr.normal(sub, (3,)), k), c

    (_, _), hist = lax.scan(keyed, (np.zeros(3), crr.key(0)), None, length=4)
    steps = np.diff(np.asarray(hist), axis=0)
    assert not np.allclose(steps[0], steps[1])     # a new draw at every iteration
