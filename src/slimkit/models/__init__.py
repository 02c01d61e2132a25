"""Model families. Importing this package registers them."""

from slimkit.models import (  # noqa: F401  (registers the families)
    cnn,
    minilm,
    mlp,
    mobile,
    recurrent,
    tcn,
    transformer,
)
from slimkit.models.base import MODELS, ModelConfig, ModelFamily, register_model
from slimkit.models.build import build_model, model_args, model_config
from slimkit.models.hf import is_hf
from slimkit.models.io import MODEL_FILE, load_model, save_model
from slimkit.models.outputs import output_name
from slimkit.models.recurrent import RECURRENT_FAMILIES
from slimkit.models.user import find_family

__all__ = [
    "MODELS",
    "MODEL_FILE",
    "RECURRENT_FAMILIES",
    "ModelConfig",
    "ModelFamily",
    "build_model",
    "find_family",
    "is_hf",
    "load_model",
    "model_args",
    "model_config",
    "output_name",
    "register_model",
    "save_model",
]
