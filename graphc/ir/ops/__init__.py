"""Importing this package registers every IR op."""
from . import elementwise, linalg, shape, reduce, nn  # noqa: F401
from . import rnn  # noqa: F401
from . import conv  # noqa: F401
from . import gather  # noqa: F401
from . import normalization  # noqa: F401
from . import norm_grad  # noqa: F401
from . import random  # noqa: F401
from . import rnn_grad  # noqa: F401
from . import conv_grad  # noqa: F401
