"""The five benchmark models (shared/BENCHMARK_MODELS.md) in graphc, Keras and PyTorch, same weights.

graphc and Keras share one builder: it takes the module (`graphc` or `keras`) and uses only the
Keras API, so both get the same layers, names and weight layouts. PyTorch gets hand-written modules
whose weights are converted from the Keras layout:

- Dense kernel (in, out) -> Linear.weight (out, in).
- Conv2D kernel (kh, kw, cin, cout) -> Conv2d.weight (cout, cin, kh, kw). PyTorch runs in NCHW
  (its default memory format): `torch_input` transposes the NHWC input once, outside any timing.
- Flatten: Keras flattens NHWC as (h, w, c), PyTorch's NCHW flatten gives (c, h, w); the rows of
  the Dense kernel after Flatten are permuted to (c, h, w) order, so PyTorch flattens natively.
- LSTM: both use gate order i, f, c(g), o; kernel (in, 4u) and recurrent kernel (u, 4u) are
  transposed into weight_ih / weight_hh; Keras's single bias goes to bias_ih, bias_hh is zero.

Only numpy is imported at module level: torch is imported by the functions that need it, so a
process that runs graphc alone never loads another framework's threading runtime.
"""
from __future__ import annotations

import functools

import numpy as np

MODEL_KEYS = ("mlp", "cnn", "resnet", "lstm784", "lstm28")
INPUT_SHAPES = {"mlp": (784,), "cnn": (28, 28, 1), "resnet": (32, 32, 3), "lstm784": (784, 1), "lstm28": (28, 28)}
PARAMS = {"mlp": 541_794, "cnn": 225_034, "resnet": 223_242, "lstm784": 84_362, "lstm28": 98_186}
IMAGE_MODELS = ("cnn", "resnet")  # NHWC input, transposed to NCHW for PyTorch / ONNX


# --- graphc and Keras: one builder per model, given the framework module ---------------------------------
def _mlp(k):
    L = k.layers
    inputs = k.Input(shape=(784,), name="input")
    x = L.Dense(512, activation="relu", name="dense1")(inputs)
    x = L.Dense(216, activation="relu", name="dense2")(x)
    x = L.Dense(128, activation="relu", name="dense3")(x)
    outputs = L.Dense(10, activation="softmax", name="output")(x)
    return k.Model(inputs, outputs, name="mlp")


def _cnn(k):
    L = k.layers
    inputs = k.Input(shape=(28, 28, 1), name="input")
    x = L.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(128, activation="relu", name="dense1")(x)
    outputs = L.Dense(10, name="output")(x)
    return k.Model(inputs, outputs, name="cnn")


def _resnet(k):
    """Seed 002's toy ResNet; its Dropout is inactive at inference."""
    L = k.layers
    inputs = k.Input(shape=(32, 32, 3), name="img")
    x = L.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
    block_1_output = L.MaxPooling2D(3, name="pool")(x)
    x = L.Conv2D(64, 3, activation="relu", padding="same", name="block2_conv1")(block_1_output)
    x = L.Conv2D(64, 3, activation="relu", padding="same", name="block2_conv2")(x)
    block_2_output = L.add([x, block_1_output], name="block2_add")
    x = L.Conv2D(64, 3, activation="relu", padding="same", name="block3_conv1")(block_2_output)
    x = L.Conv2D(64, 3, activation="relu", padding="same", name="block3_conv2")(x)
    block_3_output = L.add([x, block_2_output], name="block3_add")
    x = L.Conv2D(64, 3, activation="relu", name="conv3")(block_3_output)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(256, activation="relu", name="dense1")(x)
    x = L.Dropout(0.5, name="dropout")(x)
    outputs = L.Dense(10, name="output")(x)
    return k.Model(inputs, outputs, name="toy_resnet")


def _lstm(timesteps, features):
    def build(k):
        L = k.layers
        inputs = k.Input(shape=(timesteps, features), name="input")
        x = L.LSTM(128, name="lstm")(inputs)
        x = L.Dense(128, activation="relu", name="dense1")(x)
        outputs = L.Dense(10, activation="softmax", name="output")(x)
        return k.Model(inputs, outputs, name=f"lstm{timesteps}")
    return build


BUILDERS = {"mlp": _mlp, "cnn": _cnn, "resnet": _resnet, "lstm784": _lstm(784, 1), "lstm28": _lstm(28, 28)}


def build(key: str, framework, weights: dict = None):
    """The model `key` in `framework` (the module `graphc` or `keras`), with `weights` if given."""
    model = BUILDERS[key](framework)
    if weights is not None:
        for layer in model.layers:
            if layer.name in weights:
                layer.set_weights(weights[layer.name])
    return model


def layer_weights(model) -> dict:
    """{layer name: [arrays in Keras order]} for every layer that has weights."""
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers
            if layer.get_weights()}


def random_weights(model, seed: int) -> dict:
    """Glorot-uniform-scaled random kernels and small random (non-zero) biases, so that a bias or a
    layout mistake in any conversion shows up as a mismatch instead of hiding behind zeros."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, arrays in layer_weights(model).items():
        new = []
        for w in arrays:
            if w.ndim >= 2:
                receptive = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
                fan_in, fan_out = w.shape[-2] * receptive, w.shape[-1] * receptive
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                new.append(rng.uniform(-limit, limit, w.shape).astype(np.float32))
            else:
                new.append(rng.uniform(-0.1, 0.1, w.shape).astype(np.float32))
        out[name] = new
    return out


def random_input(key: str, batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((batch,) + INPUT_SHAPES[key], dtype=np.float32)


# --- PyTorch ---------------------------------------------------------------------------------------------
def torch_input(key: str, x: np.ndarray):
    """The PyTorch input for the NHWC/sequence array `x` (NCHW for image models; a copy, made once)."""
    import torch
    if key in IMAGE_MODELS:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return torch.from_numpy(np.ascontiguousarray(x))


@functools.lru_cache(maxsize=None)
def _torch_classes():
    import torch
    from torch import nn

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3)
            self.pool = nn.MaxPool2d(3)
            self.block2_conv1 = nn.Conv2d(64, 64, 3, padding=1)
            self.block2_conv2 = nn.Conv2d(64, 64, 3, padding=1)
            self.block3_conv1 = nn.Conv2d(64, 64, 3, padding=1)
            self.block3_conv2 = nn.Conv2d(64, 64, 3, padding=1)
            self.conv3 = nn.Conv2d(64, 64, 3)
            self.dense1 = nn.Linear(64, 256)
            self.dropout = nn.Dropout(0.5)
            self.output = nn.Linear(256, 10)

        def forward(self, x):
            relu = torch.relu
            x = relu(self.conv2(relu(self.conv1(x))))
            b1 = self.pool(x)
            b2 = relu(self.block2_conv2(relu(self.block2_conv1(b1)))) + b1
            b3 = relu(self.block3_conv2(relu(self.block3_conv1(b2)))) + b2
            x = relu(self.conv3(b3)).mean(dim=(2, 3))
            return self.output(self.dropout(relu(self.dense1(x))))

    class LSTMNet(nn.Module):
        def __init__(self, features):
            super().__init__()
            self.lstm = nn.LSTM(features, 128, batch_first=True)
            self.dense1 = nn.Linear(128, 128)
            self.output = nn.Linear(128, 10)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return torch.softmax(self.output(torch.relu(self.dense1(h[-1]))), dim=-1)

    def mlp():
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 216), nn.ReLU(),
                             nn.Linear(216, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=-1))

    def cnn():
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))

    return {"mlp": mlp, "cnn": cnn, "resnet": ResNet, "lstm784": lambda: LSTMNet(1), "lstm28": lambda: LSTMNet(28)}


def _dense(kernel, bias):
    return {"weight": kernel.T, "bias": bias}


def _conv(kernel, bias):
    return {"weight": kernel.transpose(3, 2, 0, 1), "bias": bias}


def _flattened_dense(kernel, bias, hwc):
    """A Dense after an NHWC Flatten, for a PyTorch NCHW Flatten: rows (h, w, c) -> (c, h, w)."""
    h, w, c = hwc
    rows = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return _dense(rows, bias)


def _lstm_state(kernel, recurrent_kernel, bias):
    return {"weight_ih_l0": kernel.T, "weight_hh_l0": recurrent_kernel.T,
            "bias_ih_l0": bias, "bias_hh_l0": np.zeros_like(bias)}


def torch_state(key: str, weights: dict) -> dict:
    """The PyTorch state_dict (numpy arrays) equal to the Keras-layout `weights` of model `key`."""
    w = weights
    if key == "mlp":
        state = {}
        for i, name in enumerate(["dense1", "dense2", "dense3", "output"]):
            state.update({f"{2 * i}.{k}": v for k, v in _dense(*w[name]).items()})
        return state
    if key == "cnn":
        parts = {"0": _conv(*w["conv1"]), "3": _conv(*w["conv2"]),
                 "7": _flattened_dense(*w["dense1"], hwc=(5, 5, 64)), "9": _dense(*w["output"])}
        return {f"{i}.{k}": v for i, p in parts.items() for k, v in p.items()}
    if key == "resnet":
        state = {}
        for name, arrays in w.items():
            convert = _conv if arrays[0].ndim == 4 else _dense
            state.update({f"{name}.{k}": v for k, v in convert(*arrays).items()})
        return state
    if key in ("lstm784", "lstm28"):
        state = {f"lstm.{k}": v for k, v in _lstm_state(*w["lstm"]).items()}
        for name in ("dense1", "output"):
            state.update({f"{name}.{k}": v for k, v in _dense(*w[name]).items()})
        return state
    raise KeyError(key)


def torch_model(key: str, weights: dict):
    """The PyTorch module of model `key` in eval mode, holding `weights` (Keras layout)."""
    import torch
    module = _torch_classes()[key]()
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
             for k, v in torch_state(key, weights).items()}
    module.load_state_dict(state, strict=True)  # strict: every parameter of the module is set
    return module.eval()
