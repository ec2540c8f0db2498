"""Real data: the seed MLP and a small CNN, trained with graphc on scikit-learn's 8x8 handwritten digits
(1347 training / 450 test images), reach at least 97% test accuracy in a bounded number of epochs."""
from __future__ import annotations

import os
import sys

import pytest

import graphc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import train_digits  # noqa: E402


@pytest.mark.parametrize("build", [train_digits.seed_mlp, train_digits.small_cnn], ids=["seed_mlp", "small_cnn"])
def test_reaches_97_percent_on_real_digits(build):
    data = train_digits.load(mnist=False)
    graphc.utils.set_random_seed(0)
    model = build(data[0][0].shape[1:])
    accuracy = train_digits.train(model, data, epochs=20)
    assert accuracy >= 0.97, f"{model.name}: test accuracy {accuracy:.4f}"
