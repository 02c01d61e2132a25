"""``export``: write the parent's model in deployable formats, each checked against torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slimkit.core.runs import Candidate
from slimkit.measure.parity import PARITY_SAMPLES
from slimkit.measure.torchscript import export_torchscript
from slimkit.techniques.base import Context, Technique, TechniqueConfig, register_technique


class ExportConfig(TechniqueConfig):
    """Which checked formats to write besides ONNX."""

    formats: list[Literal["onnx", "torchscript"]] = Field(
        default_factory=lambda: ["onnx", "torchscript"],
        description="formats to write (ONNX is always written: it is what gets measured)")


@register_technique
class Export(Technique):
    name = "export"
    description = "export the parent to ONNX and TorchScript with parity checks"
    Config = ExportConfig

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: ExportConfig = self.config  # type: ignore[assignment]
        model, spec = context.load_model(parent)
        candidate = context.materialize(model, spec, params=config.model_dump())
        if "torchscript" in config.formats:
            rel = f"candidates/{context.new_id}/model.ts"
            record = export_torchscript(model, context.task.input_shape, context.run_dir / rel,
                                        context.task.test.x[:PARITY_SAMPLES])
            candidate.artifacts["torchscript"] = rel
            candidate.parity = {"onnx": candidate.parity, "torchscript": record}
        return candidate
