"""`cr.explain_grad` / `cr.explain`: each reason a gradient is None or zero, on a small program,
with the user's line."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
import source_lines
import chainrule.nn.functional as F


def line_of(marker):
    return source_lines.line_of(__file__, marker)


def only(rep, kind):
    found = [r for r in rep.reasons if r['kind'] == kind]
    assert len(found) == 1, rep.reasons
    return found[0]


def at_line(reason, marker):
    assert reason['where'] is not None and reason['where'][0] == __file__, reason
    assert reason['where'][1] == line_of(marker), reason


def test_relu_masks_count_and_first_element():
    def f(x):
        return cnp.sum(F.relu(x * 2.0))   # relu-line
    x = np.array([1.0, -1.0, -3.0, 2.0])
    e = cr.explain(f)(x)
    rep = e['x']
    want = cr.grad(f)(x)                                  # [2, 0, 0, 2]
    assert rep.status == 'partly zero' and rep.zeros == int((want == 0).sum()) == 2
    np.testing.assert_array_equal(rep.gradient, want)
    r = only(rep, 'masked')
    assert (r['op'], r['count'], r['total'], r['first']) == ('relu', 2, 4, (1,))
    at_line(r, 'relu-line')
    assert 'relu masks 2 of 4 element(s) (first at index (1,))' in str(e)


def test_maximum_where_clip_mask():
    def f(x):
        a = cnp.maximum(x, 0.5)   # max-line
        return cnp.sum(cnp.where(x < 2.5, a, 0.0))   # where-line
    e = cr.explain(f)(np.array([0.0, 1.0, 3.0]))
    kinds = {(r['op'], r['count'], r['first']) for r in e['x'].reasons}
    assert ('maximum', 1, (0,)) in kinds and ('where', 1, (2,)) in kinds
    assert e['x'].status == 'partly zero' and e['x'].zeros == 2
    e = cr.explain(lambda x: cnp.sum(cnp.clip(x, -1.0, 1.0)))(np.array([-2.0, 0.0, 5.0]))
    assert e['x'].zeros == 2 and sum(r['count'] for r in e['x'].reasons) == 2


def test_piecewise_constant_op():
    def f(x, w):
        return cnp.sum(cnp.floor(w) * x)   # floor-line
    e = cr.explain(f, argnums=(0, 1))(np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    assert e['x'].status == 'ok' and e['w'].status == 'none'
    r = only(e['w'], 'piecewise_constant')
    assert r['op'] == 'floor'
    at_line(r, 'floor-line')
    assert 'floor, which is piecewise constant' in str(e)


def test_comparison_and_sign_are_piecewise_constant():
    e = cr.explain(lambda x: cnp.sum((x > 0) * 1.0 + cnp.sign(x)))(np.array([1.0, -1.0]))
    assert {r['op'] for r in e['x'].reasons} == {None, 'greater', 'sign'}
    assert e['x'].kinds()[0] == 'not_connected'


def test_stop_gradient():
    def f(x):
        return cnp.sum(cnp.stop_gradient(x) ** 2)   # sg-line
    e = cr.explain(f)(np.array([1.0, 2.0]))
    r = only(e['x'], 'stop_gradient')
    at_line(r, 'sg-line')


def test_integer_dtype_on_the_way():
    def f(x):
        return cnp.sum(x.astype(np.int64) * 1.0)   # int-line
    e = cr.explain(f)(np.array([1.5, 2.5]))
    r = only(e['x'], 'integer')
    at_line(r, 'int-line')


def test_not_on_any_path():
    e = cr.explain(lambda x, y: cnp.sum(x * 2.0), argnums=(0, 1))(np.ones(2), np.ones(2))
    assert e['x'].status == 'ok'
    assert e['y'].status == 'none' and e['y'].kinds() == ['not_connected']
    assert 'does not use it' in str(e)


def test_tensor_detach_and_no_grad_with_lines():
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    w = cr.tensor([3.0], requires_grad=True)
    c = cr.tensor([1.0])
    with cr.debug.record_sources():
        d = w.detach()   # detach-line
        with cr.no_grad():
            e = x * 3   # nograd-line
        y = (d * e).sum() + (x * x).sum()
    ex = cr.explain_grad(y, [x, w, c])
    assert ex[0].status == 'ok'
    at_line(only(ex[0], 'no_grad'), 'nograd-line') if ex[0].reasons else None
    assert ex[1].status == 'none'
    at_line(only(ex[1], 'detach'), 'detach-line')
    assert ex[2].kinds() == ['no_requires_grad']
    # with the cut on the only path, the no_grad reason is the one reported
    with cr.debug.record_sources():
        with cr.no_grad():
            z = x * 3   # nograd2-line
        y2 = (z * 2.0).sum()
    r = only(cr.explain_grad(y2, x)[0], 'no_grad')
    at_line(r, 'nograd2-line')


def test_overwritten_in_place():
    x = cr.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with cr.debug.record_sources():
        y = x * 2
        y[0] = 0.0   # inplace-line
        loss = y.sum()
    ex = cr.explain_grad(loss, x)
    rep = ex[0]
    assert rep.status == 'partly zero' and rep.zeros == 1
    r = only(rep, 'overwritten')
    assert (r['count'], r['first']) == (1, (0,))
    at_line(r, 'inplace-line')
    loss.backward()                           # and the graph is still usable
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0])


def test_without_recording_the_report_says_how_to_get_lines():
    x = cr.tensor([1.0], requires_grad=True)
    y = (x.detach() * 2).sum()
    y2 = (x * 2).sum()
    assert 'record_sources' in str(cr.explain_grad(y + 0 * y2.detach(), x))


def test_a_freed_graph_is_a_clear_error():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(cr.GradientError, match='freed by backward'):
        cr.explain_grad(y, x)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert cr.explain_grad(y, x)[0].status == 'ok'
