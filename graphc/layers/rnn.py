"""Recurrent layers SimpleRNN, LSTM and GRU (Keras 3 arguments, weights and results).

Each layer emits one whole-sequence IR op (``simple_rnn``, ``lstm``, ``gru``). Weights are those
of the Keras cell: kernel (F, k*u), recurrent_kernel (u, k*u), bias (k*u,) or, for GRU with
reset_after=True, (2, 3u). ``initial_state`` passed at call time is folded into the layer's
inputs ([x, *states]) so the functional API records the states as inbound tensors.
"""
from __future__ import annotations

import numpy as np

from .. import activations, initializers, ops, regularizers
from ..ir import format_shape
from ..ir.ops.elementwise import UNARY
from ..ir.ops.rnn import CELLS
from ..serialization import register, serialize_object
from ..tracing import emit
from .base import Layer
from .core import drop, reject_unsupported
from .input_spec import InputSpec
from .node import flatten
from .rnn_dropout import dropout_operands

# Keras activation name -> elementwise op name, where they differ.
_OP_NAME = {"linear": "identity", "exponential": "exp", "swish": "silu"}
SUPPORTED_ACTIVATIONS = sorted(n for n in activations.ALL if _OP_NAME.get(n, n) in UNARY)


class BaseRNN(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, the initial_state protocol, the op call."""

    op_kind = ""          # IR op name, also the key of CELLS
    cell_name = ""        # Keras names the cell sublayer this; weight paths include it
    _variables_subpath = "cell"  # Keras 3 stores an RNN's weights under layers/<name>/cell/vars
    has_recurrent_activation = True

    def __init__(self, units, *, activation, recurrent_activation, use_bias, kernel_initializer,
                 recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                 bias_regularizer, activity_regularizer, kernel_constraint, recurrent_constraint,
                 bias_constraint, dropout, recurrent_dropout, seed, return_sequences, return_state,
                 go_backwards, stateful, unroll, zero_output_for_mask=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{kind} '{self.name}': units must be a positive integer, received units={units!r}")
        reject_unsupported(self, kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                           bias_constraint=bias_constraint)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        if stateful:
            raise ValueError(f"{kind} '{self.name}': stateful=True is not supported by graphc: the state is not "
                             "carried between batches. Pass the state explicitly with initial_state= and "
                             "return_state=True instead.")
        self.units = int(units)
        self.activation = activations.get(activation)
        self._activation_op = self._op_activation(self.activation, "activation")
        if self.has_recurrent_activation:
            self.recurrent_activation = activations.get(recurrent_activation)
            self._recurrent_activation_op = self._op_activation(self.recurrent_activation, "recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        # Stored for the training stage; inference never drops units (as in Keras).
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.seed = seed
        # a seed for the masks, drawn now as Dropout's (set_random_seed fixes it)
        if seed is None and (0 < self.dropout < 1 or 0 < self.recurrent_dropout < 1):
            from ..utils.random import global_rng
            self._drawn_seed = int(global_rng().integers(0, 2**31 - 1))
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = False
        self.unroll = bool(unroll)  # no effect on results: the compiled loop is the same
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None
        self.input_spec = InputSpec(ndim=3)

    def _op_activation(self, fn, arg):
        name = getattr(fn, "__name__", repr(fn))
        if activations.ALL.get(name) is fn and _OP_NAME.get(name, name) in UNARY:
            return _OP_NAME.get(name, name)
        raise ValueError(f"{type(self).__name__} '{self.name}': {arg}={name!r} is not supported; recurrent layers "
                         f"take an elementwise activation, one of {SUPPORTED_ACTIVATIONS}")

    @property
    def state_size(self):
        return [self.units] * CELLS[self.op_kind][1]

    # --- initial_state: folded into the inputs so functional models record it -----------------------
    def __call__(self, *args, initial_state=None, **kwargs):
        if initial_state is not None:
            if not args:
                if "inputs" not in kwargs:
                    raise TypeError(f"Layer '{self.name}' was called without inputs")
                args = (kwargs.pop("inputs"),)
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            args = ([args[0], *states],) + args[1:]
        return super().__call__(*args, **kwargs)

    @staticmethod
    def _split(structure):
        """inputs -> (sequence, [initial states])."""
        if isinstance(structure, (list, tuple)):
            return structure[0], list(structure[1:])
        return structure, []

    def _check_input_spec(self, inputs):
        super()._check_input_spec(self._split(inputs)[0])  # the states are checked in call()

    def build(self, input_shape):
        is_list = isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (tuple, list))
        sequence_shape = tuple(input_shape[0] if is_list else input_shape)
        features = sequence_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the last axis (features) of its input must be "
                             f"known, received input shape {format_shape(sequence_shape)}")
        k, u = CELLS[self.op_kind][0], self.units
        self.kernel = self._add_cell_weight((features, k * u), self.kernel_initializer, "kernel",
                                            self.kernel_regularizer)
        self.recurrent_kernel = self._add_cell_weight((u, k * u), self.recurrent_initializer, "recurrent_kernel",
                                                      self.recurrent_regularizer)
        self.bias = (self._add_cell_weight(self._bias_shape(), self._bias_init(), "bias", self.bias_regularizer)
                     if self.use_bias else None)
        self.input_spec = InputSpec(ndim=3, axes={-1: features})
        self.built = True

    def _add_cell_weight(self, shape, initializer, name, regularizer=None):
        w = self.add_weight(shape, initializer, name=name, regularizer=regularizer)
        w.path = f"{self.name}/{self.cell_name}/{name}"  # Keras 3 keeps the weights in a cell sublayer
        return w

    def _bias_shape(self):
        return (CELLS[self.op_kind][0] * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    # --- calling ---------------------------------------------------------------------------------------
    def call(self, inputs, training=None, mask=None):
        kind = type(self).__name__
        sequence, states = self._split(inputs)
        if isinstance(mask, (list, tuple)):  # the inputs' own masks: Keras applies none with initial states
            mask = mask[0] if not states else None
        if self.unroll and sequence.shape[1] is None:
            raise ValueError(f"{kind} '{self.name}': cannot unroll an RNN whose number of timesteps is unknown "
                             f"(input shape {format_shape(sequence.shape)}); give the Input a fixed length")
        if states:
            self._check_states(sequence, states)
        params = [self.kernel, self.recurrent_kernel] + ([self.bias] if self.use_bias else [])
        # Training emits the op's training form, which also returns the per-step tensors that backprop
        # through time reads (graphc/ir/ops/rnn_grad.py), so the backward does not rerun the recurrence.
        seed = int(self.seed if self.seed is not None else getattr(self, "_drawn_seed", 0))
        attrs, extra = self._op_attrs(), []
        if training and 0 < self.recurrent_dropout < 1:  # per-gate masks (graphc/layers/rnn_dropout.py)
            sequence, params[0], rdrop = dropout_operands(self, sequence, params[0], seed)
            attrs["recurrent_masked"] = True
        elif training and 0 < self.dropout < 1:  # one mask per sample and input feature for every step (Keras's)
            sequence = drop(sequence, self.dropout, seed, (sequence.shape[0], 1, sequence.shape[2]))
        op_kind = f"{self.op_kind}_train" if training else self.op_kind
        if mask is not None:  # masked steps keep the states (and repeat the output): the op's mask input
            if states:
                raise ValueError(f"{kind} '{self.name}': graphc does not combine a mask with initial_state (Keras "
                                 "applies no mask to a layer given initial_state)")
            if tuple(mask.shape) != tuple(sequence.shape[:2]) and not (
                    len(mask.shape) == 2 and all(a is None or b is None or a == b
                                                 for a, b in zip(mask.shape, sequence.shape[:2]))):
                raise ValueError(f"{kind} '{self.name}': the mask must have shape (batch, timesteps) = "
                                 f"{format_shape(sequence.shape[:2])}, received {format_shape(mask.shape)}")
            attrs["masked"], extra = True, [ops.cast(mask, sequence.dtype)]
        if attrs.get("recurrent_masked"):
            extra.append(rdrop)
        outputs = list(emit(op_kind, sequence, *params, *states, *extra, **attrs)[:1 + CELLS[self.op_kind][1]])
        if mask is not None and self.zero_output_for_mask:  # zeros, not the repeated state, at masked steps
            keep = ops.cast(mask, sequence.dtype)
            keep = ops.flip(keep, axis=1) if self.go_backwards else keep  # (the output is in processing order)
            outputs[0] = outputs[0] * (ops.expand_dims(keep, -1) if self.return_sequences else keep[:, -1:])
        return outputs if self.return_state else outputs[0]

    def compute_mask(self, inputs, previous_mask):
        """The output's mask: the input's, for the sequence output (none for the last step or the states)."""
        mask = flatten(previous_mask)[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        out = mask if self.return_sequences else None
        return [out] + [None] * CELLS[self.op_kind][1] if self.return_state else out

    def _check_states(self, sequence, states):
        kind, n = type(self).__name__, CELLS[self.op_kind][1]
        if len(states) != n:
            raise ValueError(f"{kind} '{self.name}' expects {n} initial state tensor(s) of shape (batch_size, "
                             f"{self.units}), received {len(states)}: "
                             f"{[format_shape(s.shape) for s in states]}")
        batch = sequence.shape[0]
        for i, s in enumerate(states):
            shape = tuple(s.shape)
            if len(shape) != 2 or shape[1] != self.units or (None not in (batch, shape[0]) and batch != shape[0]):
                raise ValueError(f"{kind} '{self.name}': initial_state[{i}] must have shape "
                                 f"{format_shape((batch, self.units))}, received {format_shape(shape)} "
                                 f"(input sequence shape {format_shape(sequence.shape)})")

    def _op_attrs(self):
        attrs = {"units": self.units, "activation": self._activation_op, "use_bias": self.use_bias,
                 "return_sequences": self.return_sequences, "go_backwards": self.go_backwards}
        if self.has_recurrent_activation:
            attrs["recurrent_activation"] = self._recurrent_activation_op
        return attrs

    def reset_state(self):
        """No-op: graphc's recurrent layers are never stateful."""

    reset_states = reset_state

    # --- config ------------------------------------------------------------------------------------------
    def get_config(self):
        config = {**super().get_config(), "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": False,
                  "unroll": self.unroll, "zero_output_for_mask": self.zero_output_for_mask,
                  "units": self.units, "activation": activations.serialize(self.activation)}
        if self.has_recurrent_activation:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config.update({"use_bias": self.use_bias,
                       "kernel_initializer": serialize_object(self.kernel_initializer),
                       "recurrent_initializer": serialize_object(self.recurrent_initializer),
                       "bias_initializer": serialize_object(self.bias_initializer)})
        config.update(self._extra_config())
        config.update({"kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                       "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                       "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                       "activity_regularizer": regularizers.serialize(self.activity_regularizer), "kernel_constraint": None,
                       "recurrent_constraint": None,
                       "bias_constraint": None, "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                       "seed": self.seed})
        return config

    def _extra_config(self):
        return {}


def _check_use_cudnn(layer, use_cudnn):
    if use_cudnn not in ("auto", True, False):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': use_cudnn must be one of 'auto', True, False, "
                         f"received use_cudnn={use_cudnn!r}")


@register("layers")
class SimpleRNN(BaseRNN):
    """Fully-connected RNN: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    op_kind, cell_name, has_recurrent_activation = "simple_rnn", "simple_rnn_cell", False

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, seed=None, **kwargs):
        super().__init__(
            units, activation=activation, recurrent_activation=None, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)


@register("layers")
class LSTM(BaseRNN):
    """Long Short-Term Memory (Hochreiter 1997); gates i, f, c, o in the weight columns."""

    op_kind, cell_name = "lstm", "lstm_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", implementation=2,
                 **kwargs):
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        _check_use_cudnn(self, use_cudnn)
        self.use_cudnn = use_cudnn
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        u, init = self.units, self.bias_initializer

        def forget_gate_ones(shape, dtype="float32"):
            # As Keras: the forget-gate block is ones, the others come from bias_initializer.
            return np.concatenate([init((u,), dtype), np.ones((u,), dtype), init((2 * u,), dtype)])
        return forget_gate_ones

    def _extra_config(self):
        return {"unit_forget_bias": self.unit_forget_bias}


@register("layers")
class GRU(BaseRNN):
    """Gated Recurrent Unit (Cho et al. 2014); gates z, r, h in the weight columns."""

    op_kind, cell_name = "gru", "gru_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, reset_after=True, use_cudnn="auto", implementation=2, **kwargs):
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        _check_use_cudnn(self, use_cudnn)
        self.use_cudnn = use_cudnn
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        # reset_after keeps separate input and recurrent biases, stacked as rows
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _op_attrs(self):
        return {**super()._op_attrs(), "reset_after": self.reset_after}

    def _extra_config(self):
        return {"reset_after": self.reset_after}
