"""graphc: Keras models compiled ahead of time to C."""
from . import ir  # noqa: F401
from . import ops, activations, initializers, layers, models, utils  # noqa: F401
from . import callbacks, datasets, losses, metrics, optimizers, regularizers, saving  # noqa: F401
from .layers import Input  # noqa: F401
from .models import Model, Sequential  # noqa: F401
from .runtime import get_num_threads, set_num_threads  # noqa: F401
from .export import build_library, export_c  # noqa: F401

__version__ = "0.1.0"
