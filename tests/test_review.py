"""Regression tests for the defects found by the acceptance review of issues 2-6.

Each test pins one bug that was fixed: the case that used to give a wrong gradient or an unclear
error, checked against finite differences, PyTorch or NumPy on the same inputs.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads


def test_arccosh_complex_gradient_left_half_plane():
    # the rule was 1/sqrt(z^2 - 1), whose branch differs from NumPy's arccosh for Re z < 0
    z = np.array([-1.3 + 0.58j, 0.4 - 2.0j, 2.0 + 0.1j, -0.2 - 0.3j])
    check_grads(cnp.arccosh, (z,), order=2, modes=('fwd', 'rev'))
    _, t = cr.jvp(cnp.arccosh, (z,), (np.ones_like(z),))
    np.testing.assert_allclose(t, 1 / (np.sqrt(z - 1) * np.sqrt(z + 1)))
