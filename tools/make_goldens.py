"""Write tests/goldens/<case>.npz from real Keras 3 (TensorFlow backend) for every case in
tests/golden_cases.py.

Run from the repository root with the Keras virtualenv (graphc itself never needs Keras):

    /work/venv-keras/bin/python tools/make_goldens.py [case ...]

Each file holds the weights ``w0..wn`` in Keras ``get_weights()`` order and layouts, and for each
batch size B in BATCH_SIZES the inputs ``in<j>_b<B>`` and Keras's outputs ``out<k>_b<B>``.
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

OUT_DIR = os.path.join(ROOT, "tests", "goldens")
MAX_TOTAL_BYTES = 2 * 1024 * 1024


def random_weight(rng, variable, owner):
    """Values in the regime trained models live in: kernels scaled by fan-in so activations stay O(1)
    through deep stacks (a tight tolerance then means something), small biases (large negative ones
    kill whole ReLU outputs), positive BatchNormalization variance."""
    name = variable.name
    shape = tuple(variable.shape)
    if name in ("kernel", "recurrent_kernel", "depthwise_kernel", "pointwise_kernel"):
        if "Transpose" in type(owner).__name__:  # kernel (*spatial, out, in)
            fan_in = int(np.prod(shape[:-2])) * shape[-1]
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        limit = min(1.0, float(np.sqrt(6.0 / max(fan_in, 1))))
        values = rng.uniform(-limit, limit, shape)
    elif name in ("gamma", "moving_variance"):
        values = rng.uniform(0.5, 1.5, shape)
    elif name == "embeddings":
        values = rng.uniform(-1.0, 1.0, shape)
    elif name == "bias":
        values = rng.uniform(-0.2, 0.2, shape)
    else:  # beta, moving_mean
        values = rng.uniform(-0.5, 0.5, shape)
    return values.astype(variable.dtype if isinstance(variable.dtype, str) else "float32")


def make_golden(keras, name, build):
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    model = build(keras)
    rng = np.random.default_rng(golden_cases.case_seed(name))
    owners = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):  # outer first, cells last
        owners.update((id(v), layer) for v in layer.weights)
    weights = [random_weight(rng, v, owners[id(v)]) for v in model.weights]
    model.set_weights(weights)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    for batch in golden_cases.BATCH_SIZES:
        inputs = [feed.draw(rng, batch) for feed in build.feeds]
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], batch_size=batch, verbose=0)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for j, x in enumerate(inputs):
            arrays[f"in{j}_b{batch}"] = x
        for j, y in enumerate(outputs):
            y = np.asarray(y)
            if not np.all(np.isfinite(y)):
                raise ValueError(f"{name}: Keras output {j} is not finite")
            if batch > 1 and (np.ptp(y) == 0 or np.mean(y != 0) < 0.05):  # e.g. a dead final ReLU
                raise ValueError(f"{name}: Keras output {j} is constant or almost all zero, so it would "
                                 "check little; give the case another weight seed (@feeds(..., seed=n))")
            arrays[f"out{j}_b{batch}"] = y.astype(np.float32)
    path = os.path.join(OUT_DIR, f"{name}.npz")
    np.savez_compressed(path, **arrays)
    return path


def main(argv):
    import keras
    names = argv or list(golden_cases.CASES)
    unknown = [n for n in names if n not in golden_cases.CASES]
    if unknown:
        raise SystemExit(f"unknown case(s): {unknown}")
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in names:
        path = make_golden(keras, name, golden_cases.CASES[name])
        print(f"{name:45s} {os.path.getsize(path):8d} bytes")
    stale = sorted(f for f in os.listdir(OUT_DIR) if f.endswith(".npz") and f[:-4] not in golden_cases.CASES)
    for f in stale:
        os.remove(os.path.join(OUT_DIR, f))
        print(f"removed stale {f}")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"keras {keras.__version__}: {len(os.listdir(OUT_DIR))} goldens, {total} bytes")
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"goldens total {total} bytes > {MAX_TOTAL_BYTES}: reduce case sizes")


if __name__ == "__main__":
    main(sys.argv[1:])
