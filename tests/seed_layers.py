"""Custom layers written in the seeds, shared by the tests that use them."""
from graphc import layers, ops


class CustomDense(layers.Layer):
    """Seed 002, section 9, with graphc.ops.matmul in place of tf.matmul."""

    def __init__(self, units=32):
        super(CustomDense, self).__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {"units": self.units}
