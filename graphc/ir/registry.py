"""The op registry: every IR op is defined in one place.

An entry holds the op's shape/dtype rule (``infer``) and its NumPy reference
(``reference``). ``grad`` (written with other IR ops, used by autodiff) and
``lower_c`` (C code generation) are slots that the training and codegen stages
fill in the same entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

OPS: dict[str, "OpDef"] = {}


@dataclass
class OpDef:
    name: str
    infer: Callable          # infer(*input_types, **attrs) -> TensorType | tuple[TensorType, ...]
    reference: Callable      # reference(*arrays, **attrs) -> ndarray | tuple[ndarray, ...]
    num_inputs: Optional[int] = None   # None: variadic
    grad: Optional[Callable] = None    # grad(builder, op, output_grads) -> input grads
    lower_c: Optional[Callable] = None  # lower_c(ctx, op) -> C statements (see graphc/codegen)
    c_expr: Optional[Callable] = None   # pointwise ops: c_expr(args: list[str], **attrs) -> C expression


def defop(name: str, *, infer: Callable, reference: Callable, num_inputs: Optional[int] = None) -> OpDef:
    if name in OPS:
        raise ValueError(f"op {name!r} is defined twice")
    OPS[name] = OpDef(name, infer, reference, num_inputs)
    return OPS[name]


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown IR op {name!r}") from None
