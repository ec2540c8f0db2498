"""Targets and sample weights for fit/evaluate: Keras's accepted structures, checked before any compile."""
from __future__ import annotations

import math

import numpy as np


def output_keys(model):
    """The names that key per-output arguments: a dict of outputs' own keys, else the output layers' names."""
    struct = model._output_struct
    if isinstance(struct, dict) and all(not isinstance(v, (dict, list, tuple)) for v in struct.values()):
        return list(struct)
    return model.output_names


def per_output(model, value, what, allow_single=True):
    """``value`` (one item, a list in output order, or a dict keyed by output names) -> list per output."""
    names = output_keys(model)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"Model '{model.name}': {what} has unknown key(s) {unknown}; the outputs are {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(f"Model '{model.name}' has {len(names)} outputs {names}; {what} has {len(value)} "
                             "entries. Give one per output (a list in output order, or a dict keyed by name)")
        return list(value)
    if isinstance(value, (list, tuple)) and len(names) == 1 and len(value) == 1:
        return [value[0]]  # [item] for a single output
    if len(names) > 1 and not allow_single:
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs {names}; give {what} as a list "
                         "or a dict keyed by output names")
    return [value] * len(names) if len(names) > 1 else [value]


def targets(model, spec, y, n):
    """Target arrays per output (None for outputs without a loss), checked against the losses."""
    if y is None:
        raise ValueError(f"Model '{model.name}': targets (y) are required to compute the loss")
    names = output_keys(model)
    if isinstance(y, dict):
        missing = [nm for nm, loss in zip(names, spec.losses) if loss is not None and nm not in y]
        if missing:
            raise ValueError(f"Model '{model.name}': no target for output(s) {missing}; received keys "
                             f"{sorted(y)}, the outputs with a loss are "
                             f"{[nm for nm, loss in zip(names, spec.losses) if loss is not None]}")
    # (what per_output gives for one array and one output, without looking the output names up again)
    ys = [y] if len(names) == 1 and type(y) is np.ndarray else per_output(model, y, "y")
    out = []
    for k, (t, loss, kt) in enumerate(zip(ys, spec.losses, model.outputs)):
        if loss is None:
            out.append(None)
            continue
        if t is None:
            raise ValueError(f"Model '{model.name}': no target for output '{names[k]}'")
        t = np.asarray(t)
        if t.dtype == object or t.dtype.kind not in "biuf":
            raise TypeError(f"Model '{model.name}': the target for output '{names[k]}' must be numeric, "
                            f"received dtype {t.dtype}")
        if t.ndim == 0 or t.shape[0] != n:
            raise ValueError(f"Model '{model.name}': the target for output '{names[k]}' has shape {t.shape}, "
                             f"but the inputs have {n} samples")
        loss.check_target_shape(t.shape, tuple(kt.shape), names[k])
        t = np.ascontiguousarray(t, dtype=loss.target_dtype)
        loss.check_target_values(t, tuple(kt.shape), names[k])
        out.append(t)
    return out


def sample_weights(model, spec, sample_weight, class_weight, ys, n):
    """float32 weights per output with a loss, of shape (n,), or (n, steps) for a sequence output weighted per
    timestep (the loss checks that they fit its values); None where none are given (Keras's losses then see
    no weights at all)."""
    if sample_weight is None and class_weight is None:  # the common call: no weights anywhere
        return [None] * len(ys)
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"Model '{model.name}': sample_weight and class_weight cannot be given together (as in "
                         "Keras); give sample_weight alone, multiplied by each sample's class weight")
    names = output_keys(model)
    sws = per_output(model, sample_weight, "sample_weight") if sample_weight is not None else [None] * len(names)
    out = []
    for k, (sw, t) in enumerate(zip(sws, ys)):
        if t is None:
            out.append(None)
            continue
        if sw is None:
            sw = np.ones(n, np.float32) if class_weight is not None else None
        else:
            sw = np.asarray(sw, dtype=np.float32)
            if sw.ndim == 2 and sw.shape[1] == 1:
                sw = sw[:, 0]
            if sw.ndim == 0 or sw.shape[0] != n:
                raise ValueError(f"Model '{model.name}': sample_weight for output '{names[k]}' must have one weight "
                                 f"per sample, shape ({n},) (or ({n}, steps) per timestep of a sequence output), "
                                 f"received {sw.shape}")
        out.append(None if sw is None else np.ascontiguousarray(sw))
    if class_weight is not None:
        live = [k for k, t in enumerate(ys) if t is not None]
        if len(live) != 1:
            raise ValueError("class_weight is only supported for models with a single output, as in Keras")
        k = live[0]
        out[k] = out[k] * _class_weights(class_weight, ys[k])
    return out


def _class_weights(class_weight, y):
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class index: weight}}, received {type(class_weight).__name__}")
    if y.ndim >= 2 and y.shape[-1] > 1:
        labels = np.argmax(y, axis=-1)
    else:
        labels = np.round(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    table = np.ones(max([int(c) for c in class_weight] + [int(labels.max(initial=0))]) + 1, np.float32)
    for c, w in class_weight.items():
        table[int(c)] = float(w)
    missing = sorted(set(np.unique(labels).tolist()) - {int(c) for c in class_weight})
    if missing:
        raise ValueError(f"class_weight has no entry for class(es) {missing[:10]} present in the targets; "
                         f"expected keys 0..{table.size - 1}")
    return table[labels.reshape(len(labels), -1)[:, 0]]


def split_validation(arrays, validation_split):
    """Keras's split: the last ``validation_split`` fraction of the samples, taken before shuffling."""
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be between 0 and 1, received {validation_split}")
    n = _length(arrays)
    at = int(math.floor(n * (1 - validation_split)))
    if at == 0 or at == n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves no training or no "
                         "validation samples")
    take = lambda a, s: None if a is None else a[s]  # noqa: E731
    return ([[take(a, slice(0, at)) for a in group] for group in arrays],
            [[take(a, slice(at, None)) for a in group] for group in arrays])


def _length(groups):
    return next(len(a) for group in groups for a in group if a is not None)


def batches(groups, batch_size, shuffle, rng):
    """Yield (xs, ys, sws) slices of ``batch_size`` samples (the last batch may be smaller)."""
    n = _length(groups)
    order = rng.permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
        yield [[None if a is None else _rows(a, idx) for a in group] for group in groups]


def _rows(a, idx):
    """``a[idx]`` as a C-contiguous array; ``idx`` a slice or an array of row numbers (which np.take gathers
    faster than indexing does)."""
    return np.ascontiguousarray(a[idx]) if isinstance(idx, slice) else np.take(a, idx, axis=0)
