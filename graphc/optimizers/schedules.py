"""Learning-rate schedules (``keras.optimizers.schedules``): step -> learning rate.

Values are computed in float32 in Keras's order of operations, so an optimizer driven by a
schedule feeds the compiled step the same learning rate Keras would use.
"""
from __future__ import annotations

import abc

import numpy as np

from ..serialization import register, registered

_MODULE = "keras.optimizers.schedules"


class LearningRateSchedule(abc.ABC):
    """Subclasses define ``__call__(step) -> float`` and ``get_config()``."""

    @abc.abstractmethod
    def __call__(self, step):
        ...

    def get_config(self):
        raise TypeError(f"Learning rate schedule '{type(self).__name__}' must override get_config() "
                        "in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register("schedules")
class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored exponent if staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        if self.decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={self.decay_steps}")

    def __call__(self, step):
        f32 = np.float32
        p = f32(step) / f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(f32(self.initial_learning_rate) * np.power(f32(self.decay_rate), p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@register("schedules")
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while step <= boundaries[0], ``values[i]`` on (boundaries[i-1], boundaries[i]], then the last."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. "
                             f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                             f"values={values} of length {len(values)}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        integral = isinstance(step, (int, np.integer))
        for boundary, value in zip(self.boundaries, self.values):
            if step <= (int(boundary) if integral else boundary):  # Keras casts boundaries to the step's dtype
                return float(np.float32(value))
        return float(np.float32(self.values[-1]))

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


def serialize(schedule) -> dict:
    """The Keras dict: ``{"module": "keras.optimizers.schedules", "class_name", "config", "registered_name"}``."""
    cls = type(schedule)
    builtin = registered("schedules").get(cls.__name__) is cls
    return {"module": _MODULE if builtin else cls.__module__, "class_name": cls.__name__,
            "config": schedule.get_config(), "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret learning rate schedule config: {config!r}")
    table = {**registered("schedules"), **(custom_objects or {})}
    name = config.get("registered_name") or config["class_name"]
    cls = table.get(name) or table.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule {config['class_name']!r}. Known: {sorted(table)}. "
                         f"Pass custom classes with custom_objects={{'{config['class_name']}': cls}}.")
    return cls.from_config(dict(config.get("config", {})))


__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "serialize", "deserialize"]
