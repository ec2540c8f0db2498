"""Graph -> Graph passes, each small and tested alone."""
from .simplify import eliminate_identities, eliminate_dead_code, simplify  # noqa: F401
from .memory import plan_memory, MemoryPlan  # noqa: F401
from .fusion import fuse_conv_epilogue, fuse_conv_max_pool, fuse_dense_epilogue, fuse_epilogues  # noqa: F401
from .specialize import specialize, needs_specialization  # noqa: F401
from .cse import eliminate_common_subexpressions, fold_constants  # noqa: F401
from .bn_fold import fold_batch_norm  # noqa: F401
from .remat import rematerialize  # noqa: F401
