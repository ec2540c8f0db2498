"""C code generation from the optimized IR."""
from .context import CodegenError, c_ident, c_comment  # noqa: F401
from .generate import GeneratedC, generate_c, missing_lowerings, optimize  # noqa: F401
