"""`cr.set_grad_enabled` as a plain call, a context manager and a decorator, step by step
against `torch.set_grad_enabled` (PyTorch 2.13): the constructor sets the mode at once, `with`
restores the mode from before the constructor, decorating changes nothing until the function
runs. `no_grad()`/`enable_grad()` change nothing until entered. Each scenario runs the same
code with both libraries and compares the grad mode seen at every step and whether a result
requires grad."""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch is the reference for grad mode')


class _Lib:
    def __init__(self, mod, x):
        self.m, self.x, self.seen = mod, x, []

    def mark(self):
        self.seen.append((self.m.is_grad_enabled(), (self.x * 2).requires_grad))


def _both(scenario):
    libs = [_Lib(cr, cr.tensor(np.ones(2), requires_grad=True)),
            _Lib(torch, torch.ones(2, requires_grad=True))]
    for lib in libs:
        try:
            scenario(lib)
        finally:
            lib.m.set_grad_enabled(True)          # leave the mode on for the next test
    assert libs[0].seen == libs[1].seen
    return libs[0].seen


def test_the_call_form_turns_grad_mode_off_until_turned_on_again():
    def s(lib):
        lib.mark()
        lib.m.set_grad_enabled(False)
        lib.mark()
        lib.mark()
        lib.m.set_grad_enabled(True)
        lib.mark()
    assert _both(s) == [(True, True), (False, False), (False, False), (True, True)]


def test_with_restores_the_mode_from_before_the_constructor():
    def s(lib):
        with lib.m.set_grad_enabled(False):
            lib.mark()
        lib.mark()
        lib.m.set_grad_enabled(False)
        with lib.m.set_grad_enabled(True):
            lib.mark()
            with lib.m.no_grad():
                lib.mark()
            lib.mark()
        lib.mark()
        ctx = lib.m.set_grad_enabled(True)      # set now; exiting restores the mode before it
        lib.mark()
        with ctx:
            lib.mark()
        lib.mark()
    assert _both(s) == [(False, False), (True, True), (True, True), (False, False),
                        (True, True), (False, False), (True, True), (True, True),
                        (False, False)]


def test_no_grad_and_enable_grad_change_nothing_until_entered():
    def s(lib):
        ng = lib.m.no_grad()
        lib.mark()
        with ng:
            lib.mark()
            eg = lib.m.enable_grad()
            lib.mark()
            with eg:
                lib.mark()
            lib.mark()
        lib.mark()
    assert _both(s) == [(True, True), (False, False), (False, False), (True, True),
                        (False, False), (True, True)]


def test_as_a_decorator_the_mode_applies_while_the_function_runs():
    def s(lib):
        @lib.m.set_grad_enabled(False)
        def off():
            lib.mark()
            return lib.x * 3

        lib.mark()                              # decorating left the mode as it was
        assert not off().requires_grad
        lib.mark()
        lib.m.set_grad_enabled(False)

        @lib.m.set_grad_enabled(True)
        def on():
            lib.mark()

        lib.mark()
        on()
        lib.mark()                              # the caller's mode (off) is back
    assert _both(s) == [(True, True), (False, False), (True, True), (False, False),
                        (True, True), (False, False)]


def test_the_call_form_inside_a_with_block_is_undone_by_its_exit():
    def s(lib):
        with lib.m.no_grad():
            lib.m.set_grad_enabled(True)
            lib.mark()
        lib.mark()
        with lib.m.enable_grad():
            lib.m.set_grad_enabled(False)
            lib.mark()
        lib.mark()
    assert _both(s) == [(True, True), (True, True), (False, False), (True, True)]


def test_grad_mode_off_by_the_call_hides_operations_from_grad_like_no_grad():
    # the same hiding as `with cr.no_grad()`: inside cr.grad, values computed with grad mode off
    # are constants (torch.func.grad agrees)
    def f(x, lib):
        lib.set_grad_enabled(False)
        c = x * x
        lib.set_grad_enabled(True)
        return (c * x).sum()

    g = cr.grad(lambda x: f(x, cr))(cr.tensor([1.0, 2.0]))
    gt = torch.func.grad(lambda x: f(x, torch))(torch.tensor([1.0, 2.0], dtype=torch.float64))
    np.testing.assert_allclose(g.numpy(), gt.numpy())
    np.testing.assert_allclose(g.numpy(), [1.0, 4.0])
    assert cr.is_grad_enabled()
