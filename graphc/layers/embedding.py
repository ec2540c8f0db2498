"""Embedding: integer ids -> rows of a trainable (input_dim, output_dim) table."""
from __future__ import annotations

import warnings

from .. import initializers, ops, regularizers
from ..serialization import register, serialize_object
from ..tracing import emit
from .base import Layer
from .core import reject_unsupported


@register("layers")
class Embedding(Layer):
    """``embeddings[ids]``: inputs of any rank (ints, or floats that are truncated to ints as Keras does)
    give outputs of shape ``inputs.shape + (output_dim,)``. With ``mask_zero=True`` id 0 is padding: the
    output carries a mask (``ids != 0``) that the recurrent layers, GlobalAveragePooling1D and the losses
    honour, as in Keras."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 activity_regularizer=None, input_length=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if input_length is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Embedding '{self.name}': {arg} must be a positive integer, "
                                 f"received {arg}={value!r}")
        reject_unsupported(self, embeddings_constraint=embeddings_constraint,
                           lora_rank=lora_rank, lora_alpha=lora_alpha)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.input_dim, self.output_dim = input_dim, output_dim
        self.mask_zero = bool(mask_zero)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        if weights is not None:  # Keras 2 style: Embedding(..., weights=[matrix]) sets the table at once
            self.build()
            self.built = True
            self.set_weights(weights if isinstance(weights, list) and len(weights) == 1 else [weights])

    def build(self, input_shape=None):
        if getattr(self, "embeddings", None) is None:
            self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                              name="embeddings", regularizer=self.embeddings_regularizer)
        self.built = True

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return emit("gather", self.embeddings, inputs, axis=0)

    def compute_mask(self, inputs, previous_mask=None):
        """With ``mask_zero``: true where the id is not 0 (the padding id), for the layers after it."""
        return ops.not_equal(inputs, 0) if self.mask_zero else None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": serialize_object(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer), "embeddings_constraint": None,
                "mask_zero": self.mask_zero}
