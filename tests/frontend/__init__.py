"""Tests of the ONNX frontend (frontends/onnx) and ``tcc import``."""
