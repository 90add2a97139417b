"""The default names model shipped with mgpt (a checkpoint and its exported ``.onnx``)."""
