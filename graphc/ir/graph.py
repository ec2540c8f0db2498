"""SSA graph: values with static types, ops with attributes, named inputs and outputs.

A value is produced either by an op, or is a graph input (fed per call), a
parameter (a weight, fed from its owner's storage) or a constant (data held by
the graph). Ops are kept in a topological order.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .registry import get_op
from .types import ShapeError, TensorType

_ids = itertools.count()


class Value:
    __slots__ = ("id", "type", "kind", "op", "index", "name")

    def __init__(self, type: TensorType, kind: str, name: str = "", op: "Optional[Op]" = None, index: int = 0):
        self.id = next(_ids)
        self.type = type
        self.kind = kind  # "input" | "param" | "const" | "op"
        self.name = name
        self.op = op
        self.index = index

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self):
        return f"%{self.id}:{self.type}"


@dataclass(eq=False)
class Op:
    kind: str
    inputs: list
    attrs: dict
    outputs: list = field(default_factory=list)
    scope: str = ""  # the layer that emitted the op, for errors and generated-code comments

    def __repr__(self):
        ins = ", ".join(repr(v) for v in self.inputs)
        outs = ", ".join(repr(v) for v in self.outputs)
        return f"{outs} = {self.kind}({ins}) {self.attrs or ''}  # {self.scope}"


@dataclass(eq=False)
class Graph:
    inputs: list                 # Values of kind "input"
    outputs: list                # Values
    ops: list                    # Ops in topological order
    params: list                 # Values of kind "param"
    param_keys: dict             # param Value.id -> key of the owner's storage (e.g. a Variable)
    constants: dict              # const Value.id -> ndarray
    rng_counter: object = None   # the input numbering random draws (training-mode Dropout), if any
    updates: list = field(default_factory=list)  # (variable, Value): state a training-mode call writes back

    def __str__(self):
        lines = [f"graph({', '.join(f'{v.name}: {v!r}' for v in self.inputs)})"]
        lines += [f"  param {v.name}: {v!r}" for v in self.params]
        lines += [f"  {op!r}" for op in self.ops]
        lines.append(f"  return {', '.join(repr(v) for v in self.outputs)}")
        return "\n".join(lines)


class GraphBuilder:
    """Appends ops while checking every op's shape rule as it is added."""

    def __init__(self):
        self.inputs: list = []
        self.ops: list = []
        self.params: list = []
        self.param_keys: dict = {}
        self._param_by_key: dict = {}
        self.constants: dict = {}
        self.scope: str = ""
        self.updates: list = []       # (variable, Value): state a training step writes back (BN statistics)
        self.rng_counter = None       # int32 scalar input: the training step's random stream (Dropout)
        self.added_losses = []        # scalar Tensors that layers gave add_loss() during the trace

    def input(self, name: str, type: TensorType) -> Value:
        v = Value(type, "input", name)
        self.inputs.append(v)
        return v

    def param(self, key: Any, name: str, type: TensorType) -> Value:
        """One Value per distinct key (a weight used twice is one parameter)."""
        k = id(key)
        if k not in self._param_by_key:
            v = Value(type, "param", name)
            self._param_by_key[k] = v
            self.params.append(v)
            self.param_keys[v.id] = key
        return self._param_by_key[k]

    def constant(self, array, dtype: Optional[str] = None) -> Value:
        array = np.asarray(array, dtype=dtype)
        v = Value(TensorType(array.shape, array.dtype), "const", "const")
        self.constants[v.id] = array
        return v

    def emit(self, kind: str, inputs, **attrs):
        """Add one op; returns its output Value, or a tuple of Values for multi-output ops."""
        opdef = get_op(kind)
        inputs = list(inputs)
        if opdef.num_inputs is not None and len(inputs) != opdef.num_inputs:
            raise ShapeError(f"op {kind!r} takes {opdef.num_inputs} inputs, got {len(inputs)}")
        out_types = opdef.infer(*[v.type for v in inputs], **attrs)
        single = isinstance(out_types, TensorType)
        out_types = (out_types,) if single else tuple(out_types)
        op = Op(kind, inputs, dict(attrs), scope=self.scope)
        op.outputs = [Value(t, "op", op=op, index=i) for i, t in enumerate(out_types)]
        self.ops.append(op)
        return op.outputs[0] if single else tuple(op.outputs)

    def finish(self, outputs) -> Graph:
        return Graph(list(self.inputs), list(outputs), list(self.ops), list(self.params),
                     dict(self.param_keys), dict(self.constants), self.rng_counter, list(self.updates))
