"""Write tests/goldens_train/rnn_dropout.npz: Keras 3's recurrent layers (TensorFlow backend) in training with
dropout and recurrent_dropout, their dropout masks fixed, for tests/test_rnn_dropout.py.

Run from the repository root with the Keras virtualenv:

    /work/venv-keras/bin/python tools/make_rnn_dropout_goldens.py

Keras draws its masks at random; here each cell's get_dropout_mask and get_recurrent_dropout_mask return masks
drawn by NumPy (0 or 1 / (1 - rate), one per gate as Keras's implementation 1 uses them), stored in the file
so that graphc can apply the same ones. For each case the file holds the inputs ``<case>_x``, the weights
``<case>_w<i>`` (kernel, recurrent_kernel, bias), the masks ``<case>_in<g>`` and ``<case>_rec<g>``, the
output ``<case>_out`` and, for L = sum(output * R) with R = default_rng(0).standard_normal(output shape) (what
tests/grad_check.py draws), dL/dx and dL/dw as ``<case>_gx`` and ``<case>_gw<i>``.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from rnn_dropout_cases import BATCH, CASES, FEATURES, STEPS, gates  # noqa: E402

OUT = os.path.join(ROOT, "tests", "goldens_train", "rnn_dropout.npz")


def mask(rng, shape, rate):
    return (rng.random(shape) >= rate).astype(np.float32) / np.float32(1 - rate)


def main():
    import keras
    import tensorflow as tf
    arrays = {}
    for n, (case, (cls, kwargs)) in enumerate(CASES.items()):
        keras.utils.set_random_seed(0)
        layer = getattr(keras.layers, cls)(**kwargs)
        rng = np.random.default_rng(100 + n)
        x = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
        layer.build(x.shape)
        weights = [(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.get_weights()]
        layer.set_weights(weights)
        k = gates(cls)
        ins = [mask(rng, (BATCH, FEATURES), kwargs["dropout"]) for _ in range(k)]
        recs = [mask(rng, (BATCH, kwargs["units"]), kwargs["recurrent_dropout"]) for _ in range(k)]
        # the fixed masks, in the form each cell asks for: a list per gate, one tensor for SimpleRNN
        layer.cell.get_dropout_mask = lambda _, m=ins: m if len(m) > 1 else m[0]
        layer.cell.get_recurrent_dropout_mask = lambda _, m=recs: m if len(m) > 1 else m[0]
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = layer(xt, training=True)
            r = np.random.default_rng(0).standard_normal(tuple(out.shape)).astype(np.float32)
            loss = tf.reduce_sum(out * r)
        grads = tape.gradient(loss, [xt] + [v.value for v in layer.trainable_weights])
        arrays[f"{case}_x"], arrays[f"{case}_out"] = x, np.asarray(out)
        arrays[f"{case}_gx"] = np.asarray(grads[0])
        for i, (w, g) in enumerate(zip(weights, grads[1:])):
            arrays[f"{case}_w{i}"], arrays[f"{case}_gw{i}"] = w, np.asarray(tf.convert_to_tensor(g))
        for g in range(k):
            arrays[f"{case}_in{g}"], arrays[f"{case}_rec{g}"] = ins[g], recs[g]
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()
