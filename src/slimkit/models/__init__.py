"""Model families. Importing this package registers them."""

from slimkit.models import cnn, minilm, mlp, mobile  # noqa: F401  (registers the families)
from slimkit.models.base import MODELS, ModelConfig, ModelFamily, register_model
from slimkit.models.build import build_model, model_config
from slimkit.models.io import load_model, save_model

__all__ = [
    "MODELS",
    "ModelConfig",
    "ModelFamily",
    "build_model",
    "load_model",
    "model_config",
    "register_model",
    "save_model",
]
