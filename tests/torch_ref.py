"""Helpers shared by the tests that compare chainrule's layers with PyTorch's."""

import numpy as np
import pytest


def torch_or_skip(reason):
    """PyTorch (one thread), or a skip naming why it is the reference."""
    torch = pytest.importorskip('torch', reason=reason)
    torch.set_num_threads(1)
    return torch


def torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def load_from_torch(ours, theirs):
    """Our module takes torch's weights (its state dict converted to NumPy)."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
