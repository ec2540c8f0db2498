"""RMSprop (plain, centered, with momentum), as Keras 3's RMSprop."""
from __future__ import annotations

from .. import ops
from ..serialization import register
from .base import Optimizer


@register("optimizers")
class RMSprop(Optimizer):
    """``v = rho * v + (1 - rho) * g^2``; centered: ``a = rho * a + (1 - rho) * g`` and the denominator is
    ``sqrt(v - a^2 + eps)`` instead of ``sqrt(v + eps)``; ``inc = lr * g / denominator``; with momentum
    ``m = momentum * m + inc; p -= m``, else ``p -= inc``.
    Slots per variable: velocity[, momentum][, average_gradient]."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        # weight_decay, clipnorm, clipvalue, global_clipnorm, name, ...: Keras's shared arguments (base.py)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _slot_groups(self):
        groups = [(("velocity",), 0.0)]
        if self.momentum > 0:
            groups.append((("momentum",), 0.0))
        if self.centered:
            groups.append((("average_gradient",), 0.0))
        return groups

    def _update_step(self, p, g, slots, hyper):
        rest = iter(slots)
        velocity = next(rest)
        momentum = next(rest) if self.momentum > 0 else None
        average = next(rest) if self.centered else None
        rho = self.rho
        velocity = velocity * rho + ops.square(g) * (1 - rho)
        new_slots = [velocity]
        if self.centered:
            average = average * rho + g * (1 - rho)
            denominator = velocity - ops.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = hyper["lr"] * g / ops.sqrt(denominator)
        if self.momentum > 0:
            momentum = momentum * self.momentum + increment
            new_slots.append(momentum)
            p = p - momentum
        else:
            p = p - increment
        if self.centered:
            new_slots.append(average)
        return p, new_slots

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
