"""The ODE-fitting example (`examples/ode_fit.py`) runs: a few L-BFGS-B iterations with the
adjoint gradient lower the loss, and the plot is written (when matplotlib is installed)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('scipy.optimize', reason='the example fits with scipy.optimize.minimize')

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location('ode_fit_example', ROOT / 'examples' /
                                                  'ode_fit.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_few_iterations_lower_the_loss_and_plot(tmp_path, capsys):
    ex = _load()
    start = np.array([1.3, 0.5, 0.6, 0.25])
    params, data, res = ex.fit(iters=3, start=start)
    assert res.fun < 0.5 * float(ex.loss(np.log(start), data))
    # the gradient the optimiser used is the finite-difference one
    z, eps = np.log(start), 1e-6
    g = np.asarray(__import__('chainrule').grad(ex.loss)(z, data))
    e = np.eye(4)[1]
    fd = (float(ex.loss(z + eps * e, data)) - float(ex.loss(z - eps * e, data))) / (2 * eps)
    np.testing.assert_allclose(g[1], fd, rtol=1e-4)
    path = ex.plot(params, data, tmp_path / 'fit.png')
    if path is None:
        assert 'matplotlib is not installed' in capsys.readouterr().out
    else:
        assert Path(path).stat().st_size > 1000
