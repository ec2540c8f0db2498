"""Training cases shared by the Keras golden generator (tools/make_train_goldens.py) and graphc's test
(tests/test_training_goldens.py): the same builder makes the Keras and the graphc model.

Each case: ``build(k)`` -> model, ``data(rng)`` -> (x, y) with a fixed number of samples, and compile
arguments (everything but the optimizer, which the test varies: SGD with momentum and Adam).
"""
from __future__ import annotations

import numpy as np

N_SAMPLES, BATCH = 40, 16  # 3 steps per epoch, the last one short


def _onehot(rng, n, c):
    return np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]


def mlp(k):  # seed 003's MLP, narrower
    x = k.Input(shape=(20,))
    h = k.layers.Dense(16, activation="relu")(x)
    h = k.layers.Dense(12, activation="relu")(h)
    return k.Model(x, k.layers.Dense(4, activation="softmax")(h))


def cnn(k):
    x = k.Input(shape=(10, 10, 1))
    h = k.layers.Conv2D(4, 3, activation="relu")(x)
    h = k.layers.MaxPooling2D(2)(h)
    h = k.layers.Conv2D(6, 3, padding="same", activation="relu")(h)
    h = k.layers.Flatten()(h)
    return k.Model(x, k.layers.Dense(3)(h))


def cnn_bn(k):
    x = k.Input(shape=(8, 8, 2))
    h = k.layers.Conv2D(4, 3, use_bias=False)(x)  # a bias before BN gets ~0 gradients, which Adam amplifies
    h = k.layers.BatchNormalization()(h)
    h = k.layers.Activation("relu")(h)
    h = k.layers.GlobalAveragePooling2D()(h)
    return k.Model(x, k.layers.Dense(3, activation="softmax")(h))


def lstm(k):
    x = k.Input(shape=(6, 3))
    h = k.layers.LSTM(8)(x)
    return k.Model(x, k.layers.Dense(3, activation="softmax")(h))


def regularized(k):  # weight penalties in the loss: l2 and l1 on Dense, l2 on a Conv1D and on an LSTM
    x = k.Input(shape=(6, 3))
    h = k.layers.Conv1D(4, 2, activation="relu", kernel_regularizer=k.regularizers.L2(0.02), bias_regularizer="l1")(x)
    h = k.layers.LSTM(5, kernel_regularizer="l2", recurrent_regularizer=k.regularizers.L1L2(l1=0.01, l2=0.01))(h)
    return k.Model(x, k.layers.Dense(3, activation="softmax", kernel_regularizer=k.regularizers.L1(0.02))(h))


def multi_io(k):  # seed 001/002 style: two inputs, two named outputs with their own losses and weights
    a = k.Input(shape=(7,), name="a")
    b = k.Input(shape=(5,), name="b")
    h = k.layers.concatenate([k.layers.Dense(6, activation="tanh")(a), b])
    h = k.layers.Dense(8, activation="relu")(h)
    score = k.layers.Dense(1, name="score")(h)
    cls = k.layers.Dense(3, activation="softmax", name="cls")(h)
    return k.Model([a, b], [score, cls])


def added_losses(k):  # add_loss in a custom layer and activity regularizers: Keras adds both to the loss
    class Penalty(k.layers.Layer):
        def call(self, x):
            self.add_loss(0.1 * k.ops.mean(k.ops.square(x)))
            return x

    x = k.Input(shape=(7,))
    h = k.layers.Dense(6, activation="tanh", activity_regularizer=k.regularizers.L2(0.05))(x)
    return k.Model(x, k.layers.Dense(3, activation="softmax", activity_regularizer="l1")(Penalty()(h)))


def masked(k):  # padding (all-zero steps, at either end) left out of the recurrences, the pooling, a per-step loss
    # and its metric. (Masking, not Embedding(mask_zero=True): Keras on TensorFlow updates an embedding table with
    # Adam from per-occurrence gradients, so repeated ids get other second moments than the dense update's.)
    x = k.Input(shape=(7, 3), name="steps")
    m = k.layers.Masking(0.0)(x)
    tags = k.layers.Dense(3, activation="softmax", name="tags")(k.layers.LSTM(6, return_sequences=True)(m))
    pooled = k.layers.GlobalAveragePooling1D()(k.layers.GRU(4, return_sequences=True)(m))
    return k.Model(x, [tags, k.layers.Dense(1, name="score")(pooled)])


def _padded(rng, n, steps, features):
    """Steps in [-1, 1) with zeros (padding) after a random length, and at the first step of every fifth row."""
    x = rng.uniform(-1, 1, (n, steps, features))
    x[np.arange(steps) >= rng.integers(2, steps + 1, n)[:, None]] = 0
    x[::5, 0] = 0
    return x.astype(np.float32)


CASES = {
    "mlp": (mlp, lambda rng: (rng.uniform(-1, 1, (N_SAMPLES, 20)).astype(np.float32), _onehot(rng, N_SAMPLES, 4)),
            dict(loss="categorical_crossentropy", metrics=["accuracy"])),
    "cnn": (cnn, lambda rng: (rng.uniform(0, 1, (N_SAMPLES, 10, 10, 1)).astype(np.float32),
                              rng.integers(0, 3, N_SAMPLES).astype(np.int32)),
            dict(loss="sparse_categorical_crossentropy_logits", metrics=["accuracy"])),
    "cnn_bn": (cnn_bn, lambda rng: (rng.uniform(-1, 1, (N_SAMPLES, 8, 8, 2)).astype(np.float32),
                                    _onehot(rng, N_SAMPLES, 3)),
               dict(loss="categorical_crossentropy")),
    "lstm": (lstm, lambda rng: (rng.uniform(-1, 1, (N_SAMPLES, 6, 3)).astype(np.float32), _onehot(rng, N_SAMPLES, 3)),
             dict(loss="categorical_crossentropy", metrics=["accuracy"])),
    "regularized": (regularized, lambda rng: (rng.uniform(-1, 1, (N_SAMPLES, 6, 3)).astype(np.float32),
                                              _onehot(rng, N_SAMPLES, 3)),
                    dict(loss="categorical_crossentropy", metrics=["accuracy"])),
    "multi_io": (multi_io, lambda rng: ({"a": rng.uniform(-1, 1, (N_SAMPLES, 7)).astype(np.float32),
                                         "b": rng.uniform(-1, 1, (N_SAMPLES, 5)).astype(np.float32)},
                                        {"score": rng.uniform(-1, 1, (N_SAMPLES, 1)).astype(np.float32),
                                         "cls": _onehot(rng, N_SAMPLES, 3)}),
                 dict(loss={"score": "mse", "cls": "categorical_crossentropy"}, loss_weights={"score": 0.5, "cls": 2.0},
                      metrics={"cls": ["accuracy"]})),
    "added_losses": (added_losses, lambda rng: (rng.uniform(-1, 1, (N_SAMPLES, 7)).astype(np.float32),
                                                _onehot(rng, N_SAMPLES, 3)),
                     dict(loss="categorical_crossentropy", metrics=["accuracy"])),
    "masked": (masked, lambda rng: (_padded(rng, N_SAMPLES, 7, 3),
                                    {"tags": rng.integers(0, 3, (N_SAMPLES, 7)).astype(np.int32),
                                     "score": rng.uniform(-1, 1, (N_SAMPLES, 1)).astype(np.float32)}),
               dict(loss={"tags": "sparse_categorical_crossentropy", "score": "mse"}, metrics={"tags": ["accuracy"]})),
}

OPTIMIZERS = {"sgd": ("SGD", dict(learning_rate=0.1, momentum=0.9)), "adam": ("Adam", dict(learning_rate=0.01))}


def compile_args(k, case, optimizer):
    """compile() keyword arguments for module ``k`` (keras or graphc)."""
    args = dict(CASES[case][2])
    if args["loss"] == "sparse_categorical_crossentropy_logits":
        args["loss"] = k.losses.SparseCategoricalCrossentropy(from_logits=True)
    cls, kwargs = OPTIMIZERS[optimizer]
    return dict(optimizer=getattr(k.optimizers, cls)(**kwargs), **args)


def initial_weights(model, rng):
    """Weights in a trainable regime (kernels scaled by fan-in), the same for both libraries."""
    out = []
    for w in model.get_weights():
        fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 0
        if fan_in:
            out.append(rng.uniform(-1, 1, w.shape).astype(np.float32) * np.float32(np.sqrt(3.0 / fan_in)))
        elif np.all(w == 1):  # BN gamma / moving variance
            out.append(np.ones_like(w))
        else:
            out.append(rng.uniform(-0.1, 0.1, w.shape).astype(np.float32) if np.any(w) or w.ndim else w)
    return out
