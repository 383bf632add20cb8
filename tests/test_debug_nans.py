"""`cr.debug_nans()`: the first non-finite value raises, naming the op, the pass, the user's line
and a hint -- eagerly, on Tensors, under every transform and in jitted code."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
import source_lines
from chainrule import core
from chainrule.interpreters import reverse
from chainrule.tensor import EagerTrace


def line_of(marker):
    return source_lines.line_of(__file__, marker)


def caught(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        with cr.debug_nans():
            with pytest.raises(FloatingPointError) as info:
                fn(*args)
    return info.value


def assert_report(err, prim, phase, marker, hint):
    msg = str(err)
    assert err.primitive == prim and err.phase == phase, msg
    assert err.where is not None and err.where[0] == __file__, msg
    assert err.where[1] == line_of(marker), msg
    assert f'{__file__}:{line_of(marker)}' in msg
    assert hint in msg, msg


# --- the known offenders, each on a small program -------------------------------------------------

def sqrt_loss(x):
    return cnp.sum(cnp.sqrt(x))   # sqrt-line


def norm_loss(x):
    return cnp.sqrt(cnp.sum(x * x))   # norm-line


def pow_loss(x):
    return cnp.sum(cnp.abs(x) ** 0.5)   # pow-line


def log_loss(x):
    return cnp.sum(cnp.log(x))   # log-line


def div_loss(x, d):
    return cnp.sum(cnp.divide(x, d))   # div-line


def mul_inf(x):
    return cnp.multiply(x, np.inf)   # mul-line


def exp_overflow(x):
    return cnp.sum(cnp.exp(x))   # exp-line


def cosh_overflow(x):
    return cnp.sum(cnp.cosh(x))   # cosh-line


def where_sqrt(x):
    return cnp.sum(cnp.where(x > 0, cnp.sqrt(x), 0.0))   # where-line


def where_log(x):
    return cnp.sum(cnp.where(x > 0, cnp.log(x), 0.0))   # where-log-line


def test_sqrt_at_zero_backward():
    err = caught(cr.grad(sqrt_loss), np.array([0.0, 1.0]))
    assert_report(err, 'sqrt', 'backward', 'sqrt-line', 'infinite derivative at 0')
    assert 'exact zero' in str(err)            # the input's range shows the zero


def test_hand_written_norm_of_a_zero_vector():
    err = caught(cr.grad(norm_loss), np.zeros(3))
    assert_report(err, 'sqrt', 'backward', 'norm-line', '`norm` of a zero vector')
    # the library's norm is safe at 0 (zero gradient, PyTorch's choice): nothing to report
    with cr.debug_nans():
        np.testing.assert_array_equal(cr.grad(cnp.linalg.norm)(np.zeros(3)), np.zeros(3))


def test_abs_pow_at_zero_backward():
    err = caught(cr.grad(pow_loss), np.array([0.0, 2.0]))
    assert_report(err, 'pow', 'backward', 'pow-line', '`x ** p` at x = 0')


def test_log_of_zero_forward():
    err = caught(log_loss, np.array([0.0, 2.0]))
    assert_report(err, 'log', 'forward', 'log-line', 'log(0) is -inf')


def test_divide_by_zero_forward():
    err = caught(div_loss, np.ones(2), np.array([1.0, 0.0]))
    assert_report(err, 'div', 'forward', 'div-line', 'x / 0 is inf')
    assert 'first at index (1,)' in str(err)


def test_zero_times_inf():
    err = caught(mul_inf, np.array([0.0, 1.0]))
    assert_report(err, 'mul', 'forward', 'mul-line', '0 * inf is NaN')
    assert 'NaN' in str(err).splitlines()[0]


def test_exp_and_cosh_overflow():
    err = caught(exp_overflow, np.array([1.0, 800.0]))
    assert_report(err, 'exp', 'forward', 'exp-line', 'exp overflows')
    err = caught(cosh_overflow, np.array([1.0, 800.0]))
    assert_report(err, 'cosh', 'forward', 'cosh-line', 'cosh overflows')


def test_where_with_nan_in_the_unused_branch():
    # forward: the discarded branch is NaN (log of a negative number)
    err = caught(cr.grad(where_log), np.array([-1.0, 2.0]))
    assert_report(err, 'log', 'forward', 'where-log-line', 'double-where')
    # backward: sqrt's infinite slope at 0 meets the zero gradient where() sends it
    err = caught(cr.grad(where_sqrt), np.array([0.0, 2.0]))
    assert_report(err, 'sqrt', 'backward', 'where-line', 'double-where')
    assert 'incoming gradient is 0 at every bad element' in str(err)
    # and the fix the hint spells out works
    def fixed(x):
        ok = x > 0
        safe = cnp.where(ok, x, 1.0)
        return cnp.sum(cnp.where(ok, cnp.sqrt(safe), 0.0))
    with cr.debug_nans():
        np.testing.assert_allclose(cr.grad(fixed)(np.array([0.0, 4.0])), [0.0, 0.25])


# --- everywhere: Tensors, transforms, jit -----------------------------------------------------------

def test_tensor_forward_and_backward():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    err = caught(lambda: sqrt_loss(x).backward())
    assert_report(err, 'sqrt', 'backward', 'sqrt-line', 'infinite derivative')
    err = caught(lambda: log_loss(cr.tensor([0.0, 1.0], requires_grad=True)))
    assert_report(err, 'log', 'forward', 'log-line', 'log(0)')


@pytest.mark.parametrize('transform', ['vmap', 'jvp', 'jacfwd', 'grad_of_grad', 'hessian'])
def test_under_transforms(transform):
    x = np.array([0.0, 1.0])
    run = {
        'vmap': lambda: cr.vmap(log_loss)(x[:, None]),
        'jvp': lambda: cr.jvp(log_loss, (x,), (np.ones(2),)),
        'jacfwd': lambda: cr.jacfwd(log_loss)(x),
        'grad_of_grad': lambda: cr.grad(lambda y: cnp.sum(cr.grad(log_loss)(y)))(x),
        'hessian': lambda: cr.hessian(log_loss)(x),
    }[transform]
    err = caught(run)
    assert_report(err, 'log', 'forward', 'log-line', 'log(0)')


def test_jitted_code_is_rerun_op_by_op():
    f = cr.jit(exp_overflow)
    f(np.array([1.0, 2.0]))                                  # compiled while off
    err = caught(f, np.array([1.0, 800.0]))
    assert_report(err, 'exp', 'forward', 'exp-line', 'exp overflows')
    # inside a transform, the jitted call is a jit_call primitive: its graph is re-run
    err = caught(cr.grad(lambda x: cr.jit(exp_overflow)(x)), np.array([1.0, 800.0]))
    assert err.primitive == 'exp'


def test_jit_of_grad_finds_the_backward_culprit():
    err = caught(cr.jit(cr.grad(sqrt_loss)), np.array([0.0, 1.0]))
    assert_report(err, 'sqrt', 'backward', 'sqrt-line', 'infinite derivative')


def test_finite_programs_run_unchanged_and_give_the_same_answers():
    x = np.array([0.5, 2.0])
    want = cr.grad(sqrt_loss)(x)
    with cr.debug_nans():
        np.testing.assert_array_equal(cr.grad(sqrt_loss)(x), want)
        t = cr.tensor(x, requires_grad=True)
        sqrt_loss(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), 0.5 / np.sqrt(x))


# --- switching the mode -------------------------------------------------------------------------

def test_off_means_the_original_code_paths():
    orig = EagerTrace.process
    assert core._eager_hook is None and reverse._backward_hook is None
    with cr.debug_nans():
        assert core._eager_hook is not None and EagerTrace.process is not orig
        with cr.debug_nans():                     # nested
            pass
        assert core._eager_hook is not None
    assert core._eager_hook is None and reverse._backward_hook is None
    assert EagerTrace.process is orig
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        assert np.isinf(log_loss(np.array([0.0])))          # no error when off


def test_config_flag_and_decorator():
    try:
        cr.config.debug_nans = True
        with pytest.raises(FloatingPointError), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            log_loss(np.array([0.0]))
    finally:
        cr.config.debug_nans = False
    assert core._eager_hook is None

    @cr.debug_nans()
    def f(x):
        return log_loss(x)
    with pytest.raises(FloatingPointError), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        f(np.array([0.0]))


def test_environment_variable():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ('import warnings, numpy as np, chainrule as cr, chainrule.numpy as cnp\n'
            'warnings.simplefilter("ignore")\n'
            'assert cr.config.debug_nans\n'
            'try:\n    cnp.log(np.zeros(1))\nexcept FloatingPointError as e:\n'
            '    print("raised", e.primitive)\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, 'CHAINRULE_DEBUG_NANS': '1'})
    assert out.stdout.strip() == 'raised log', out.stderr


def test_a_block_checks_its_own_thread_only():
    import threading
    started, release, seen = threading.Event(), threading.Event(), []

    def other():
        started.set()
        release.wait(10)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            seen.append(float(log_loss(np.array([0.0]))))   # -inf, not an error here

    t = threading.Thread(target=other)
    t.start()
    started.wait(10)
    with cr.debug_nans():
        release.set()
        t.join(10)
        with pytest.raises(FloatingPointError), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            log_loss(np.array([0.0]))
    assert seen == [-np.inf]
