"""ML inference as an analysis step: ONNX models whose outputs become expression columns."""
