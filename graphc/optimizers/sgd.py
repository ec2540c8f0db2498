"""Stochastic gradient descent with optional (Nesterov) momentum, as Keras 3's SGD."""
from __future__ import annotations

import numbers

from ..serialization import register
from .base import Optimizer


@register("optimizers")
class SGD(Optimizer):
    """``m = momentum * m - lr * g``; ``p += m`` (Nesterov: ``p += momentum * m - lr * g``).
    Without momentum, ``p -= lr * g`` and no slot is created."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
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
