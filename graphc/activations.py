"""Activation functions (Keras 3 names and defaults), written with graphc.ops."""
from __future__ import annotations

from . import ops
from .serialization import function_from_config, serialize_function


def linear(x):
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if threshold != 0.0:
        y = ops.where(ops.greater(x, threshold), x, negative_slope * (x - threshold))
    else:
        y = ops.leaky_relu(x, negative_slope) if negative_slope else ops.relu(x)
    return ops.minimum(y, float(max_value)) if max_value is not None else y


def sigmoid(x): return ops.sigmoid(x)
def tanh(x): return ops.tanh(x)
def softmax(x, axis=-1): return ops.softmax(x, axis=axis)
def log_softmax(x, axis=-1): return ops.log_softmax(x, axis=axis)
def elu(x, alpha=1.0): return ops.elu(x, alpha)
def selu(x): return ops.selu(x)
def gelu(x, approximate=False): return ops.gelu(x, approximate)
def silu(x): return ops.silu(x)
def leaky_relu(x, negative_slope=0.2): return ops.leaky_relu(x, negative_slope)
def softplus(x): return ops.softplus(x)
def softsign(x): return ops.softsign(x)
def hard_sigmoid(x): return ops.hard_sigmoid(x)
def relu6(x): return ops.relu6(x)
def exponential(x): return ops.exp(x)


swish = silu

ALL = {f.__name__: f for f in (linear, relu, sigmoid, tanh, softmax, log_softmax, elu, selu, gelu, silu,
                               leaky_relu, softplus, softsign, hard_sigmoid, relu6, exponential)}
ALL["swish"] = silu


def get(identifier):
    """'relu' / None / a callable / a saved config -> the activation function (None is linear, as in Keras).
    A name that is not built in is looked up among the custom objects (registered or in scope)."""
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        if isinstance(identifier, dict) and identifier.get("class_name") != "function":
            identifier = identifier.get("config", identifier.get("class_name"))  # (Keras 3's object form)
        return function_from_config(identifier, ALL, "activation")
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation {identifier!r}: expected a name or a callable")


def serialize(fn):
    """A built-in activation by name, as Keras writes it; a user function as Keras's function config."""
    name = getattr(fn, "__name__", None)
    return name if ALL.get(name) is fn else serialize_function(fn)
