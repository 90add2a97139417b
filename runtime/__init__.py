"""mgpt's runtime: sample from an exported mgpt ``.onnx`` step graph with onnxruntime.

Light on purpose: importing it loads numpy and onnxruntime only (never onnx, click or training code).

    from mgpt.runtime import Generator
    names = Generator("names.onnx").generate(5, temperature=0.5, seed=1)
"""

from .generator import Generator
from .modelfile import ModelError, default_model_path, shipped_model_path
from .rejection import SamplingError
from .vocab import Vocab, VocabError

__all__ = ["Generator", "ModelError", "SamplingError", "Vocab", "VocabError", "default_model_path", "shipped_model_path", "__version__"]


def __getattr__(name: str):
    # The version is looked up only when asked for: importlib.metadata costs milliseconds at
    # import, and mgpt-generate's start-up time is part of its speed.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mgpt")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
