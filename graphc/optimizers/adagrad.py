"""Adagrad, as Keras 3's Adagrad."""
from __future__ import annotations

from .. import ops
from ..serialization import register
from .base import Optimizer


@register("optimizers")
class Adagrad(Optimizer):
    """``acc += g^2``; ``p -= lr * g / sqrt(acc + epsilon)``; the accumulator starts at
    ``initial_accumulator_value``."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        # weight_decay, clipnorm, clipvalue, global_clipnorm, name, ...: Keras's shared arguments (base.py)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _slot_groups(self):
        return [(("accumulator",), self.initial_accumulator_value)]

    def _update_step(self, p, g, slots, hyper):
        accumulator = slots[0] + ops.square(g)
        return p - (hyper["lr"] * g) / ops.sqrt(accumulator + self.epsilon), [accumulator]

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
