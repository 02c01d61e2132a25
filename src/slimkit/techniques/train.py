"""``train``: the trainer as a step. Fine-tunes the parent, or trains its architecture anew."""

from __future__ import annotations

import torch
from pydantic import Field

from slimkit.core.runs import Candidate
from slimkit.models import build_model
from slimkit.techniques.base import Context, Technique, TechniqueConfig, register_technique
from slimkit.training import TrainConfig, fit


class TrainStepConfig(TrainConfig, TechniqueConfig):
    """Every trainer option, and whether to start again from fresh weights."""

    from_scratch: bool = Field(False, description="re-initialize instead of fine-tuning")


@register_technique
class Train(Technique):
    name = "train"
    description = "train the parent's model further (fine-tune) or from scratch"
    Config = TrainStepConfig

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: TrainStepConfig = self.config  # type: ignore[assignment]
        model, spec = context.load_model(parent)
        if config.from_scratch:
            torch.manual_seed(context.seed)
            model = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                                spec["num_classes"], spec.get("input_dtype", "float32"))
        train = TrainConfig(**config.model_dump(exclude={"from_scratch"}))
        result = fit(model, context.task, train, seed=context.seed, progress=context.progress,
                     description=f"{context.new_id} train")
        return context.materialize(model, spec, params=config.model_dump(),
                                   training=result.to_dict())
