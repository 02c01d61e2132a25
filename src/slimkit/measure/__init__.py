"""Step 2, analyze: metrics of a model on a split, torch and onnxruntime profiles, checked
exports. Nothing is imported here, so the onnxruntime probe process (``onnx_probe``) does not
load torch and its peak memory is the model's own."""
