"""What the eager residuals buy, measured in one process: chainrule's CNN training step with
conv2d's kept columns, max_pool2d's kept window slabs, batch_norm's kept centred values (and
the rules' shared sums) and relu against zeros switched on ("new") and off ("old"), and
PyTorch, taking turns round after round (`train_step.best`), so the machine's load hits all
three alike.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/cnn_residuals_ab.py [BatchNorm|small] [rounds]
"""
import os
import sys

for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_v, '1')
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import train_step as ts  # noqa: E402
from chainrule.data import load_digits  # noqa: E402
from chainrule.ops import conv, nn as nnops  # noqa: E402

torch.set_num_threads(1)
(x, y), _ = load_digits(seed=0)
which = sys.argv[1] if len(sys.argv) > 1 else 'BatchNorm'
ts.REPEAT = int(sys.argv[2]) if len(sys.argv) > 2 else 7
data = [(xb.reshape(-1, 1, 8, 8), yb) for xb, yb in ts.batches(x, y, ts.STEPS)]
if which == 'BatchNorm':
    make, make_t, opt = ts.cnn_bn, ts.torch_cnn_bn, ts._adam
else:
    from chainrule.demo import SmallCNN
    make, make_t, opt = (lambda: SmallCNN(rng=0)), ts.torch_cnn, ts._sgd
new_m, old_m = make(), make()
tm = make_t(torch)
tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in new_m.state_dict().items()})
on = dict(cols=conv._saved_columns, tiles=conv._saved_tiles, moments=nnops.batch_moments,
          relu=nnops.relu_p.impl)
off = dict(cols=lambda *a: None, tiles=lambda *a: None,
           moments=lambda x, keep_centred=False: on['moments'](x),
           relu=lambda x: np.maximum(x, 0))


def switch(p):
    conv._saved_columns, conv._saved_tiles = p['cols'], p['tiles']
    nnops.batch_moments, nnops.relu_p.impl = p['moments'], p['relu']


r_new, r_old = ts.run_chainrule(new_m, data, opt), ts.run_chainrule(old_m, data, opt)


def run_new():
    switch(on)
    r_new()


def run_old():
    switch(off)
    try:
        r_old()
    finally:
        switch(on)


t_new, t_old, t_t = ts.best(run_new, run_old, ts.run_torch(torch, tm, data, opt))
print(f'{which}: chainrule new {t_new:.1f} us, old {t_old:.1f} us, torch {t_t:.1f} us; '
      f'torch/new {t_t / t_new:.2f}, torch/old {t_t / t_old:.2f}, old/new {t_old / t_new:.2f}')
