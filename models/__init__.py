"""The names models shipped with mgpt, each a checkpoint (``NAME.npz``) and its export (``NAME.onnx``).

Imports nothing: the runtime looks models up here by name without loading anything heavy.
The README's "Shipped models" section gives each one's training command, size and held-out NLL.
"""

NAMES = ("names", "names-large", "names-era")  # the first is the default; names-era is labeled (docs/labels.md)
DEFAULT = NAMES[0]
