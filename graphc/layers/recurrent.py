"""Keras 2 module path (``from keras.layers.recurrent import LSTM``, used by the seeds)."""
from .rnn import GRU, LSTM, SimpleRNN  # noqa: F401
