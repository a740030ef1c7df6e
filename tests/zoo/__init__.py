"""Tests of the model zoo, the ONNX export helpers and ``tcc zoo``."""
