"""Write tests/goldens_grad/<case>.npz: Keras 3's gradients (TensorFlow backend) for every case of
tests/golden_cases.py, from the weights and inputs of the forward goldens (tests/goldens/<case>.npz).

Run from the repository root with the Keras virtualenv:

    /work/venv-keras/bin/python tools/make_grad_goldens.py [case ...]

For each batch size B the scalar is L = sum_k sum(output_k * r<k>_b<B>), r drawn here and stored; the file
holds dL/dw for the trainable weights (``gw<i>_b<B>``, i indexing ``model.trainable_weights``) and dL/dx
for the float inputs (``gx<j>_b<B>``), computed with tf.GradientTape at inference (training=False).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import golden_cases  # noqa: E402

IN_DIR = os.path.join(ROOT, "tests", "goldens")
OUT_DIR = os.path.join(ROOT, "tests", "goldens_grad")


def make(keras, tf, name, build):
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    model = build(keras)
    with np.load(os.path.join(IN_DIR, f"{name}.npz")) as g:
        golden = dict(g)
    n_w = sum(1 for k in golden if k.startswith("w"))
    model.set_weights([golden[f"w{i}"] for i in range(n_w)])
    rng = np.random.default_rng(golden_cases.case_seed(name) + 1)
    arrays = {}
    for batch in golden_cases.BATCH_SIZES:
        inputs = [golden[f"in{j}_b{batch}"] for j in range(len(build.feeds))]
        xs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            float_xs = [x for x in xs if x.dtype.is_floating]
            tape.watch(float_xs)
            out = model(xs if len(xs) > 1 else xs[0], training=False)
            outs = out if isinstance(out, (list, tuple)) else [out]
            rs = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outs]
            loss = tf.add_n([tf.reduce_sum(o * r) for o, r in zip(outs, rs)])
        grads = tape.gradient(loss, [v.value for v in model.trainable_weights] + float_xs)
        for k, r in enumerate(rs):
            arrays[f"r{k}_b{batch}"] = r
        n_tw = len(model.trainable_weights)
        for i, g in enumerate(grads[:n_tw]):
            arrays[f"gw{i}_b{batch}"] = np.zeros(model.trainable_weights[i].shape, np.float32) if g is None \
                else np.asarray(tf.convert_to_tensor(g), np.float32)
        for j, (g, x) in enumerate(zip(grads[n_tw:], float_xs)):  # None: not differentiable (float ids)
            arrays[f"gx{j}_b{batch}"] = np.zeros(x.shape, np.float32) if g is None else np.asarray(g, np.float32)
    np.savez_compressed(os.path.join(OUT_DIR, f"{name}.npz"), **arrays)


def main(names):
    import keras
    import tensorflow as tf
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in names or sorted(golden_cases.CASES):
        make(keras, tf, name, golden_cases.CASES[name])
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1:])
