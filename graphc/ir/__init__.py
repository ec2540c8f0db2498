"""The graph IR: typed SSA values and ops, the op registry, and NumPy reference execution."""
from .types import TensorType, ShapeError, normalize_dtype, normalize_shape, format_shape  # noqa: F401
from .registry import OPS, OpDef, defop, get_op  # noqa: F401
from .graph import Value, Op, Graph, GraphBuilder  # noqa: F401
from . import ops  # noqa: F401  (registers the ops)
from . import reference  # noqa: F401
