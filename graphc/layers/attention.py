"""MultiHeadAttention (keras.layers.MultiHeadAttention) on (batch, steps, features) tensors.

    q = query @ Wq + bq   (B, Tq, H, K)      scores = softmax(q k^T / sqrt(K))   (B, H, Tq, Tk)
    k = key   @ Wk + bk   (B, Tk, H, K)      heads  = scores v                   (B, Tq, H, V)
    v = value @ Wv + bv   (B, Tk, H, V)      output = heads @ Wo + bo            (B, Tq, D)

The projections hold Keras's weights and layouts (query/kernel (Dq, H, K), attention_output/kernel
(H, V, D)), in sublayers named and saved as Keras's, so files load both ways.
"""
from __future__ import annotations

import math

import numpy as np

from .. import initializers, ops, regularizers
from ..serialization import register, serialize_object
from .base import Layer, input_mask
from .core import Dropout, reject_unsupported


class _Projection(Layer):
    """Keras's EinsumDense as MultiHeadAttention uses it: the kernel maps the last ``len(in_dims)`` axes of
    its input to ``out_dims`` (one matmul over the flattened axes), plus a bias of shape ``bias_dims``."""

    def __init__(self, kernel_shape, n_in, bias_shape, owner, **kwargs):
        super().__init__(**kwargs)
        self.kernel_shape, self.n_in, self.bias_shape = tuple(kernel_shape), n_in, bias_shape
        self.kernel = self.add_weight(self.kernel_shape, owner.kernel_initializer, name="kernel",
                                      regularizer=owner.kernel_regularizer)
        self.bias = None if bias_shape is None else self.add_weight(
            tuple(bias_shape), owner.bias_initializer, name="bias", regularizer=owner.bias_regularizer)
        self.built = True

    def call(self, x):
        ins, outs = self.kernel_shape[:self.n_in], self.kernel_shape[self.n_in:]
        lead = tuple(-1 if d is None else d for d in x.shape[:len(x.shape) - self.n_in])
        flat = ops.reshape(x, lead + (math.prod(ins),))
        y = ops.reshape(ops.matmul(flat, ops.reshape(self.kernel, (math.prod(ins), math.prod(outs)))), lead + outs)
        return y if self.bias is None else y + self.bias


@register("layers")
class MultiHeadAttention(Layer):
    """Attention of ``query`` over ``value`` (and ``key``, default ``value``) with ``num_heads`` heads of size
    ``key_dim`` (``value_dim`` for values, default ``key_dim``). Call: ``mha(query, value, key=None,
    attention_mask=None, use_causal_mask=False, return_attention_scores=False, training=None)``
    (``attention_mask``: (batch, Tq, Tk), true where attention is allowed); the output has ``output_shape``
    features (default: the query's). Inputs are (batch, steps, features); attention runs over the steps."""

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, seed=None,
                 use_gate=False, sliding_window=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        reject_unsupported(self, kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint, sliding_window=sliding_window,
                           use_gate=use_gate or None)
        for arg, value in (("num_heads", num_heads), ("key_dim", key_dim), ("value_dim", value_dim or key_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"MultiHeadAttention '{self.name}': {arg} must be a positive integer, received "
                                 f"{arg}={value!r}")
        if attention_axes not in (None, 1, [1], (1,), -2, [-2], (-2,)):
            raise ValueError(f"MultiHeadAttention '{self.name}': attention_axes={attention_axes!r} is not supported "
                             "by graphc yet: it attends over the steps of (batch, steps, features) inputs")
        if output_shape is not None and not isinstance(output_shape, (int, np.integer)):
            shape = tuple(output_shape)
            if len(shape) != 1:
                raise ValueError(f"MultiHeadAttention '{self.name}': output_shape {output_shape!r} is not supported "
                                 "by graphc yet: give the number of output features")
            output_shape = shape[0]
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim or key_dim)
        self.dropout, self.use_bias, self.seed = float(dropout), bool(use_bias), seed
        self.output_dim = None if output_shape is None else int(output_shape)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._dropout_layer = Dropout(self.dropout, seed=seed)

    # The call's tensors, packed as [query, value, key(, attention_mask)]; files record the first two
    # positionally and the others by name, as Keras does (models/config._serialize_node)
    _tensor_args = ("query", "value", "key", "attention_mask")

    def __call__(self, query, value=None, key=None, attention_mask=None, **kwargs):
        if value is None and isinstance(query, (list, tuple)):  # (packed: a recorded call being replayed)
            packed = list(query)
            return super().__call__(packed + packed[1:2] if len(packed) == 2 else packed, **kwargs)
        if value is None:
            raise TypeError(f"MultiHeadAttention '{self.name}' needs a query and a value: mha(query, value)")
        for mask in ("query_mask", "value_mask", "key_mask"):
            if kwargs.get(mask) is not None:
                raise ValueError(f"MultiHeadAttention '{self.name}': {mask}= is not supported by graphc yet; the "
                                 "masks the inputs carry (Embedding(mask_zero=True), Masking), attention_mask and "
                                 "use_causal_mask are")
            kwargs.pop(mask, None)
        tensors = [query, value, value if key is None else key]
        return super().__call__(tensors + ([] if attention_mask is None else [attention_mask]), **kwargs)

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape[:3]]
        if any(len(s) != 3 or None in s[1:] for s in shapes):
            raise ValueError(f"MultiHeadAttention '{self.name}' takes (batch, steps, features) inputs with known "
                             f"steps and features, received shapes {shapes}")
        dq, dv = shapes[0][-1], shapes[1][-1]
        dk = shapes[2][-1] if len(shapes) > 2 else dv
        h, k, v = self.num_heads, self.key_dim, self.value_dim
        bias = self.use_bias
        self.query_dense = _Projection((dq, h, k), 1, (h, k) if bias else None, self, name="query")
        self.key_dense = _Projection((dk, h, k), 1, (h, k) if bias else None, self, name="key")
        self.value_dense = _Projection((dv, h, v), 1, (h, v) if bias else None, self, name="value")
        out = self.output_dim or dq
        self.output_dense = _Projection((h, v, out), 2, (out,) if bias else None, self, name="attention_output")
        self.built = True

    def call(self, inputs, training=None, use_causal_mask=False, return_attention_scores=False):
        query, value, key = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else inputs[1]
        if key.shape[1] is not None and value.shape[1] is not None and key.shape[1] != value.shape[1]:
            raise ValueError(f"MultiHeadAttention '{self.name}': key and value must have the same number of steps, "
                             f"received {key.shape[1]} and {value.shape[1]}")
        q = self.query_dense(query) * (1.0 / math.sqrt(self.key_dim))   # (B, Tq, H, K)
        k, v = self.key_dense(key), self.value_dense(value)               # (B, Tk, H, K), (B, Tk, H, V)
        scores = ops.matmul(ops.transpose(q, (0, 2, 1, 3)), ops.transpose(k, (0, 2, 3, 1)))  # (B, H, Tq, Tk)
        allowed = None  # 1 where query step i may attend to key step j: the attention mask and the causal one
        if len(inputs) > 3:
            mask = inputs[3]
            if len(mask.shape) != 3 or any(a is not None and b is not None and a != b
                                           for a, b in zip(mask.shape[1:], (query.shape[1], key.shape[1]))):
                raise ValueError(f"MultiHeadAttention '{self.name}': attention_mask must have shape (batch, "
                                 f"{query.shape[1]}, {key.shape[1]}), received {tuple(mask.shape)}")
            allowed = ops.expand_dims(ops.cast(mask, "float32"), 1)  # (B, 1, Tq, Tk): the same for every head
        padding = None  # the masks the inputs carry (Keras's query, value and key masks): (B, Tq, Tk)
        for t, axis in ((query, -1), (value, 1), (key, 1)):
            if input_mask(t) is not None:
                m = ops.expand_dims(ops.cast(input_mask(t), "float32"), axis)
                padding = m if padding is None else padding * m
        if padding is not None:
            padding = ops.expand_dims(padding, 1)
            allowed = padding if allowed is None else allowed * padding
        if use_causal_mask:  # query step i sees key steps <= i (Keras's causal mask)
            causal = np.tril(np.ones((query.shape[1], key.shape[1]), dtype="float32"))
            allowed = causal if allowed is None else allowed * causal
        attention = ops.softmax(scores if allowed is None else ops.where(ops.greater(allowed, 0.5), scores, -1e9),
                                axis=-1)
        if allowed is not None and (return_attention_scores or self.dropout > 0):
            # Keras's two paths differ on a query step allowed nothing: its Softmax layer (taken when returning
            # the scores or with dropout) zeroes the masked places, so such a step gets zeros; its fused
            # dot-product attention (otherwise) leaves the uniform distribution. Both followed here.
            attention = attention * allowed
        heads = ops.matmul(self._dropout_layer(attention, training=training), ops.transpose(v, (0, 2, 1, 3)))
        output = self.output_dense(ops.transpose(heads, (0, 2, 1, 3)))  # (B, Tq, H, V) -> (B, Tq, D)
        return [output, attention] if return_attention_scores else output

    def compute_mask(self, inputs, previous_mask):
        """The output keeps the query's mask (as Keras)."""
        return previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias, "use_gate": False,
                "output_shape": self.output_dim, "attention_axes": [1], "sliding_window": None,
                "kernel_initializer": serialize_object(self.kernel_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": None, "bias_constraint": None, "seed": self.seed}
