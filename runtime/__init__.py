"""mgpt's runtime: sample from an exported mgpt ``.onnx`` step graph with onnxruntime.

Light on purpose: importing it loads numpy and onnxruntime only (never onnx, click or training code).
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .vocab import Vocab, VocabError

try:
    __version__ = _version("mgpt")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Vocab", "VocabError", "__version__"]
