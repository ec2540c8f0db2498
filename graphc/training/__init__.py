"""Training: the compiled train/test steps and Keras's fit/evaluate API on top of them."""
from .trainer import Trainer  # noqa: F401
