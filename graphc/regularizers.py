"""Weight regularizers (``keras.regularizers``): a penalty on a weight's values that training adds to the loss.

A layer given ``kernel_regularizer=L2(0.01)`` (or ``"l2"``) attaches it to the weight it creates; each train
and test step adds the penalties of the model's trainable weights to the loss it reports and differentiates,
as Keras adds ``model.losses``.
"""
from __future__ import annotations

from . import ops
from .serialization import get_from_registry, register, serialize_object


def _factor(owner, name, value):
    value = float(value)
    if not value >= 0:  # (also refuses NaN)
        raise ValueError(f"{owner}: {name} must be a non-negative number, received {name}={value}")
    return value


class Regularizer:
    """Base class: ``__call__(weight)`` is the penalty; this one's is 0 (no penalty), as Keras's base class."""

    def __call__(self, x):
        return 0.0

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register("regularizers")
class L1L2(Regularizer):
    """``l1 * sum(abs(x)) + l2 * sum(square(x))``, each term only where its factor is not 0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor(type(self).__name__, "l1", l1), _factor(type(self).__name__, "l2", l2)

    def __call__(self, x):
        terms = ([self.l1 * ops.sum(ops.abs(x))] if self.l1 else []) + \
                ([self.l2 * ops.sum(ops.square(x))] if self.l2 else [])
        return sum(terms[1:], terms[0]) if terms else 0.0

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@register("regularizers")
class L1(L1L2):
    """``l1 * sum(abs(x))``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@register("regularizers")
class L2(L1L2):
    """``l2 * sum(square(x))``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """None, a Regularizer, a name ('l1', 'l2', 'l1_l2': Keras's defaults), a serialized dict or a callable."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _ALIASES:
        return _ALIASES[identifier]()
    if isinstance(identifier, (str, dict)):  # (a custom one by its registered name, or a saved config)
        return get_from_registry("regularizers", identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"Cannot interpret regularizer identifier {identifier!r}: give a name ('l2'), a Regularizer "
                    "such as graphc.regularizers.L2(0.01), or a function of the weight")


def serialize(regularizer):
    return None if regularizer is None else serialize_object(regularizer)
