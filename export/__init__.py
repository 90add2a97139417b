"""mgpt's exporter: a checkpoint becomes one self-describing ONNX step graph."""

from .exporter import ExportSummary, export
from .graph import DEFAULT_OPSET, MIN_OPSET, ExportError, build_model
from .verification import supported_opsets, verify

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportError", "ExportSummary", "build_model", "export",
           "supported_opsets", "verify"]
