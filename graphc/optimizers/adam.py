"""Adam (with AMSGrad) and AdamW, as Keras 3's Adam and AdamW."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..serialization import register
from .base import Optimizer

_ONE = np.float32(1)  # (made once: hyperparameters runs on every training step)


@register("optimizers")
class Adam(Optimizer):
    """``m += (g - m) * (1 - beta_1)``; ``v += (g^2 - v) * (1 - beta_2)``; (AMSGrad: ``v_hat = max(v_hat, v)``
    replaces v below); ``p -= m * alpha / (sqrt(v) + epsilon)`` with the step size
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` fed as a hyperparameter (t = iterations + 1).
    Slots per variable: momentum, velocity[, velocity_hat]."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        # weight_decay, clipnorm, clipvalue, global_clipnorm, name, ...: Keras's shared arguments (base.py)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def _slot_groups(self):
        # Keras creates momentum and velocity interleaved per variable, then all velocity_hats.
        groups = [(("momentum", "velocity"), 0.0)]
        if self.amsgrad:
            groups.append((("velocity_hat",), 0.0))
        return groups

    def hyperparameters(self):
        # float32, in Keras's order of operations.
        f32 = np.float32
        t = f32(self.iterations + 1)
        lr = f32(self.learning_rate)
        beta_1_power, beta_2_power = np.power(f32(self.beta_1), t), np.power(f32(self.beta_2), t)
        alpha = lr * np.sqrt(_ONE - beta_2_power) / (_ONE - beta_1_power)
        return {"lr": float(lr), "alpha": float(alpha)}

    def _update_step(self, p, g, slots, hyper):
        m, v = slots[0], slots[1]
        m = m + (g - m) * (1 - self.beta_1)
        v = v + (ops.square(g) - v) * (1 - self.beta_2)
        new_slots = [m, v]
        if self.amsgrad:
            v = ops.maximum(slots[2], v)
            new_slots.append(v)
        return p - (m * hyper["alpha"]) / (ops.sqrt(v) + self.epsilon), new_slots

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


@register("optimizers")
class AdamW(Adam):
    """Adam with decoupled weight decay (``p -= p * weight_decay * lr`` before the Adam step)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
