"""ONNX -> Relax: reading, checking, shape fixing and folding, op coverage, import."""
