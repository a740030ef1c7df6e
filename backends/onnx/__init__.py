"""backends/onnx package."""
