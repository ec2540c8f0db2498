"""random_uniform: counter-based uniform numbers in [0, 1), identical in the NumPy reference and in C.

``random_uniform(like, counter, seed=, stream=0, shape=None)`` has the shape of ``like`` (whose values are
not read), or ``shape`` with its None entries taken from ``like`` (Dropout's noise_shape). Element i (the
flat row-major index) is a pure function of (seed, stream, counter, i): graphc_random_uniform in
kernels/graphc_norm_grad.h, mirrored bit for bit by ``uniform_bits`` below. ``counter`` is an int32 scalar
(a training step's rng_counter), so masks differ from step to step and replay exactly.

C lowering: a pointwise op whose expression uses the loop index ``i`` of graphc/codegen/pointwise.py.
That ``i`` is the flat index of the loop root's output, which is this op's own flat index both when it is a
loop root and when it is inlined, since a pointwise op is only inlined into a consumer with the same output
shape (and so on up the chain).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z):
    """SplitMix64's output function on a uint64 array (products wrap modulo 2**64, as in C)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform_bits(seed, stream, counter, index):
    """The float32 values graphc_random_uniform gives for flat indices ``index`` (an int array)."""
    key = _mix64(np.array([(seed & 0xFFFFFFFF) << 32 | (stream & 0xFFFFFFFF)], np.uint64))
    key = _mix64(key ^ np.uint64(int(counter) & 0xFFFFFFFF))
    z = _mix64(key + (np.asarray(index, np.uint64) + np.uint64(1)) * _GOLDEN)
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _out_shape(like_shape, shape):
    if shape is None:
        return tuple(like_shape)
    return tuple(d if d is not None else ld for d, ld in zip(shape, like_shape))


def _random_uniform_type(like, counter, seed, stream=0, shape=None):
    if counter.shape != () or counter.dtype != "int32":
        raise ShapeError(f"random_uniform needs an int32 scalar counter, received {counter.dtype} {counter.shape}")
    if not isinstance(seed, int) or not isinstance(stream, int):
        raise ShapeError(f"random_uniform needs integer seed and stream, received seed={seed!r} stream={stream!r}")
    if shape is not None and (len(shape) != like.rank or any(d is not None and (not isinstance(d, int) or d < 1)
                                                             for d in shape)):
        raise ShapeError(f"random_uniform: shape {tuple(shape)} must have one positive size or None per axis of "
                         f"{like.shape}")
    return TensorType(_out_shape(like.shape, shape), "float32")


def _random_uniform_ref(like, counter, seed, stream=0, shape=None):
    out_shape = _out_shape(like.shape, shape)
    return uniform_bits(seed, stream, counter, np.arange(math.prod(out_shape), dtype=np.uint64)).reshape(out_shape)


def _random_uniform_c(args, seed, stream=0, shape=None):
    return (f"graphc_random_uniform({seed & 0xFFFFFFFF}u, {stream & 0xFFFFFFFF}u, (int32_t){args[1]}, "
            f"(int64_t)i)")


defop("random_uniform", infer=_random_uniform_type, reference=_random_uniform_ref, num_inputs=2)
OPS["random_uniform"].c_expr = _random_uniform_c
