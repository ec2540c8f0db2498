"""Write tests/goldens_train/fit_<case>_<optimizer>.npz: one epoch of ``fit`` in real Keras 3
(TensorFlow backend, shuffle off) for every case of tests/train_cases.py and each optimizer there.

    /work/venv-keras/bin/python tools/make_train_goldens.py

Each file holds the initial weights ``w0..`` (get_weights order), the data (``x_<name>``, ``y_<name>``),
the weights after the epoch ``final0..`` and the epoch's logs ``log_<key>``.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import train_cases  # noqa: E402

OUT_DIR = os.path.join(ROOT, "tests", "goldens_train")


def _as_dict(value, names):
    return value if isinstance(value, dict) else dict(zip(names, value if isinstance(value, list) else [value]))


def main():
    import keras
    os.makedirs(OUT_DIR, exist_ok=True)
    for case, (build, data, _) in train_cases.CASES.items():
        for opt in train_cases.OPTIMIZERS:
            keras.utils.set_random_seed(0)
            keras.backend.clear_session()
            model = build(keras)
            rng = np.random.default_rng(sum(map(ord, case)))
            weights = train_cases.initial_weights(model, rng)
            model.set_weights(weights)
            x, y = data(rng)
            model.compile(**train_cases.compile_args(keras, case, opt))
            history = model.fit(x, y, batch_size=train_cases.BATCH, epochs=1, shuffle=False, verbose=0)
            arrays = {f"w{i}": w for i, w in enumerate(weights)}
            arrays.update({f"final{i}": w for i, w in enumerate(model.get_weights())})
            arrays.update({f"x_{k}": v for k, v in _as_dict(x, [t.name for t in model.inputs]).items()})
            arrays.update({f"y_{k}": v for k, v in _as_dict(y, model.output_names).items()})
            arrays.update({f"log_{k}": np.float64(v[-1]) for k, v in history.history.items()})
            np.savez_compressed(os.path.join(OUT_DIR, f"fit_{case}_{opt}.npz"), **arrays)
            print("wrote", case, opt, {k: round(float(v[-1]), 4) for k, v in history.history.items()})


if __name__ == "__main__":
    main()
