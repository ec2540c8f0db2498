"""Keras 3 golden numbers for graphc.optimizers: writes tests/goldens_train/optimizers.npz.

Run from the repository root with Keras 3 on TensorFlow: `/work/venv-keras/bin/python
tools/make_optimizer_goldens.py`. Each case applies a real Keras optimizer to three variables with the
same fixed gradients for STEPS steps and stores its serialized config (JSON), the variables after step 1
and after the last step, and the optimizer's variables (names and values, in Keras's order); RESUME
cases also store the variables and optimizer state after step 2. The schedules are evaluated at fixed
steps. Seeds are fixed, so regenerating gives the same numbers.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "goldens_train", "optimizers.npz")
STEPS = 5
SHAPES = {"kernel": (3, 4), "bias": (4,), "w3": (2, 2, 3)}
S = keras.optimizers.schedules

CASES = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "sgd_clipnorm": lambda: keras.optimizers.SGD(0.1, clipnorm=1.0),
    "sgd_global_clipnorm": lambda: keras.optimizers.SGD(0.1, momentum=0.5, global_clipnorm=2.0),
    "sgd_weight_decay": lambda: keras.optimizers.SGD(0.1, weight_decay=0.05),
    "sgd_piecewise": lambda: keras.optimizers.SGD(S.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01])),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
    "rmsprop_momentum": lambda: keras.optimizers.RMSprop(0.01, momentum=0.9, rho=0.8),
    "rmsprop_centered": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "rmsprop_centered_plain": lambda: keras.optimizers.RMSprop(0.01, centered=True, epsilon=1e-3),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: keras.optimizers.Adam(0.01, amsgrad=True, beta_2=0.9),
    "adam_clipvalue": lambda: keras.optimizers.Adam(0.01, clipvalue=0.5),
    "adam_schedule": lambda: keras.optimizers.Adam(S.ExponentialDecay(0.01, 2, 0.5)),
    "adam_schedule_staircase": lambda: keras.optimizers.Adam(S.ExponentialDecay(0.01, 2, 0.5, staircase=True),
                                                             global_clipnorm=1.5),
    "adamw": lambda: keras.optimizers.AdamW(0.01),
    "adamw_options": lambda: keras.optimizers.AdamW(0.05, weight_decay=0.1, beta_1=0.8, amsgrad=True,
                                                    clipnorm=0.7),
    "adagrad": lambda: keras.optimizers.Adagrad(0.1),
    "adagrad_options": lambda: keras.optimizers.Adagrad(0.05, initial_accumulator_value=0.5, epsilon=1e-4,
                                                        clipnorm=0.5),
}

# Cases whose full state after step 2 is stored too, to check resuming from Keras-written state.
RESUME = ("sgd_momentum", "rmsprop_centered", "adam_amsgrad", "adam_schedule", "adamw", "adagrad_options")

SCHEDULES = {
    "exp": (lambda: S.ExponentialDecay(0.1, 3, 0.5), list(range(11))),
    "exp_staircase": (lambda: S.ExponentialDecay(0.1, 3, 0.5, staircase=True), list(range(11))),
    "exp_long": (lambda: S.ExponentialDecay(1.0, 1000, 0.96), [0, 1, 999, 1000, 2500, 100000]),
    "piecewise": (lambda: S.PiecewiseConstantDecay([2, 5], [0.1, 0.05, 0.01]), list(range(9))),
}


def fixed_data():
    rng = np.random.default_rng(1234)
    params = {k: rng.normal(size=s).astype("float32") for k, s in SHAPES.items()}
    grads = [{k: (rng.normal(size=s) * 1.5).astype("float32") for k, s in SHAPES.items()} for _ in range(STEPS)]
    grads[2]["bias"][:] = 0.0  # a zero gradient (clip_by_norm's special case)
    return params, grads


def main():
    params, grads = fixed_data()
    out = {}
    for k in SHAPES:
        out[f"param__{k}"] = params[k]
        for t in range(STEPS):
            out[f"grad{t}__{k}"] = grads[t][k]
    for case, make in CASES.items():
        keras.backend.clear_session()
        opt = make()
        out[f"{case}__config"] = np.array(json.dumps(keras.optimizers.serialize(opt)))
        variables = [keras.Variable(params[k], name=k) for k in SHAPES]
        for t in range(STEPS):
            opt.apply_gradients([(grads[t][k], v) for k, v in zip(SHAPES, variables)])
            if t == 0:
                for k, v in zip(SHAPES, variables):
                    out[f"{case}__step1__{k}"] = v.numpy()
            if t == 1 and case in RESUME:
                for k, v in zip(SHAPES, variables):
                    out[f"{case}__step2__{k}"] = v.numpy()
                for i, v in enumerate(opt.variables):
                    out[f"{case}__state2_{i}"] = np.asarray(v.numpy())
        for k, v in zip(SHAPES, variables):
            out[f"{case}__final__{k}"] = v.numpy()
        out[f"{case}__opt_names"] = np.array([v.path for v in opt.variables])
        for i, v in enumerate(opt.variables):
            out[f"{case}__opt{i}"] = np.asarray(v.numpy())
    for name, (make, steps) in SCHEDULES.items():
        sched = make()
        out[f"schedule_{name}__config"] = np.array(json.dumps(S.serialize(sched)))
        out[f"schedule_{name}__steps"] = np.array(steps, dtype="int64")
        out[f"schedule_{name}__values"] = np.array([float(sched(s)) for s in steps], dtype="float64")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {len(out)} arrays to {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
