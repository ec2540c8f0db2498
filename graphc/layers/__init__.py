"""Keras-compatible layers."""
from .base import Layer, clear_session  # noqa: F401
from .input_spec import InputSpec  # noqa: F401
from .input_layer import InputLayer, Input  # noqa: F401
from .core import Dense, Activation, Dropout, Flatten, Reshape, Permute, RepeatVector, Masking  # noqa: F401
from .merging import (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, dot,  # noqa: F401
                      add, subtract, multiply, average, maximum, minimum, concatenate)
from .op_layer import OpLayer  # noqa: F401
from .rnn import SimpleRNN, LSTM, GRU  # noqa: F401
from .convolutional import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .reshaping import *  # noqa: F401,F403
from .embedding import Embedding  # noqa: F401
from .normalization import BatchNormalization, LayerNormalization  # noqa: F401
from .wrappers import Bidirectional, TimeDistributed  # noqa: F401
from .lambda_layer import Lambda  # noqa: F401
from .activation_layers import ReLU, LeakyReLU, ELU, PReLU, Softmax, Identity, Rescaling  # noqa: F401
from .noise import SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, GaussianNoise, GaussianDropout  # noqa: F401
from .preprocessing import Normalization  # noqa: F401
from .attention import MultiHeadAttention  # noqa: F401
from .separable import (DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D,  # noqa: F401
                        SeparableConvolution1D, SeparableConvolution2D)
