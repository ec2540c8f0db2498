"""Stochastic gradient descent with optional (Nesterov) momentum, as Keras 3's SGD."""
from __future__ import annotations

import numbers

from ..serialization import register
from .base import Optimizer


@register("optimizers")
class SGD(Optimizer):
    """``m = momentum * m - lr * g``; ``p += m`` (Nesterov: ``p += momentum * m - lr * g``).
    Without momentum, ``p -= lr * g`` and no slot is created."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        # weight_decay, clipnorm, clipvalue, global_clipnorm, name, ...: Keras's shared arguments (base.py)
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def _slot_groups(self):
        return [(("momentum",), 0.0)] if self.momentum != 0 else []

    def _update_step(self, p, g, slots, hyper):
        lr = hyper["lr"]
        if self.momentum == 0:
            return p - g * lr, []
        m = slots[0] * self.momentum - g * lr
        if self.nesterov:
            return p + (m * self.momentum - g * lr), [m]
        return p + m, [m]

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
