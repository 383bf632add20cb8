"""Bad input where the layers meet the losses and the random samplers: each gets chainrule's
error naming the operation, the argument and the shapes, never a NumPy message from inside
(found by feeding every layer and loss the wrong dtype, rank, length and emptiness)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from chainrule.core import DTypeError, ShapeError


@pytest.mark.parametrize('target', [np.zeros(2, int), np.full((2, 3), 1 / 3)],
                         ids=['indices', 'probabilities'])
@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_class_weight_of_the_wrong_length_is_named(target, smoothing):
    with pytest.raises(ShapeError, match=r'cross_entropy: weight .* shape \(3,\), got shape \(4,\)'):
        F.cross_entropy(np.ones((2, 3)), target, weight=np.ones(4), label_smoothing=smoothing)
    if target.dtype.kind == 'i':
        with pytest.raises(ShapeError, match=r'nll_loss: weight'):
            F.nll_loss(np.ones((2, 3)), target, weight=np.ones(2))


def test_categorical_over_no_classes_is_named():
    with pytest.raises(ShapeError, match=r'categorical: logits \(2, 0\) have no classes'):
        cr.random.categorical(cr.random.key(0), np.zeros((2, 0)))


@pytest.mark.parametrize('idx', [np.array([0.5, 1.0]), np.array([True, False])],
                         ids=['float', 'bool'])
def test_embedding_refuses_non_integer_indices_on_every_path(idx):
    emb = nn.Embedding(5, 2)
    for call in (emb, cr.jit(emb), cr.vmap(emb), lambda i: emb(cr.tensor(i))):
        with pytest.raises(DTypeError, match='embedding: indices must be integers'):
            call(idx)
    assert emb([1, 2]).shape == (2, 2) and emb(np.array(3)).shape == (2,)
