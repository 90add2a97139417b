"""Hostile input, as a table: every bad input to the four commands and to the Python API is one
`Error:` line with the documented exit status (2 for a mistaken option, 1 for bad files, data or
results), or for the API one exception of the documented type naming the argument; never a
traceback, and every file that existed before is byte-identical after (and no temporary file is
left). The workspace holds a small data file, a good checkpoint and model, and the hostile ones."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mgpt.models
from mgpt.export.cli import export_command
from mgpt.runtime import Generator, ModelError, modelfile
from mgpt.runtime.cli import generate_command
from mgpt.serve.cli import serve_command
from mgpt.train.cli import eval_command, train_command
from mgpt.train.plot_cli import plot_command
from mgpt.train.config import GPTConfig

COMMANDS = {"train": train_command, "eval": eval_command, "export": export_command, "generate": generate_command,
            "plot": plot_command, "serve": serve_command}
SHIPPED = Path(mgpt.models.__file__).parent
NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "liam", "noah", "jo", "kaya"] * 5) + "\n"


def make_files(folder: Path) -> None:
    """The regular files the table's cases point at, by name (made once, copied for each case)."""
    (folder / "names.txt").write_text(NAMES)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text("\n \n\n")
    (folder / "latin1.txt").write_bytes("jos\xe9\n".encode("latin-1"))
    (folder / "digits.txt").write_text("123\n456\n")  # characters the shipped model does not know
    # bad data late in a file, as in a large one: an invalid byte on line 3,001, a 2 MB line 3
    (folder / "late-bad-byte.txt").write_bytes(NAMES.encode() * 60 + b"jos\xe9\nemma\n")
    (folder / "long-line.txt").write_bytes(b"emma\nliam\n" + b"x" * (2 << 20) + b"\nnoah\n")
    (folder / "run.metrics.jsonl").write_text('{"step": 10, "lr": 0.01, "loss": 3.0, "seconds": 0.1}\n')
    shutil.copy(SHIPPED / "names.npz", folder / "good.npz")
    shutil.copy(SHIPPED / "names.onnx", folder / "good.onnx")
    shutil.copy(SHIPPED / "names.onnx", folder / "GOOD.ONNX")
    (folder / "text.npz").write_text("not a zip")
    (folder / "text.onnx").write_text("not a model")
    (folder / "half.npz").write_bytes((SHIPPED / "names.npz").read_bytes()[:5000])
    (folder / "half.onnx").write_bytes((SHIPPED / "names.onnx").read_bytes()[:5000])
    make_hostile_models(folder)
    make_hostile_checkpoints(folder)
    make_labeled_files(folder)


LABELED = "A,x\tanna\nB,y\tbob\n"  # two groups: A | B, x | y
BAD_LABELED = {  # each file's second document is bad (after blank lines: line 4)
    "no-tab": "A,x\tanna\n\n \nB y bob\n",
    "empty-label": "A,x\tanna\n\n \nB,\tbob\n",
    "empty-text": "A,x\tanna\n\n \nB,y\t\n",
    "two-tabs": "A,x\tanna\n\n \nB,y\tbo\tb\n",
    "count": "A,x\tanna\n\n \nB\tbob\n",
    "place": "A,y\tanna\n\n \ny,B\tbob\n",
    "spaced": "A,x\tanna\n\n \nB, y\tbob\n",
}


def make_labeled_files(folder: Path) -> None:
    """A labeled data file, bad ones, and a labeled model (docs/labels.md)."""
    import runtime_models

    (folder / "labeled.txt").write_text(LABELED)
    for name, text in BAD_LABELED.items():
        (folder / f"labeled-{name}.txt").write_text(text)
    runtime_models.export_to(runtime_models.labeled_checkpoint(), folder / "labeled.onnx")


def make_special_files(folder: Path) -> None:
    """Directories, a FIFO, a socket and symlinks beside the regular files."""
    (folder / "dir").mkdir()
    (folder / "dir.npz").mkdir()
    os.mkfifo(folder / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    os.symlink("good.npz", folder / "link.npz")
    os.symlink("names.txt", folder / "names-link.txt")
    if (folder / "run.metrics.jsonl").exists():  # a hard link: the same file under another name
        os.link(folder / "run.metrics.jsonl", folder / "run-link.png")


def _props(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _with_props(model, **changes):
    """The model with metadata values changed (None removes the key)."""
    props = _props(model)
    props.update(changes)
    del model.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    return model


def _scaled(name: str, factor: float):
    def change(model):
        from onnx import numpy_helper

        for i, t in enumerate(model.graph.initializer):
            if t.name == name:
                model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(factor), name))
        return model
    return change


def _nan_row(model):
    """One character's embedding row made NaN: only a step of that token can tell."""
    from onnx import numpy_helper

    for i, t in enumerate(model.graph.initializer):
        if t.name == "wte":
            a = numpy_helper.to_array(t).copy()
            a[5] = np.nan
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, "wte"))
    return model


def _slow(model):
    """Logits that first wait on a Loop of 10**12 additions: a graph that would never finish."""
    from onnx import TensorProto as TP, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["acc", "one"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("cond", TP.BOOL, []),
                 helper.make_tensor_value_info("acc", TP.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TP.BOOL, []), helper.make_tensor_value_info("acc_out", TP.FLOAT, [1])],
        initializer=[helper.make_tensor("one", TP.FLOAT, [1], [0.0])])
    model.graph.initializer.extend([helper.make_tensor("/slow/n", TP.INT64, [], [10**12]),
                                    helper.make_tensor("/slow/c", TP.BOOL, [], [True]),
                                    helper.make_tensor("/slow/a0", TP.FLOAT, [1], [0.0])])
    for node in model.graph.node:
        if "logits" in node.output:
            node.output[list(node.output).index("logits")] = "/slow/logits"
    model.graph.node.extend([helper.make_node("Loop", ["/slow/n", "/slow/c", "/slow/a0"], ["/slow/acc"], body=body),
                             helper.make_node("Add", ["/slow/logits", "/slow/acc"], ["logits"])])
    return model


def _duplicate_key(model):
    model.metadata_props.add(key="block_size", value="8")
    return model


# hostile model files: name -> a change of the shipped model's ModelProto (or, bytes -> bytes, of its file)
HOSTILE_MODELS = {
    "block-huge.onnx": lambda m: _with_props(m, block_size=str(10**9)),
    "block-past-table.onnx": lambda m: _with_props(m, block_size="9"),
    "layers-2.onnx": lambda m: _with_props(m, n_layer="2"),
    "heads-2.onnx": lambda m: _with_props(m, n_head="2", head_dim="8"),
    "head-dim-wrong.onnx": lambda m: _with_props(m, head_dim="5"),
    "vocab-duplicate.onnx": lambda m: _with_props(m, vocab='["a", "a", "b"]', bos="3", vocab_size="4"),
    "vocab-object.onnx": lambda m: _with_props(m, vocab='{"a": 1}'),
    "vocab-newline.onnx": lambda m: _with_props(m, vocab='["\\n", ' + _props(m)["vocab"][1:].replace('"a", ', "", 1)),
    "vocab-surrogate.onnx": lambda m: _with_props(m, vocab=_props(m)["vocab"].replace('"z"', '"\\ud800"')),
    "vocab-multichar.onnx": lambda m: _with_props(m, vocab=_props(m)["vocab"].replace('"z"', '"zz"')),
    "vocab-short.onnx": lambda m: _with_props(m, vocab=_props(m)["vocab"].replace('"z", ', "").replace(', "z"', ""),
                                              bos="25", vocab_size="26"),
    "bos-wrong.onnx": lambda m: _with_props(m, bos="3"),
    "vocab-size-wrong.onnx": lambda m: _with_props(m, vocab_size="30"),
    "missing-block.onnx": lambda m: _with_props(m, block_size=None),
    "block-underscore.onnx": lambda m: _with_props(m, block_size="0_8"),
    "block-spaces.onnx": lambda m: _with_props(m, block_size=" 8"),
    "block-zero.onnx": lambda m: _with_props(m, block_size="0"),
    "block-negative.onnx": lambda m: _with_props(m, block_size="-8"),
    "format-other.onnx": lambda m: _with_props(m, format="other"),
    "version-2.onnx": lambda m: _with_props(m, format_version="2"),
    "training-dup-keys.onnx": lambda m: _with_props(m, training='{"seed": 1, "seed": 2}'),
    "training-deep.onnx": lambda m: _with_props(m, training="[" * 100000 + "]" * 100000),
    "training-nan.onnx": lambda m: _with_props(m, training='{"steps": 0, "train_loss": NaN}'),
    "vocab-infinity.onnx": lambda m: _with_props(m, vocab='["a", -Infinity]'),
    "duplicate-key.onnx": _duplicate_key,
    "nan-weights.onnx": _scaled("wte", float("nan")),
    "inf-weights.onnx": _scaled("lm_head", float("inf")),
    "slow.onnx": _slow,
    "nan-row.onnx": _nan_row,
    "layers-huge.onnx": lambda m: _with_props(m, n_layer=str(10**9)),
    # novelty filters (docs/sampling-controls.md): these files sample as before, only --novel fails
    "no-novelty.onnx": lambda m: _with_props(m, novelty=None),
    "novelty-short.onnx": lambda m: _with_props(m, novelty='{"kind": "bloom-splitmix64-v1", "documents": 1, '
                                                          '"bits": 16, "hashes": 2, "data": "AAAA"}'),
    "novelty-kind.onnx": lambda m: _with_props(m, novelty='{"kind": "cuckoo-v9"}'),
    "novelty-not-json.onnx": lambda m: _with_props(m, novelty="{"),
}
# the same, as changes of the file's bytes (lengths kept, so the protobuf stays well-formed)
RAW_MODELS = {
    "not-utf8.onnx": (b"\x12\x09mgpt-step", b"\x12\x09mgpt-st\xff\xfe"),
}
MODEL_WORDS = {
    "block-huge.onnx": "more than the file's", "block-past-table.onnx": "position 8 fails",
    "layers-2.onnx": "inputs should be", "heads-2.onnx": "expected", "head-dim-wrong.onnx": "disagrees with itself",
    "vocab-duplicate.onnx": "sorted and free of duplicates", "vocab-object.onnx": "not a JSON list",
    "vocab-newline.onnx": "line break", "vocab-surrogate.onnx": "lone surrogate", "vocab-multichar.onnx": "single character",
    "vocab-short.onnx": "expected", "bos-wrong.onnx": "disagrees with itself", "vocab-size-wrong.onnx": "disagrees",
    "missing-block.onnx": "incomplete or malformed", "block-underscore.onnx": "plain positive integer",
    "block-spaces.onnx": "plain positive integer", "block-zero.onnx": "non-positive", "block-negative.onnx": "plain positive",
    "format-other.onnx": "not written by mgpt-export", "version-2.onnx": "format version", "training-dup-keys.onnx": "repeats a key",
    "training-deep.onnx": "malformed", "training-nan.onnx": "NaN is not standard JSON; re-export",
    "vocab-infinity.onnx": "-Infinity is not standard JSON", "duplicate-key.onnx": "repeats the key 'block_size'",
    "nan-weights.onnx": "non-finite logits", "inf-weights.onnx": "non-finite logits", "slow.onnx": "was stopped",
    "layers-huge.onnx": "n_layer 1,000,000,000 needs",
    "not-utf8.onnx": "not UTF-8",
}


def make_hostile_models(folder: Path) -> None:
    import onnx

    good = (SHIPPED / "names.onnx").read_bytes()
    for name, change in HOSTILE_MODELS.items():
        (folder / name).write_bytes(change(onnx.load_from_string(good)).SerializeToString())
    for name, (old, new) in RAW_MODELS.items():
        assert good.count(old) == 1
        (folder / name).write_bytes(good.replace(old, new))


def _npz(arrays: dict, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **kwargs)
    return buffer.getvalue()


def _shipped_arrays() -> dict:
    with np.load(SHIPPED / "names.npz") as npz:
        return {key: npz[key] for key in npz.files}


def _meta_changed(**changes) -> bytes:
    arrays = _shipped_arrays()
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        meta["config"][key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    return _npz(arrays)


def _declared_size(size: int) -> bytes:
    """A checkpoint whose zip directory says its first member holds ``size`` bytes."""
    data = bytearray(_npz(_shipped_arrays()))
    central = data.index(b"PK\x01\x02")  # the first member's central directory entry
    data[central + 24 : central + 28] = size.to_bytes(4, "little")
    return bytes(data)


def _header_claims(shape: tuple) -> bytes:
    """A checkpoint whose wte.npy header declares ``shape`` over the bytes of the real wte."""
    arrays = _shipped_arrays()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, a in arrays.items():
            one = io.BytesIO()
            if key == "wte":
                np.lib.format.write_array_header_1_0(one, {"descr": "<f8", "fortran_order": False, "shape": shape})
                one.write(a.tobytes())
            else:
                np.save(one, a)
            archive.writestr(f"{key}.npy", one.getvalue())
    return buffer.getvalue()


def _duplicate_member() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, a in _shipped_arrays().items():
            one = io.BytesIO()
            np.save(one, a)
            archive.writestr(f"{key}.npy", one.getvalue())
        with pytest.warns(UserWarning):
            archive.writestr("wte.npy", b"again")
    return buffer.getvalue()


def _scaled_weights(factor: float) -> bytes:
    arrays = _shipped_arrays()
    arrays["wte"] = arrays["wte"] * factor
    return _npz(arrays)


def _declares_wte(shape: tuple) -> bytes:
    """A checkpoint whose wte.npy holds (and its header declares) zeros of ``shape``, deflated:
    consistent with itself but not with its config (the issue's had 375,000,000, 3 GB in 3 MB)."""
    arrays = _shipped_arrays()
    arrays["wte"] = np.zeros(shape)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def make_hostile_checkpoints(folder: Path) -> None:
    arrays = _shipped_arrays()
    files = {
        "declares-4gb.npz": _declared_size(2**32 - 16),
        "header-huge.npz": _header_claims((10**12,)),
        "header-short.npz": _header_claims((3, 16)),
        "layers-huge.npz": _meta_changed(n_layer=10**9),
        "block-huge.npz": _meta_changed(block_size=10**9),
        "absurd.npz": _scaled_weights(1e10),
        "overflow.npz": _scaled_weights(1e300),
        "dup-member.npz": _duplicate_member(),
        "objects.npz": _npz({**arrays, "extra": np.array(["x"], dtype=object)}),  # a pickle inside
        "meta-bytes.npz": _npz({**arrays, "meta": np.array(b"{}")}),
        "meta-list.npz": _npz({**arrays, "meta": np.array("[1, 2]")}),
        "no-meta.npz": _npz({k: v for k, v in arrays.items() if k != "meta"}),
        "int-weights.npz": _npz({**arrays, "wte": arrays["wte"].astype(np.int64)}),
        "wte-declares-more.npz": _declares_wte((3_750_000,)),
        "wte-int-declared.npz": _npz({**arrays, "wte": np.zeros((27, 16), dtype=np.int8)}),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


# (id, command, args, exit status, words the Error line must contain)
CLI_CASES = [
    # --- mgpt-train: files
    ("train-data-missing", "train", ["--data", "nope.txt"], 1, ["'nope.txt' does not exist"]),
    ("train-data-dir", "train", ["--data", "dir"], 1, ["is a directory"]),
    ("train-data-fifo", "train", ["--data", "fifo"], 1, ["is a FIFO"]),
    ("train-data-socket", "train", ["--data", "sock"], 1, ["is a socket"]),
    ("train-data-dev-zero", "train", ["--data", "/dev/zero"], 1, ["character device"]),
    ("train-data-dev-null", "train", ["--data", "/dev/null"], 1, ["character device"]),
    ("train-data-empty", "train", ["--data", "empty.txt"], 1, ["is empty"]),
    ("train-data-blank", "train", ["--data", "blank.txt"], 1, ["only blank lines"]),
    ("train-data-latin1", "train", ["--data", "latin1.txt"], 1, ["not UTF-8"]),
    ("train-out-is-data", "train", ["--data", "names.txt", "--out", "names.txt"], 1, ["same file as --data"]),
    ("train-out-is-data-symlink", "train", ["--data", "names-link.txt", "--out", "names.txt"], 1, ["same file as --data"]),
    ("train-out-is-data-dotted", "train", ["--data", "names.txt", "--out", "./dir/../names.txt"], 1, ["same file"]),
    ("train-metrics-is-data", "train", ["--data", "names.txt", "--metrics", "names.txt"], 1, ["--metrics", "same file as --data"]),
    ("train-metrics-is-out", "train", ["--data", "names.txt", "--out", "a.npz", "--metrics", "a.npz"], 1, ["--metrics", "same file as --out"]),
    ("train-out-is-init", "train", ["--data", "names.txt", "--out", "good.npz", "--init-from", "good.npz"], 1, ["same file as --init-from"]),
    ("train-out-is-init-link", "train", ["--data", "names.txt", "--out", "link.npz", "--init-from", "good.npz"], 1, ["same file as --init-from"]),
    ("train-metrics-is-init", "train", ["--data", "names.txt", "--metrics", "good.npz", "--init-from", "good.npz"], 1, ["same file"]),
    ("train-out-dev-null", "train", ["--data", "names.txt", "--out", "/dev/null"], 1, ["character device", "never replaced"]),
    ("train-out-fifo", "train", ["--data", "names.txt", "--out", "fifo"], 1, ["FIFO", "never replaced"]),
    ("train-out-socket", "train", ["--data", "names.txt", "--out", "sock"], 1, ["socket"]),
    ("train-out-dir", "train", ["--data", "names.txt", "--out", "dir.npz"], 1, ["directory"]),
    ("train-metrics-dev-null", "train", ["--data", "names.txt", "--metrics", "/dev/null"], 1, ["--metrics", "never replaced"]),
    ("train-metrics-dir", "train", ["--data", "names.txt", "--metrics", "dir"], 1, ["--metrics", "directory"]),
    ("train-out-no-folder", "train", ["--data", "names.txt", "--out", "no/such/a.npz"], 1, ["does not exist"]),
    ("train-init-missing", "train", ["--data", "names.txt", "--init-from", "nope.npz"], 1, ["does not exist"]),
    ("train-init-fifo", "train", ["--data", "names.txt", "--init-from", "fifo"], 1, ["FIFO"]),
    ("train-init-text", "train", ["--data", "names.txt", "--init-from", "text.npz"], 1, ["not a readable .npz"]),
    ("train-init-half", "train", ["--data", "names.txt", "--init-from", "half.npz"], 1, ["not a readable .npz"]),
    ("train-init-onnx", "train", ["--data", "names.txt", "--init-from", "good.onnx"], 1, ["not a readable .npz"]),
    ("train-init-shape", "train", ["--data", "names.txt", "--init-from", "good.npz", "--n-embd", "32"], 1, ["--n-embd 32 differs"]),
    ("train-init-vocab", "train", ["--data", "digits.txt", "--init-from", "good.npz"], 1, ["vocabulary lacks"]),
    # --- mgpt-train: options and sizes
    ("train-steps-0", "train", ["--steps", "0"], 2, ["--steps"]),
    ("train-steps-text", "train", ["--steps", "many"], 2, ["--steps"]),
    ("train-batch-0", "train", ["--batch-size", "0"], 2, ["--batch-size"]),
    ("train-lr-0", "train", ["--lr", "0"], 2, ["--lr"]),
    ("train-lr-nan", "train", ["--lr", "nan"], 2, ["--lr"]),
    ("train-lr-inf", "train", ["--lr", "inf"], 2, ["--lr"]),
    ("train-dropout-nan", "train", ["--dropout", "nan"], 2, ["--dropout", "not a finite number"]),
    ("train-ema-nan", "train", ["--ema", "nan"], 2, ["--ema", "not a finite number"]),
    ("train-val-fraction-1", "train", ["--val-fraction", "1"], 2, ["--val-fraction"]),
    ("train-val-fraction-neg", "train", ["--val-fraction", "-0.1"], 2, ["--val-fraction"]),
    ("train-val-fraction-too-big", "train", ["--data", "names.txt", "--val-fraction", "0.999"], 1, ["leaves no training"]),
    ("train-n-head-divides", "train", ["--data", "names.txt", "--n-embd", "10", "--n-head", "4"], 1, ["not divisible"]),
    ("train-n-layer-0", "train", ["--n-layer", "0"], 2, ["--n-layer"]),
    ("train-n-layer-huge", "train", ["--data", "names.txt", "--n-layer", "1000000"], 1, ["GB of memory", "--n-layer"]),
    ("train-n-embd-huge", "train", ["--data", "names.txt", "--n-embd", "1000000", "--n-head", "1"], 1, ["GB of memory", "--n-embd"]),
    ("train-batch-huge", "train", ["--data", "names.txt", "--batch-size", str(10**7)], 1, ["GB of memory", "--batch-size"]),
    ("train-block-huge", "train", ["--data", "names.txt", "--block-size", str(10**9)], 1, ["GB of memory", "--block-size"]),
    ("train-steps-text-float", "train", ["--steps", "1.5"], 2, ["--steps"]),
    ("train-eval-every-0", "train", ["--eval-every", "0"], 2, ["--eval-every"]),
    ("train-warmup-is-steps", "train", ["--steps", "5", "--warmup", "5"], 2, ["--warmup 5", "--steps 5", "lower --warmup"]),
    ("train-warmup-over-default-steps", "train", ["--warmup", "600"], 2, ["--warmup 600", "--steps 500 (the default)"]),
    ("train-warmup-over-steps-with-limit", "train", ["--steps", "5", "--warmup", "100", "--time-limit", "9"], 2,
     ["--warmup 100", "--steps 5"]),
    ("train-diverges-lr-1e6", "train", ["--data", "names.txt", "--out", "d.npz", "--lr", "1e6", "--steps", "50", "-q"], 1,
     ["diverged", "lower --lr"]),
    ("train-diverges-keeps-out-and-log", "train", ["--data", "names.txt", "--out", "good.npz", "--metrics",
     "run.metrics.jsonl", "--lr", "1e6", "--steps", "50", "-q"], 1,
     ["diverged", "good.npz was left as it was", "weights of step 1 are in good.diverged.npz",
      "run.diverged.metrics.jsonl"]),
    ("train-data-late-bad-byte", "train", ["--data", "late-bad-byte.txt"], 1,
     ["not UTF-8: line 3,001, byte 4 of the line (0xe9", "re-encode it as UTF-8"]),
    ("train-data-long-line", "train", ["--data", "long-line.txt"], 1,
     ["line 3 is 2,097,152 bytes long", "1,048,576 bytes", "one document per line"]),
    ("train-val-max-0", "train", ["--val-max", "0"], 2, ["--val-max"]),
    ("train-unknown-option", "train", ["--colour"], 2, ["--colour"]),
    ("train-extra-argument", "train", ["names.txt"], 2, ["names.txt"]),
    ("train-init-layers-huge", "train", ["--data", "names.txt", "--init-from", "layers-huge.npz"], 1, ["n_layer 1,000,000,000"]),
    ("train-init-declares-4gb", "train", ["--data", "names.txt", "--init-from", "declares-4gb.npz"], 1, ["declare"]),
    # --- mgpt-eval
    ("eval-default-missing", "eval", [], 1, ["'mgpt-checkpoint.npz' does not exist"]),
    ("eval-model-missing", "eval", ["nope.npz"], 1, ["does not exist"]),
    ("eval-model-fifo", "eval", ["fifo"], 1, ["FIFO"]),
    ("eval-model-dir", "eval", ["dir"], 1, ["directory"]),
    ("eval-model-dev-zero", "eval", ["/dev/zero"], 1, ["character device"]),
    ("eval-model-text-npz", "eval", ["text.npz"], 1, ["not a readable .npz"]),
    ("eval-model-text-onnx", "eval", ["text.onnx"], 1, ["not an ONNX model"]),
    ("eval-model-half-npz", "eval", ["half.npz"], 1, ["not a readable .npz"]),
    ("eval-model-half-onnx", "eval", ["half.onnx"], 1, ["not an ONNX model"]),
    ("eval-data-fifo", "eval", ["good.npz", "--data", "fifo"], 1, ["FIFO"]),
    ("eval-data-latin1", "eval", ["good.npz", "--data", "latin1.txt"], 1, ["not UTF-8"]),
    ("eval-data-unknown-chars", "eval", ["good.npz", "--data", "digits.txt"], 1, ["not in the model's vocabulary"]),
    ("eval-onnx-unknown-chars", "eval", ["GOOD.ONNX", "--data", "digits.txt"], 1, ["not in the model's vocabulary"]),
    ("eval-data-missing-value", "eval", ["good.npz", "--data"], 2, ["--data"]),
    ("eval-data-late-bad-byte", "eval", ["good.npz", "--data", "late-bad-byte.txt"], 1, ["not UTF-8: line 3,001"]),
    ("eval-onnx-data-long-line", "eval", ["good.onnx", "--data", "long-line.txt"], 1, ["line 3 is 2,097,152 bytes"]),
    # --- mgpt-export
    ("export-output-is-checkpoint", "export", ["good.npz", "--checkpoint", "good.npz"], 1, ["same file as checkpoint"]),
    ("export-output-links-checkpoint", "export", ["link.npz", "--checkpoint", "good.npz"], 1, ["same file as checkpoint"]),
    ("export-output-dev-null", "export", ["/dev/null", "--checkpoint", "good.npz"], 1, ["never replaced"]),
    ("export-output-fifo", "export", ["fifo", "--checkpoint", "good.npz"], 1, ["FIFO"]),
    ("export-output-socket", "export", ["sock", "--checkpoint", "good.npz"], 1, ["socket"]),
    ("export-output-dir", "export", ["dir", "--checkpoint", "good.npz"], 1, ["directory"]),
    ("export-output-no-folder", "export", ["no/m.onnx", "--checkpoint", "good.npz"], 1, ["does not exist"]),
    ("export-default-missing", "export", ["m.onnx"], 1, ["'mgpt-checkpoint.npz' does not exist"]),
    ("export-checkpoint-fifo", "export", ["m.onnx", "--checkpoint", "fifo"], 1, ["FIFO"]),
    ("export-checkpoint-dir", "export", ["m.onnx", "--checkpoint", "dir"], 1, ["directory"]),
    ("export-checkpoint-dev-zero", "export", ["m.onnx", "--checkpoint", "/dev/zero"], 1, ["character device"]),
    ("export-checkpoint-text", "export", ["m.onnx", "--checkpoint", "text.npz"], 1, ["not a zip"]),
    ("export-checkpoint-half", "export", ["m.onnx", "--checkpoint", "half.npz"], 1, ["not a readable .npz"]),
    ("export-checkpoint-onnx", "export", ["m.onnx", "--checkpoint", "good.onnx"], 1, ["not a readable .npz"]),
    ("export-checkpoint-declares-4gb", "export", ["m.onnx", "--checkpoint", "declares-4gb.npz"], 1, ["declare"]),
    ("export-checkpoint-header-huge", "export", ["m.onnx", "--checkpoint", "header-huge.npz"], 1, ["1,000,000,000,000 elements"]),
    ("export-checkpoint-header-short", "export", ["m.onnx", "--checkpoint", "header-short.npz"], 1, ["48 elements"]),
    ("export-checkpoint-layers-huge", "export", ["m.onnx", "--checkpoint", "layers-huge.npz"], 1, ["n_layer 1,000,000,000"]),
    ("export-checkpoint-block-huge", "export", ["m.onnx", "--checkpoint", "block-huge.npz"], 1, ["wpe has shape"]),
    ("export-checkpoint-absurd", "export", ["m.onnx", "--checkpoint", "absurd.npz"], 1, ["absurd weights", "checkpoint is the problem"]),
    ("export-checkpoint-overflow", "export", ["m.onnx", "--checkpoint", "overflow.npz"], 1, ["absurd weights"]),
    ("export-checkpoint-dup-member", "export", ["m.onnx", "--checkpoint", "dup-member.npz"], 1, ["appears twice"]),
    ("export-checkpoint-objects", "export", ["m.onnx", "--checkpoint", "objects.npz"], 1, ["Python objects"]),
    ("export-checkpoint-meta-bytes", "export", ["m.onnx", "--checkpoint", "meta-bytes.npz"], 1, ["'meta' entry that is not JSON"]),
    ("export-checkpoint-meta-list", "export", ["m.onnx", "--checkpoint", "meta-list.npz"], 1, ["not an mgpt checkpoint"]),
    ("export-checkpoint-no-meta", "export", ["m.onnx", "--checkpoint", "no-meta.npz"], 1, ["no 'meta' entry"]),
    ("export-checkpoint-int-weights", "export", ["m.onnx", "--checkpoint", "int-weights.npz"], 1, ["finite floating-point"]),
    ("export-checkpoint-wte-declares-more", "export", ["m.onnx", "--checkpoint", "wte-declares-more.npz"], 1,
     ["wte has shape (3750000,), its config needs (27, 16)"]),
    ("export-checkpoint-wte-int-declared", "export", ["m.onnx", "--checkpoint", "wte-int-declared.npz"], 1,
     ["wte must hold finite floating-point"]),
    ("train-init-wte-declares-more", "train", ["--data", "names.txt", "--init-from", "wte-declares-more.npz"], 1,
     ["wte has shape (3750000,)"]),
    ("export-opset-3", "export", ["m.onnx", "--checkpoint", "good.npz", "--opset", "3"], 1, ["opset 3 is not supported"]),
    ("export-opset-999", "export", ["m.onnx", "--checkpoint", "good.npz", "--opset", "999"], 1, ["opset 999"]),
    ("export-opset-text", "export", ["m.onnx", "--opset", "new"], 2, ["--opset"]),
    ("export-no-output", "export", [], 2, ["OUTPUT"]),
    # --- mgpt-generate
    ("generate-model-missing", "generate", ["--model", "nope.onnx"], 1, ["does not exist"]),
    ("generate-model-fifo", "generate", ["--model", "fifo"], 1, ["FIFO"]),
    ("generate-model-dir", "generate", ["--model", "dir"], 1, ["directory"]),
    ("generate-model-dev-zero", "generate", ["--model", "/dev/zero"], 1, ["character device"]),
    ("generate-model-text", "generate", ["--model", "text.onnx"], 1, ["not an ONNX model"]),
    ("generate-model-half", "generate", ["--model", "half.onnx"], 1, ["not an ONNX model"]),
    ("generate-model-checkpoint", "generate", ["--model", "good.npz"], 1, ["not an ONNX model"]),
    ("generate-n-negative", "generate", ["-n", "-1"], 2, ["--num-samples"]),
    ("generate-temperature-nan", "generate", ["-t", "nan"], 2, ["--temperature"]),
    ("generate-temperature-inf", "generate", ["-t", "inf"], 2, ["--temperature"]),
    ("generate-top-p-2", "generate", ["--top-p", "2"], 2, ["--top-p"]),
    ("generate-top-p-nan", "generate", ["--top-p", "nan"], 2, ["--top-p"]),
    ("generate-seed-text", "generate", ["--seed", "x"], 2, ["--seed"]),
    ("generate-prefix-unknown", "generate", ["--prefix", "A"], 2, ["--prefix"]),
    ("generate-max-length-0", "generate", ["--max-length", "0"], 2, ["--max-length"]),
    ("generate-max-length-big", "generate", ["--max-length", "100"], 2, ["--max-length"]),
    ("generate-batch-0", "generate", ["--batch-size", "0"], 2, ["--batch-size"]),
    ("generate-threads-0", "generate", ["--threads", "0"], 2, ["--threads"]),
    ("generate-format-xml", "generate", ["--format", "xml"], 2, ["--format"]),
    # --- mgpt-plot (its output checked by the same path checks)
    ("plot-output-is-log", "plot", ["run.metrics.jsonl", "-o", "run.metrics.jsonl"], 1, ["same file as the metrics log"]),
    ("plot-output-links-log", "plot", ["run.metrics.jsonl", "-o", "run-link.png"], 1, ["same file as the metrics log"]),
    ("plot-log-fifo", "plot", ["fifo"], 1, ["FIFO"]),
    ("plot-log-dir", "plot", ["dir"], 1, ["directory"]),
    ("plot-log-missing", "plot", ["nope.jsonl"], 1, ["does not exist"]),
    ("plot-output-dev-null", "plot", ["run.metrics.jsonl", "-o", "/dev/null"], 1, ["never replaced"]),
    ("plot-output-socket", "plot", ["run.metrics.jsonl", "-o", "sock"], 1, ["socket"]),
    # --- labels (docs/labels.md): bad labeled lines name their line (blank lines counted)
    ("train-labeled-no-tab", "train", ["--data", "labeled-no-tab.txt", "--labeled"], 1, ["line 4 has no tab", "LABELS<TAB>TEXT"]),
    ("train-labeled-empty-label", "train", ["--data", "labeled-empty-label.txt", "--labeled"], 1, ["line 4 has an empty label"]),
    ("train-labeled-empty-text", "train", ["--data", "labeled-empty-text.txt", "--labeled"], 1, ["line 4 has no text after its tab"]),
    ("train-labeled-two-tabs", "train", ["--data", "labeled-two-tabs.txt", "--labeled"], 1, ["line 4 has a second tab"]),
    ("train-labeled-count", "train", ["--data", "labeled-count.txt", "--labeled"], 1, ["line 4 has 1 label, the lines before it 2"]),
    ("train-labeled-place", "train", ["--data", "labeled-place.txt", "--labeled"], 1, ["line 4 has label 'y' in place 1, earlier lines in place 2"]),
    ("train-labeled-spaced", "train", ["--data", "labeled-spaced.txt", "--labeled"], 1, ["line 4 has a bad label", "begins or ends with a space"]),
    ("train-labeled-plain-file", "train", ["--data", "names.txt", "--labeled"], 1, ["line 1 has no tab"]),
    ("train-labeled-block-1", "train", ["--data", "labeled.txt", "--labeled", "--block-size", "2"], 1, ["--block-size 2 leaves no position", "2 label tokens"]),
    ("train-labeled-init-unlabeled", "train", ["--data", "labeled.txt", "--labeled", "--init-from", "good.npz"], 1, ["has no labels; drop --labeled"]),
    ("eval-labeled-unlabeled-model", "eval", ["good.npz", "--data", "labeled.txt", "--labeled"], 1, ["has no labels; drop --labeled"]),
    ("eval-labeled-model-plain-data", "eval", ["labeled.onnx", "--data", "names.txt"], 1, ["has labels; pass --labeled"]),
    ("eval-labeled-unknown-label", "eval", ["labeled.onnx", "--data", "labeled.txt", "--labeled"], 1, ["do not fit the model's", "unknown label 'A'"]),
    ("generate-label-unknown", "generate", ["--model", "labeled.onnx", "--label", "Q", "--label", "F"], 2, ["--label", "unknown label 'Q'", "F | M; 1950s | 2010s | x y"]),
    ("generate-label-missing", "generate", ["--model", "labeled.onnx", "--label", "F"], 2, ["--label", "needs one label from each group", "1950s | 2010s | x y"]),
    ("generate-label-none", "generate", ["--model", "labeled.onnx"], 2, ["--label", "needs one label from each group"]),
    ("generate-label-doubled", "generate", ["--model", "labeled.onnx", "--label", "F", "--label", "M"], 2, ["--label", "'F' and 'M' are of one group"]),
    ("generate-label-unlabeled-model", "generate", ["--label", "F"], 2, ["--label", "this model has no labels"]),
    ("generate-label-max-length", "generate", ["--model", "labeled.onnx", "--label", "F", "--label", "x y", "--max-length", "7"], 2, ["--max-length", "less its 2 label tokens"]),
    # --- mgpt-generate's sampling controls (docs/sampling-controls.md)
    ("generate-pattern-class", "generate", ["--pattern", "\\d+"], 2, ["--pattern", "\\d", "[0-9]"]),
    ("generate-pattern-anchor", "generate", ["--pattern", "^a"], 2, ["--pattern", "anchor"]),
    ("generate-pattern-lazy", "generate", ["--pattern", "a+?"], 2, ["--pattern", "lazy"]),
    ("generate-pattern-lookahead", "generate", ["--pattern", "(?=a)a"], 2, ["--pattern", "lookaround"]),
    ("generate-pattern-open", "generate", ["--pattern", "(ab"], 2, ["--pattern", "not a valid regular expression"]),
    ("generate-pattern-bracket", "generate", ["--pattern", "[a"], 2, ["--pattern", "unterminated"]),
    ("generate-pattern-brace", "generate", ["--pattern", "a{,3}"], 2, ["--pattern", "quantifier"]),
    ("generate-pattern-long", "generate", ["--pattern", "a/" * 501], 2, ["--pattern", "limit is 1,000"]),
    ("generate-pattern-unsatisfiable", "generate", ["--pattern", "[A-Z]+"], 2, ["no sample of at most 8"]),
    ("generate-pattern-too-long", "generate", ["--pattern", "a{9}"], 2, ["no sample of at most 8"]),
    ("generate-pattern-vs-prefix", "generate", ["--pattern", "b.*", "--prefix", "a"], 2, ["start with 'a'"]),
    ("generate-pattern-complex", "generate", ["--pattern", "(((a|b)*a(a|b){7}){9}){9}", "--max-length", "8"], 2,
     ["no sample"]),
    ("generate-suffix-unknown", "generate", ["--suffix", "A"], 2, ["--suffix", "cannot produce"]),
    ("generate-contains-unknown", "generate", ["--contains", "1"], 2, ["--contains", "cannot produce"]),
    ("generate-suffix-too-long", "generate", ["--suffix", "abcdefghi"], 2, ["no sample of at most 8"]),
    ("generate-min-length-big", "generate", ["--min-length", "9"], 2, ["--min-length", "exceeds"]),
    ("generate-min-over-max", "generate", ["--min-length", "5", "--max-length", "4"], 2, ["--min-length"]),
    ("generate-min-length-neg", "generate", ["--min-length", "-1"], 2, ["--min-length"]),
    ("generate-max-attempts-0", "generate", ["--max-attempts", "0"], 2, ["--max-attempts"]),
    ("generate-exclude-missing", "generate", ["--exclude", "nope.txt"], 1, ["exclude file", "does not exist"]),
    ("generate-exclude-dir", "generate", ["--exclude", "dir"], 1, ["directory"]),
    ("generate-exclude-fifo", "generate", ["--exclude", "fifo"], 1, ["FIFO"]),
    ("generate-exclude-dev-zero", "generate", ["--exclude", "/dev/zero"], 1, ["character device"]),
    ("generate-exclude-latin1", "generate", ["--exclude", "latin1.txt"], 1, ["not UTF-8"]),
    ("generate-novel-no-filter", "generate", ["--model", "no-novelty.onnx", "--novel"], 1, ["has no novelty filter"]),
    ("generate-novel-short", "generate", ["--model", "novelty-short.onnx", "--novel"], 1, ["bytes"]),
    ("generate-novel-kind", "generate", ["--model", "novelty-kind.onnx", "--novel"], 1, ["cuckoo-v9"]),
    ("generate-novel-not-json", "generate", ["--model", "novelty-not-json.onnx", "--novel"], 1, ["cannot be read"]),
    ("generate-trace-names", "generate", ["--trace", "--format", "names"], 2, ["--trace", "--format names"]),
    ("generate-trace-many", "generate", ["--trace", "-n", "101"], 2, ["at most 100"]),
    ("generate-trace-novel-no-filter", "generate", ["--model", "no-novelty.onnx", "--novel", "--trace"], 1,
     ["has no novelty filter"]),
    ("generate-unique-cap", "generate", ["--unique", "-n", "30", "-t", "0"], 1,
     ["found 1 of 30 samples in 1,500 attempts", "--max-attempts"]),
    ("generate-exclude-cap", "generate", ["--exclude", "names.txt", "--pattern", "emma|ava", "--max-attempts", "50"], 1,
     ["found 0 of 20 samples in 50 attempts"]),
    # a NaN row of wte that the check at load does not reach: found while sampling, one line all the same
    ("generate-nan-row-sampling", "generate", ["--model", "nan-row.onnx", "-n", "500", "-t", "2", "--seed", "1"], 1,
     ["not finite"]),
]
CLI_CASES += [(f"generate-{name}", "generate", ["--model", name, "-n", "1"], 1, [words])
              for name, words in MODEL_WORDS.items()]
# mgpt-serve: refused before it serves (its socket on a free port, so no case needs a given one)
CLI_CASES += [
    ("serve-model-missing", "serve", ["--port", "0", "--model", "nope.onnx"], 1, ["does not exist"]),
    ("serve-model-dir", "serve", ["--port", "0", "--model", "dir"], 1, ["is a directory"]),
    ("serve-model-checkpoint", "serve", ["--port", "0", "--model", "good.npz"], 1, ["not an ONNX model"]),
    ("serve-model-twice", "serve", ["--port", "0", "--model", "names", "--model", "names"], 2, ["two models", "'names'"]),
    ("serve-public-without-key", "serve", ["--port", "0", "--host", "0.0.0.0"], 2, ["--api-key", "--no-key-ok"]),
    ("serve-named-host-without-key", "serve", ["--port", "0", "--host", "example.invalid"], 2, ["--api-key"]),
    ("serve-empty-key", "serve", ["--port", "0", "--api-key", " "], 2, ["--api-key is empty"]),
    ("serve-port-range", "serve", ["--port", "70000"], 2, ["--port"]),
    ("serve-host-unknown", "serve", ["--port", "0", "--host", "256.1.1.1", "--api-key", "k"], 1, ["cannot listen"]),
    ("serve-timeout-zero", "serve", ["--timeout", "0"], 2, ["--timeout"]),
    ("serve-timeout-nan", "serve", ["--timeout", "nan"], 2, ["--timeout"]),
    ("serve-queue-zero", "serve", ["--queue", "0"], 2, ["--queue"]),
    ("serve-max-n-zero", "serve", ["--max-n", "0"], 2, ["--max-n"]),
    ("serve-unknown-option", "serve", ["--workers", "2"], 2, ["--workers"]),
]
CLI_CASES += [(f"serve-{name}", "serve", ["--port", "0", "--model", name], 1, [words])
              for name, words in list(MODEL_WORDS.items())[1::4]]
CLI_CASES += [(f"eval-{name}", "eval", [name, "--data", "names.txt"], 1, [words])
              for name, words in list(MODEL_WORDS.items())[::3]]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    make_files(folder)
    return folder


@pytest.fixture
def workspace(template, tmp_path, monkeypatch, request):
    """A folder with the files a case names (and two bystanders), the special files, as cwd."""
    monkeypatch.setattr(modelfile, "CHECK_SECONDS", 0.5)  # the slow model's watchdog, made quick
    named = set(getattr(request, "param", None) or []) | {"good.npz", "names.txt"}
    for name in named:
        if (template / name).is_file():
            shutil.copyfile(template / name, tmp_path / name)
    make_special_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("workspace, command, args, status, words",
                         [pytest.param(case[2], *case[1:], id=case[0]) for case in CLI_CASES], indirect=["workspace"])
def test_bad_command_input_is_one_error_line(workspace, command, args, status, words):
    before = snapshot(workspace)
    result = CliRunner().invoke(COMMANDS[command], args, prog_name=f"mgpt-{command}")
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert result.exit_code == status, result.output
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    for word in words:
        assert word in errors[0], errors[0]
    after = snapshot(workspace)
    assert {name: after.get(name) for name in before} == before  # nothing touched
    assert not [name for name in os.listdir(workspace) if name.endswith(".tmp")]


def _api(call, *args, **kwargs):
    return lambda: call(*args, **kwargs)


def _train_options(**kwargs):
    from mgpt.train import TrainOptions

    return _api(TrainOptions, **kwargs)


def _split(documents, fraction):
    from mgpt.train.data import split

    return _api(split, documents, fraction)


def _export(checkpoint="good.npz", output="m.onnx", **kwargs):
    from mgpt.export import export

    return _api(export, checkpoint, output, **kwargs)


def _load(path):
    from mgpt.train import load

    return _api(load, path)


def _read_documents(path):
    from mgpt.train import read_documents

    return _api(read_documents, path)


def _read_corpus(path):
    from mgpt.train.data import read_corpus

    return _api(read_corpus, path)


def _held_out(n, fraction, val_max=1000):
    from mgpt.train.data import held_out

    return _api(held_out, n, fraction, val_max)


def _generator(path):
    return _api(Generator, path)


# (id, a call, the exception type, words of its message)
API_CASES = [
    ("options-steps-0", _train_options(steps=0), ValueError, ["steps must be at least 1"]),
    ("options-steps-float", _train_options(steps=2.5), TypeError, ["steps must be an integer"]),
    ("options-steps-bool", _train_options(steps=True), TypeError, ["steps must be an integer", "bool"]),
    ("options-steps-str", _train_options(steps="10"), TypeError, ["steps"]),
    ("options-batch-0", _train_options(batch_size=0), ValueError, ["batch_size"]),
    ("options-batch-bool", _train_options(batch_size=False), TypeError, ["batch_size"]),
    ("options-eval-every-neg", _train_options(eval_every=-1), ValueError, ["eval_every"]),
    ("options-lr-0", _train_options(lr=0.0), ValueError, ["lr must be"]),
    ("options-lr-neg", _train_options(lr=-1), ValueError, ["lr must be"]),
    ("options-lr-nan", _train_options(lr=float("nan")), ValueError, ["lr must be"]),
    ("options-lr-inf", _train_options(lr=float("inf")), ValueError, ["lr must be"]),
    ("options-lr-str", _train_options(lr="0.1"), TypeError, ["lr must be a number"]),
    ("options-lr-bool", _train_options(lr=True), TypeError, ["lr must be a number"]),
    ("options-beta1-1", _train_options(beta1=1.0), ValueError, ["beta1"]),
    ("options-beta1-neg", _train_options(beta1=-0.1), ValueError, ["beta1"]),
    ("options-beta2-1", _train_options(beta2=1), ValueError, ["beta2"]),
    ("options-beta2-nan", _train_options(beta2=float("nan")), ValueError, ["beta2"]),
    ("options-eps-0", _train_options(eps=0), ValueError, ["eps"]),
    ("options-eps-neg", _train_options(eps=-1e-8), ValueError, ["eps"]),
    ("options-seed-float", _train_options(seed=1.5), TypeError, ["seed must be an integer"]),
    ("options-seed-bool", _train_options(seed=True), TypeError, ["seed"]),
    ("options-seed-none", _train_options(seed=None), TypeError, ["seed"]),
    ("options-shuffle-int", _train_options(shuffle=1), TypeError, ["shuffle must be True or False"]),
    ("options-shuffle-str", _train_options(shuffle="no"), TypeError, ["shuffle"]),
    ("options-warmup-is-steps", _train_options(steps=5, warmup=5), ValueError, ["warmup 5 must be less than steps 5"]),
    ("options-ema-1", _train_options(ema=1.0), ValueError, ["ema must be"]),
    ("options-ema-neg", _train_options(ema=-0.5), ValueError, ["ema must be"]),
    ("options-ema-str", _train_options(ema="0.999"), TypeError, ["ema must be a number"]),
    ("options-ema-bool", _train_options(ema=True), TypeError, ["ema"]),
    ("split-fraction-1", _split(["a", "b"], 1.0), ValueError, ["val_fraction"]),
    ("split-fraction-neg", _split(["a", "b"], -0.5), ValueError, ["val_fraction"]),
    ("split-fraction-nan", _split(["a", "b"], float("nan")), ValueError, ["val_fraction"]),
    ("split-fraction-bool", _split(["a", "b"], True), TypeError, ["val_fraction"]),
    ("split-fraction-str", _split(["a", "b"], "0.1"), TypeError, ["val_fraction"]),
    ("split-documents-str", _split("abc", 0.1), TypeError, ["documents"]),
    ("split-documents-ints", _split([1, 2], 0.1), TypeError, ["documents"]),
    ("split-all-held-out", _split(["a", "b"], 0.9), ValueError, ["leaves no training"]),
    ("export-opset-float", _export(opset=17.0), TypeError, ["opset must be an integer"]),
    ("export-opset-bool", _export(opset=True), TypeError, ["opset"]),
    ("export-opset-str", _export(opset="17"), TypeError, ["opset"]),
    ("export-opset-10", _export(opset=10), ValueError, ["opset 10 is not supported"]),
    ("export-verify-int", _export(verify=1), TypeError, ["verify must be True or False"]),
    ("export-verify-str", _export(verify="no"), TypeError, ["verify"]),
    ("export-same-file", _export(output="good.npz"), ValueError, ["same file as checkpoint"]),
    ("export-output-dev-null", _export(output="/dev/null"), ValueError, ["never replaced"]),
    ("export-absurd", _export(checkpoint="absurd.npz"), ValueError, ["absurd weights"]),
    ("load-fifo", _load("fifo"), ValueError, ["FIFO"]),
    ("load-dir", _load("dir"), ValueError, ["directory"]),
    ("load-declares-4gb", _load("declares-4gb.npz"), ValueError, ["declare"]),
    ("load-header-huge", _load("header-huge.npz"), ValueError, ["elements"]),
    ("load-objects", _load("objects.npz"), ValueError, ["Python objects"]),
    ("config-bool", _api(GPTConfig, True), TypeError, ["vocab_size must be an integer"]),
    ("config-float", _api(GPTConfig, 27, n_embd=16.0), TypeError, ["n_embd must be an integer"]),
    ("config-zero", _api(GPTConfig, 27, n_layer=0), ValueError, ["n_layer must be at least 1"]),
    ("config-indivisible", _api(GPTConfig, 27, n_embd=10, n_head=4), ValueError, ["not divisible"]),
    ("generator-threads-0", _api(Generator, threads=0), ValueError, ["threads must be an integer >= 1"]),
    ("generator-threads-bool", _api(Generator, threads=True), TypeError, ["threads"]),
    ("generator-session-threads-float", _api(Generator, session_threads=1.5), TypeError, ["session_threads"]),
    ("generator-score-ints", lambda: Generator().score([1, 2]), TypeError, ["texts must be strings"]),
    ("generator-score-int", lambda: Generator().score(5), TypeError, ["texts"]),
    ("generate-pattern-int", lambda: Generator().generate(pattern=3), TypeError, ["pattern must be a string"]),
    ("generate-pattern-bad", lambda: Generator().generate(pattern="\\w"), ValueError, ["pattern", "\\w"]),
    ("generate-pattern-unsatisfiable", lambda: Generator().generate(pattern="Q"), ValueError, ["no sample"]),
    ("generate-suffix-none", lambda: Generator().generate(suffix=None), TypeError, ["suffix must be a string"]),
    ("generate-contains-bytes", lambda: Generator().generate(contains=b"a"), TypeError, ["contains"]),
    ("generate-min-length-float", lambda: Generator().generate(min_length=2.0), TypeError, ["min_length"]),
    ("generate-min-length-neg", lambda: Generator().generate(min_length=-2), ValueError, ["min_length"]),
    ("generate-novel-str", lambda: Generator().generate(novel="yes"), TypeError, ["novel must be True or False"]),
    ("generate-unique-int", lambda: Generator().generate(unique=1), TypeError, ["unique"]),
    ("generate-exclude-str", lambda: Generator().generate(exclude="emma"), TypeError, ["exclude must be a list"]),
    ("generate-exclude-ints", lambda: Generator().generate(exclude=[1]), TypeError, ["exclude must hold strings"]),
    ("generate-max-attempts-0", lambda: Generator().generate(unique=True, max_attempts=0), ValueError,
     ["max_attempts must be an integer >= 1"]),
    ("generate-cap", lambda: Generator().generate(5, temperature=0, unique=True), ValueError,
     ["found 1 of 5 samples in 1,000 attempts"]),
    ("generate-novel-no-filter", lambda: Generator("no-novelty.onnx").generate(novel=True), ModelError,
     ["no novelty filter"]),
    ("samples-pattern-bad", lambda: Generator().samples(pattern="a$"), ValueError, ["anchor"]),
    ("trace-index-neg", lambda: Generator().trace(index=-1), ValueError, ["index"]),
    ("trace-pattern-bad", lambda: Generator().trace(pattern="(?i)a"), ValueError, ["pattern"]),
    ("characters-suffix-unknown", lambda: Generator().characters(suffix="É"), ValueError, ["cannot produce"]),
    ("plan-contains-int", lambda: Generator().plan(contains=5), TypeError, ["contains"]),
    ("read-documents-fifo", _read_documents("fifo"), ValueError, ["FIFO"]),
    ("read-documents-dev-zero", _read_documents("/dev/zero"), ValueError, ["character device"]),
    ("read-corpus-late-bad-byte", _read_corpus("late-bad-byte.txt"), ValueError, ["not UTF-8: line 3,001"]),
    ("read-corpus-long-line", _read_corpus("long-line.txt"), ValueError, ["line 3 is 2,097,152 bytes long"]),
    ("held-out-val-max-0", _held_out(100, 0.1, 0), ValueError, ["val_max must be at least 1"]),
    ("held-out-val-max-float", _held_out(100, 0.1, 5.0), TypeError, ["val_max must be an integer"]),
    ("held-out-n-0", _held_out(0, 0.1), ValueError, ["n must be at least 1"]),
    ("load-wte-declares-more", _load("wte-declares-more.npz"), ValueError, ["wte has shape (3750000,)"]),
]
API_CASES += [(f"generator-{name}", _generator(name), ModelError, [words]) for name, words in MODEL_WORDS.items()]
CHECKPOINT_FILES = ["absurd.npz", "declares-4gb.npz", "header-huge.npz", "objects.npz", "wte-declares-more.npz",
                    "late-bad-byte.txt", "long-line.txt"]


@pytest.mark.parametrize("workspace, call, error, words", [
    pytest.param([case[0][len("generator-"):]] if case[0].startswith("generator-") else
                 CHECKPOINT_FILES + ["no-novelty.onnx"],
                 *case[1:], id=case[0]) for case in API_CASES], indirect=["workspace"])
def test_bad_api_arguments_raise_the_documented_error(workspace, call, error, words):
    before = snapshot(workspace)
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is error or (error is ValueError and isinstance(info.value, ValueError)
                                          and not isinstance(info.value, TypeError)), repr(info.value)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert snapshot(workspace) == before


def test_numpy_scalars_are_accepted_where_python_numbers_are():
    from mgpt.train import TrainOptions
    from mgpt.train.data import split

    options = TrainOptions(steps=np.int64(3), batch_size=np.int32(2), lr=np.float32(0.5), beta1=np.float64(0.5),
                           seed=np.uint64(7), shuffle=np.bool_(False))
    assert (options.steps, options.batch_size, options.seed, options.shuffle) == (3, 2, 7, False)
    assert type(options.steps) is int and type(options.lr) is float
    assert split(["a", "b", "c", "d"], np.float32(0.25)) == split(["a", "b", "c", "d"], 0.25)


def test_any_integer_seed_trains_as_it_samples_mod_2_64(workspace):
    from mgpt.train import TrainOptions, train
    from mgpt.train.config import GPTConfig

    docs = NAMES.split()
    run = lambda seed: train(docs, [], GPTConfig(1), TrainOptions(steps=2, seed=seed)).flat
    assert np.array_equal(run(-1), run(2**64 - 1))
    assert not np.array_equal(run(-1), run(1))


def test_a_member_that_disagrees_with_the_config_is_refused_from_its_header(template, monkeypatch):
    """The weights of a checkpoint are read only once every member's declared shape and type
    match its config: of wte-declares-more.npz (30 MB of zeros declared) only 'meta' is read."""
    from mgpt.train import checkpoint

    read = []
    real = checkpoint._read_member
    monkeypatch.setattr(checkpoint, "_read_member", lambda archive, member, name: read.append(member.filename)
                        or real(archive, member, name))
    with pytest.raises(checkpoint.CheckpointError, match=r"wte has shape \(3750000,\), its config needs \(27, 16\)"):
        checkpoint.load(template / "wte-declares-more.npz")
    assert read == ["meta.npy"]
    read.clear()
    checkpoint.load(template / "good.npz")
    with np.load(template / "good.npz") as members:
        assert read[0] == "meta.npy" and sorted(read) == sorted(f"{key}.npy" for key in members.files)  # all of a good one


def test_the_table_is_large():
    assert len(CLI_CASES) + len(API_CASES) >= 120


def test_a_model_file_named_in_capitals_or_like_a_checkpoint_is_told_by_its_content(workspace):
    shutil.copyfile(SHIPPED / "names.onnx", workspace / "model.npz")
    for name in ("GOOD.ONNX", "model.npz"):
        shutil.copyfile(SHIPPED / "names.onnx", workspace / name)
        result = CliRunner().invoke(eval_command, [name, "--data", "names.txt"])
        assert result.exit_code == 0 and "nats/token" in result.output, result.output
