"""Trainer hyperparameters (validated where they enter: recipes and --set train.*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Everything the fit loop needs besides the model, the data and the seed."""

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    batch_size: int = Field(128, ge=1, le=65536, description="samples per step")
    epochs: int = Field(
        60, ge=0, le=10000, description="maximum epochs (0: the model as given, not trained)")
    schedule: Literal["cosine", "step", "none"] = Field("cosine", description="LR schedule")
    step_size: int = Field(20, ge=1, description="epochs between LR drops (schedule=step)")
    gamma: float = Field(0.1, gt=0, le=1, description="LR factor per drop (schedule=step)")
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty (decoupled for adamw)")
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights, added to the loss")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    patience: int | None = Field(
        15, ge=1, description="early stopping: epochs without val improvement (null: off)"
    )
    restore_best: bool = Field(True, description="end with the weights of the best val epoch")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="compute precision (bf16: autocast, weights stay fp32); auto: bf16 "
                            "for token-id models on CPUs with AMX or AVX512-BF16, else fp32")
