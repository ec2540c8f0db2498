"""Keras 3 callbacks (keras.callbacks): hooks into fit/evaluate/predict, and the built-in ones."""
from .callback import Callback, CallbackList  # noqa: F401
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau  # noqa: F401
from .loggers import CSVLogger, History, LambdaCallback, ProgbarLogger, TerminateOnNaN  # noqa: F401
from .model_checkpoint import ModelCheckpoint  # noqa: F401
from .monitor import EarlyStopping, MonitorCallback  # noqa: F401
