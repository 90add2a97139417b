"""Opening an mgpt ``.onnx`` file: an onnxruntime session plus the checks that it is an mgpt step graph.

Every problem with the file becomes one ``ModelError`` whose message names the file and says what
is wrong, so that a command can print it as a single line.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .metadata import LOGITS, POSITION, TOKEN, MetadataError, ModelInfo, past_names, present_names, read_props, shown
from .paths import PathError, read_input


class ModelError(ValueError):
    """A model file that is missing, unreadable, or not an mgpt step graph."""


def shipped_model_path(name: str | None = None) -> Path:
    """The ``.onnx`` of a model shipped with mgpt, by name (``names``, ``names-large``; None: the default).

    Found beside the ``mgpt.models`` package, which is what ``importlib.resources.files`` returns
    for a package on disk, without its ~8 ms of imports and lookups (mgpt-generate's start-up is
    part of its speed); onnxruntime needs a real file anyway, so a zipped install could not serve.
    The file may be absent from a bare source tree.
    """
    import mgpt.models

    if name is not None and name not in mgpt.models.NAMES:
        raise ModelError(f"there is no shipped model named {name!r}; choose one of {', '.join(mgpt.models.NAMES)}")
    return Path(mgpt.models.__file__).with_name(f"{name or mgpt.models.DEFAULT}.onnx")


def default_model_path() -> Path:
    """The default names model shipped with mgpt."""
    return shipped_model_path()


def model_path(model: str | Path | None) -> Path:
    """What ``Generator(model)`` opens: a file, or a shipped model by name when ``model`` is one of
    the shipped names and no file of that name exists here (None: the default shipped model)."""
    import mgpt.models

    if model is None or (isinstance(model, str) and model in mgpt.models.NAMES and not Path(model).exists()):
        return shipped_model_path(model)
    return Path(model)


# The largest model file opened: protobuf's own limit is 2 GB.
MAX_MODEL_BYTES = 2**31 - 1
# The loading check's rollout is stopped (RunOptions.terminate) after this many seconds: a graph
# crafted to run for ever is refused instead of hanging its caller.
CHECK_SECONDS = 10.0


def open_session(path: str | Path, threads: int = 1) -> tuple[ort.InferenceSession, ModelInfo]:
    """An onnxruntime session on ``path`` and what the file says about itself, after checking that
    its inputs, outputs and metadata are those of an mgpt step graph, that its metadata agrees
    with the graph, and that a whole rollout of one row runs with finite logits.

    ``threads`` is onnxruntime's intra-op thread count: 1 is the fastest for this graph's tiny kernels.
    """
    path = Path(path)
    name = str(path)
    try:
        raw = read_input(path, "model file", "export one with mgpt-export or pass the .onnx file", MAX_MODEL_BYTES)
    except PathError as e:
        raise ModelError(str(e)) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: failures become ModelErrors; log lines would be printed under the output
    try:  # from the bytes read: what is checked is what runs (and external data files are not followed)
        session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's exceptions share no base class narrower than Exception
        raise ModelError(f"{name!r} is not an ONNX model that onnxruntime can load ({onnxruntime_reason(e)})") from None
    try:
        info = ModelInfo.from_props(read_props(raw))
    except MetadataError as e:
        raise ModelError(f"{name!r} is an ONNX model but not an mgpt step graph: {e}") from None
    try:
        problem = _io_problem(session, info)
    except UnicodeDecodeError:  # onnxruntime decodes names and dimensions only when asked for them
        problem = "its inputs or outputs have names or dimensions that are not UTF-8 text"
    if not problem:
        try:
            info.check_sizes(len(raw))
        except MetadataError as e:
            raise ModelError(f"{name!r} is an ONNX model but not an mgpt step graph: {e}") from None
        problem = _rollout_problem(session, info)
    if problem:
        raise ModelError(f"{name!r} is not a usable mgpt step graph: {problem}; re-export it with mgpt-export")
    return session, info


REASON_CHARS = 500  # of onnxruntime's message: its opset refusal alone takes ~400

# the parts of onnxruntime's messages that say where, not what, in any order: what its bindings
# put first ("Load model from X failed:"; onnxruntime-web's "… ERROR_CODE: 1, ERROR_MESSAGE: "), its
# "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : " prefix, and a C++ source location
# ("…/model_load_utils.h:56 "), after which comes the function's signature. The JavaScript
# runtime's firstLine uses the same.
_WHERE = re.compile(r"^(?:\s*(?:Load model from .*? failed:|.*?ERROR_CODE: \d+, ERROR_MESSAGE: "
                    r"|\[ONNXRuntimeError\] : \d+ : \w+ : |(?P<location>\S+\.(?:h|hpp|cc|cpp|c):\d+\s)))+")


def onnxruntime_reason(e: BaseException) -> str:
    """onnxruntime's message reduced to its reason, one line of at most REASON_CHARS."""
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else ""
    where = _WHERE.match(text)
    if where:
        text = text[where.end():].strip()
        if where.group("location"):
            text = _without_signature(text)
    return text[:REASON_CHARS] or type(e).__name__


def _without_signature(text: str) -> str:
    """``text`` without the C++ signature it starts with ("void onnxruntime::f(const T&, int)"): up
    to the parenthesis that closes the parameter list, which may hold parentheses of its own."""
    start, depth = text.find("("), 0
    for i in range(start, len(text) if start >= 0 else 0):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return re.sub(r"^\s*(?:const\s+)?", "", text[i + 1:])
    return text


def _io_problem(session: ort.InferenceSession, info: ModelInfo) -> str | None:
    """What is wrong with the graph's inputs and outputs for this metadata, or None.

    Symbolic dimensions (strings or None) match anything; fixed ones must equal the metadata's.
    """
    H, D, V = info.n_head, info.head_dim, info.vocab_size
    inputs = len(session.get_inputs())
    if info.n_layer > inputs:  # before listing the names: n_layer may say 10**9
        return f"it has {inputs} inputs, but n_layer {info.n_layer:,} needs {2 + 2 * info.n_layer:,}"
    cache = ("tensor(float)", [None, H, None, D])
    want_in = {TOKEN: ("tensor(int64)", [None]), POSITION: ("tensor(int64)", [])}
    want_out = {LOGITS: ("tensor(float)", [None, V])}
    for i in range(info.n_layer):
        want_in.update(dict.fromkeys(past_names(i), cache))
        want_out.update(dict.fromkeys(present_names(i), cache))
    for kind, want, have in (("input", want_in, session.get_inputs()), ("output", want_out, session.get_outputs())):
        have = {arg.name: arg for arg in have}
        missing, extra = [n for n in want if n not in have], [n for n in have if n not in want]
        if missing or extra:
            return (f"its {kind}s should be {_listed(list(want))}, it lacks {_listed(missing)} "
                    f"and has unexpected {_listed(extra)}")
        for n, (dtype, shape) in want.items():
            arg = have[n]
            if arg.type != dtype or len(arg.shape) != len(shape) or any(
                    isinstance(got, int) and w is not None and got != w for got, w in zip(arg.shape, shape)):
                wanted = [w if w is not None else "?" for w in shape]
                return f"{kind} {n!r} is {arg.type} {_listed(arg.shape)}, expected {dtype} {wanted}"
    return None


def _listed(items: list, most: int = 6) -> str:
    """At most ``most`` names (or dimensions) as a message lists them, then how many more: a hostile
    graph may have thousands of inputs, with names of any length."""
    parts = [shown(x) if isinstance(x, str) else repr(x) for x in items[:most]]
    if len(items) > most:
        parts.append(f"… {len(items) - most:,} more")
    return f"[{', '.join(parts)}]"


def first_step(info: ModelInfo) -> dict[str, np.ndarray]:
    """The inputs of a first step (BOS at position 0, empty cache) for a batch of one."""
    empty = np.zeros((1, info.n_head, 0, info.head_dim), np.float32)
    feed = {TOKEN: np.array([info.bos], np.int64), POSITION: np.array(0, np.int64)}
    return feed | {name: empty for i in range(info.n_layer) for name in past_names(i)}


def _rollout_problem(session: ort.InferenceSession, info: ModelInfo) -> str | None:
    """What goes wrong in a whole rollout of one row (BOS, then the most likely token, at every
    position up to the block size), or None: a file whose declared inputs and outputs fit can
    still fail inside, return other shapes than it declares, hold a position table shorter than
    its block size, give non-finite logits, or run too long (stopped by a watchdog)."""
    names = [LOGITS] + [n for i in range(info.n_layer) for n in present_names(i)]
    past = [n for i in range(info.n_layer) for n in past_names(i)]
    feed = first_step(info)
    run_options = ort.RunOptions()
    run_options.log_severity_level = 4
    watchdog = threading.Timer(CHECK_SECONDS, lambda: setattr(run_options, "terminate", True))
    watchdog.daemon = True
    watchdog.start()
    try:
        for p in range(info.block_size):
            feed[POSITION] = np.array(p, np.int64)
            try:
                outputs = session.run(names, feed, run_options)
            except Exception as e:  # onnxruntime's exceptions share no base class narrower than Exception
                if run_options.terminate:
                    return f"its check (a rollout of one row) ran longer than {CHECK_SECONDS:g} s and was stopped"
                return f"its step at position {p} fails in onnxruntime ({onnxruntime_reason(e)})"
            want = [(1, info.vocab_size)] + [(1, info.n_head, p + 1, info.head_dim)] * (2 * info.n_layer)
            for name, array, shape in zip(names, outputs, want):
                if not isinstance(array, np.ndarray) or array.dtype != np.float32:
                    return f"its step at position {p} returns {name} as {getattr(array, 'dtype', type(array))}, not float32"
                if array.shape != shape:
                    return f"its step at position {p} returns {name} of shape {array.shape}, expected {shape}"
            if not np.all(np.isfinite(outputs[0])):
                return f"its step at position {p} gives non-finite logits"
            feed[TOKEN] = np.array([int(np.argmax(outputs[0][0]))], np.int64)
            feed.update(zip(past, outputs[1:]))
    finally:
        watchdog.cancel()
    return None
