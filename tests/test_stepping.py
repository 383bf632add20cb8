"""Stepping through backward (`backward(steps=True)`), drawing a step, drawing staged graphs,
and `memory_report`."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import Value
import source_lines


def test_value_steps_match_backward_and_the_chain_rule():
    a, b = Value(2.0), Value(-3.0)
    out = (a * b + a).tanh()
    steps = list(out.backward(steps=True))
    assert [s.op for s in steps][:3] == ['tanh', '+', '*']
    # tanh: upstream 1, local derivative 1 - tanh(-4)^2
    t = np.tanh(-4.0)
    assert steps[0].upstream == 1
    assert steps[0].local[0] == pytest.approx(1 - t * t)
    # '*' sends b to a and a to b, times its upstream gradient
    mul = steps[2]
    assert mul.contributions == pytest.approx([-3.0 * mul.upstream, 2.0 * mul.upstream])
    got = (a.grad, b.grad)
    a2, b2 = Value(2.0), Value(-3.0)
    (a2 * b2 + a2).tanh().backward()
    assert got == pytest.approx((a2.grad, b2.grad))
    assert a.grad == pytest.approx((1 - t * t) * (-3.0 + 1.0))      # analytic


def test_tensor_steps_match_backward():
    x = cr.tensor([1.0, -2.0, 0.5], requires_grad=True)
    w = cr.tensor([0.3, 0.2, -0.1], requires_grad=True)
    with cr.debug.record_sources():
        y = cnp.sum(cnp.exp(x * w))   # y-line
    steps = list(y.backward(steps=True))
    ops = [s.op for s in steps if s.op]
    assert ops == ['sum', 'exp', 'mul']
    want = np.exp(x.data * w.data)
    np.testing.assert_allclose(x.grad.numpy(), want * w.data)
    np.testing.assert_allclose(w.grad.numpy(), want * x.data)
    exp = steps[1]
    np.testing.assert_allclose(exp.local[0], want)          # d exp / dx = exp
    np.testing.assert_allclose(exp.contributions[0], exp.upstream * want)
    assert exp.where[1] == source_lines.line_of(__file__, 'y-line')
    # the graph was freed, as by backward()
    with pytest.raises(cr.GradientError, match='second time'):
        y.backward()


def test_draw_highlights_the_step():
    a, b = Value(2.0), Value(-3.0)
    out = a * b + a
    steps = list(out.backward(steps=True))
    g = cr.viz.draw(out, highlight=steps[1])
    filled = [line for line in g.source.splitlines() if 'fillcolor' in line]
    assert len(filled) == 2 and any('"*"' in line for line in filled)
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cnp.sum(x * x)
    steps = list(y.backward(steps=True, retain_graph=True))
    g = cr.viz.draw(y, highlight=steps[1])
    assert any('mul' in line and 'fillcolor' in line for line in g.source.splitlines())


def test_draw_staged_and_loaded_graphs(tmp_path):
    def f(x):
        return cnp.sum(cnp.sin(x) * x)
    x = np.ones(3)
    g = cr.viz.draw(cr.make_graph(f)(x))
    ops = [n[1] for n in g.nodes if n[2] == 'op']
    assert 'sin' in ops and 'mul' in ops and 'sum' in ops
    jf = cr.jit(f)
    with pytest.raises(TypeError, match='not been called'):
        cr.viz.draw(jf)
    jf(x)
    assert 'sin' in [n[1] for n in cr.viz.draw(jf).nodes]
    exported = cr.export(f, x)
    exported.save(tmp_path / 'f.json')
    loaded = cr.load_graph(tmp_path / 'f.json')
    assert 'sin' in [n[1] for n in cr.viz.draw(loaded).nodes]


def test_memory_report_totals_the_bytes_held():
    x = cr.tensor(np.ones(1000), requires_grad=True)
    w = cr.tensor(np.full(1000, 2.0), requires_grad=True)
    y = cnp.sum(x * w)
    rep = cr.memory_report(y)
    # mul saves x, w and its result (3 x 8000 bytes); sum saves that result again (shared, so
    # counted once) and its 8-byte output
    assert rep.total == 3 * 8000 + 8
    assert [r['op'] for r in rep.rows] == ['mul', 'sum']
    assert rep.rows[0]['bytes'] == 24000 and rep.rows[0]['shapes'][0] == (1000,)
    assert 'total' in str(rep)
    y.backward()
    assert cr.memory_report(y).total == 0          # freed by backward()


def test_memory_report_counts_a_view_with_its_buffer():
    x = cr.tensor(np.ones((10, 10)), requires_grad=True)
    y = cnp.sum(cnp.reshape(x, (100,)) * 2.0)
    rep = cr.memory_report(y)
    assert rep.total == 800 + 800 + 8     # x (and its reshaped view), the product, the sum
