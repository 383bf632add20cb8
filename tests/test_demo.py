"""The main demo (`python -m chainrule.demo`): quick mode end to end, the full run's accuracy,
and its command line."""

import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr

pytest.importorskip('sklearn')
pytest.importorskip('matplotlib')
pytest.importorskip('tqdm')

from chainrule import demo  # noqa: E402


def test_quick_mode_writes_everything_and_reloads_identically(tmp_path, capsys):
    res = demo.main(['--quick', '--out', str(tmp_path)])
    assert res['reload_identical'] is True
    assert len(res['history']['loss']) == 1 and 0 <= res['test_acc'] <= 1
    captured = capsys.readouterr()
    out = captured.out
    assert 'held-out accuracy' in out and 'predicts identically: True' in out
    assert 'training: 100%' in captured.err                  # the tqdm progress bar
    names = set(os.listdir(tmp_path))
    assert {'model.npz', 'training.png', 'model_graph.dot'} <= names
    assert (tmp_path / 'training.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    dot = (tmp_path / 'model_graph.dot').read_text()
    assert dot.startswith('digraph G {') and 'label="linear"' in dot
    assert 'label="max_pool2d"' in dot and 'label="cross_entropy"' in dot
    assert 'label="3.weight (32, 16, 3, 3) float32"' in dot          # parameters by name
    state = cr.load(tmp_path / 'model.npz')
    assert state['epochs'] == 1
    model = demo.SmallCNN(rng=123)
    model.load_state_dict(state['model'])
    (_, _), (x_te, y_te) = cr.data.load_digits(seed=0)
    ref = demo.SmallCNN(rng=0)
    assert not np.array_equal(demo.predict(model, x_te[:5].reshape(-1, 1, 8, 8)),
                              demo.predict(ref, x_te[:5].reshape(-1, 1, 8, 8)))


def test_full_run_reaches_97_percent(tmp_path):
    # the README's first command, in full: 15 epochs (a few seconds on one core)
    model, opt, history, (x_te, y_te) = demo.train(progress=False)
    assert history['test_acc'][-1] >= 0.97
    assert history['loss'][-1] < history['loss'][0] / 5


def test_help_lists_the_options():
    done = subprocess.run([sys.executable, '-m', 'chainrule.demo', '--help'],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0
    for opt in ('--epochs', '--seed', '--out', '--quick', 'demo_out'):
        assert opt in done.stdout
