"""Train the seed MLP and a small CNN on real handwritten digits with graphc, and report test accuracy.

    python examples/train_digits.py             # scikit-learn's 8x8 digits (ships with the package)
    python examples/train_digits.py --mnist     # MNIST, from a local mnist.npz or IDX files (see
                                                # graphc.datasets.mnist.load_data for where to put them)

Every training step runs as one call into compiled C (forward, loss, backward and Adam update).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import graphc
from graphc import layers


def seed_mlp(shape, classes=10):
    """Seed 003's MLP: Dense(512, relu) -> Dense(216, relu) -> Dense(128, relu) -> Dense(10, softmax)."""
    return graphc.Sequential([graphc.Input(shape), layers.Flatten(), layers.Dense(512, activation="relu"),
                              layers.Dense(216, activation="relu"), layers.Dense(128, activation="relu"),
                              layers.Dense(classes, activation="softmax")], name="seed_mlp")


def small_cnn(shape, classes=10):
    return graphc.Sequential([graphc.Input(shape), layers.Conv2D(32, 3, padding="same", activation="relu"),
                              layers.MaxPooling2D(2), layers.Conv2D(64, 3, padding="same", activation="relu"),
                              layers.Flatten(), layers.Dense(128, activation="relu"),
                              layers.Dense(classes, activation="softmax")], name="small_cnn")


def load(mnist: bool):
    """((x_train, y_train), (x_test, y_test)) as float32 images in [0, 1] of shape (n, h, w, 1)."""
    if mnist:
        (xt, yt), (xs, ys) = graphc.datasets.mnist.load_data()
        scale = 255.0
    else:
        (xt, yt), (xs, ys) = graphc.datasets.digits.load_data(test_split=0.25, seed=0)
        scale = 16.0
    prep = lambda x: (x.astype("float32") / scale)[..., None]  # noqa: E731
    return (prep(xt), yt.astype("int32")), (prep(xs), ys.astype("int32"))


def train(model, data, epochs, batch_size=32, verbose=0, seed=0):
    """Compile with Adam and sparse categorical cross-entropy, fit, and return the test accuracy."""
    (xt, yt), (xs, ys) = data
    model.compile(optimizer=graphc.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    graphc.utils.set_random_seed(seed)  # the shuffling order
    model.fit(xt, yt, epochs=epochs, batch_size=batch_size, verbose=verbose, validation_split=0.1)
    return model.evaluate(xs, ys, verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", action="store_true", help="train on MNIST files instead of the 8x8 digits")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    data = load(args.mnist)
    shape = data[0][0].shape[1:]
    for build, epochs in ((seed_mlp, 20), (small_cnn, 20)):
        graphc.utils.set_random_seed(0)  # the initial weights
        model = build(shape)
        start = time.perf_counter()
        accuracy = train(model, data, args.epochs or epochs, verbose=2)
        print(f"{model.name}: test accuracy {accuracy:.4f} ({time.perf_counter() - start:.1f} s, "
              f"{len(data[0][0])} training images of {shape})")


if __name__ == "__main__":
    main()
