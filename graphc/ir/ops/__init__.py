"""Importing this package registers every IR op."""
from . import elementwise, linalg, shape, reduce, nn  # noqa: F401
from . import rnn  # noqa: F401
from . import conv  # noqa: F401
from . import gather  # noqa: F401
from . import normalization  # noqa: F401
