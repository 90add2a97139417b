"""mgpt's exporter: a checkpoint becomes one self-describing ONNX step graph."""

from .graph import DEFAULT_OPSET, ExportError, build_model

__all__ = ["DEFAULT_OPSET", "ExportError", "build_model"]
