"""PyTorch's `torch.utils` spelling: `cr.utils.data` is `chainrule.data` (`DataLoader`,
`TensorDataset`, `Subset`, `random_split`), so `from chainrule.utils.data import DataLoader`
works as `from torch.utils.data import DataLoader` does."""

import sys

from chainrule import data

sys.modules[__name__ + '.data'] = data

__all__ = ['data']
