"""Step 5, deploy: checked exports."""

from slimkit.deploy.export import check_onnx, export_onnx, export_torchscript, run_onnx

__all__ = ["check_onnx", "export_onnx", "export_torchscript", "run_onnx"]
