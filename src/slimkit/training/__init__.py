"""Training: the fit loop and its configuration."""

from slimkit.training.config import TrainConfig
from slimkit.training.fit import TrainResult, fit

__all__ = ["TrainConfig", "TrainResult", "fit"]
