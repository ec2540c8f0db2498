"""Custom objects written once for Keras and for graphc (the library is passed in) and registered with
``register_keras_serializable`` under the package "graphc_test": a layer, a regularizer, an activation, a loss
and a metric. tests/fixtures/make_keras_fixtures.py saves a model of them with Keras (keras3_custom.keras);
tests/test_custom_objects.py loads that file with graphc, with no custom_objects.
"""
PACKAGE = "graphc_test"


def define(keras):
    """The custom objects, registered with ``keras`` (Keras or graphc), by name."""
    ops, register = keras.ops, keras.saving.register_keras_serializable

    @register(PACKAGE)
    class ScaledDense(keras.layers.Layer):
        """(x @ kernel + bias) * scale."""

        def __init__(self, units, scale=1.0, **kwargs):
            super().__init__(**kwargs)
            self.units, self.scale = units, scale

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                          name="kernel")
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

        def call(self, x):
            return (ops.matmul(x, self.kernel) + self.bias) * self.scale

        def get_config(self):
            return {**super().get_config(), "units": self.units, "scale": self.scale}

    @register(PACKAGE)
    class HalfL2(keras.regularizers.Regularizer):
        """0.5 * l2 * sum(w**2)."""

        def __init__(self, l2=0.01):
            self.l2 = l2

        def __call__(self, w):
            return 0.5 * self.l2 * ops.sum(ops.square(w))

        def get_config(self):
            return {"l2": self.l2}

    @register(PACKAGE)
    def shifted_tanh(x):
        return ops.tanh(x) + 0.5

    @register(PACKAGE, name="twice_mse")
    def scaled_mse(y_true, y_pred):
        return 2.0 * ops.mean(ops.square(y_pred - y_true), axis=-1)

    @register(PACKAGE)
    def mean_abs_pred(y_true, y_pred):
        return ops.mean(ops.abs(y_pred), axis=-1)

    return {"ScaledDense": ScaledDense, "HalfL2": HalfL2, "shifted_tanh": shifted_tanh, "scaled_mse": scaled_mse,
            "mean_abs_pred": mean_abs_pred}


def build_model(keras, objects):
    """A compiled model that uses every custom object (the same code for Keras and graphc)."""
    inp = keras.Input((4,), name="x")
    h = objects["ScaledDense"](5, scale=0.5, name="scaled")(inp)
    out = keras.layers.Dense(3, activation=objects["shifted_tanh"], kernel_regularizer=objects["HalfL2"](0.02),
                             name="out")(h)
    model = keras.Model(inp, out, name="custom")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=objects["scaled_mse"],
                  metrics=[objects["mean_abs_pred"]])
    return model
