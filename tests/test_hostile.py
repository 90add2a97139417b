"""Hostile input, as a table: every bad input to the four commands and to the Python API is one
`Error:` line with the documented exit status (2 for a mistaken option, 1 for bad files, data or
results), or for the API one exception of the documented type naming the argument; never a
traceback, and every file that existed before is byte-identical after (and no temporary file is
left). The workspace holds a small data file, a good checkpoint and model, and the hostile ones."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mgpt.models
from mgpt.export.cli import export_command
from mgpt.runtime.cli import generate_command
from mgpt.train.cli import eval_command, train_command

COMMANDS = {"train": train_command, "eval": eval_command, "export": export_command, "generate": generate_command}
SHIPPED = Path(mgpt.models.__file__).parent
NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "liam", "noah", "jo", "kaya"] * 5) + "\n"


def make_workspace(folder: Path) -> None:
    """The files the table's cases point at, by name."""
    (folder / "names.txt").write_text(NAMES)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text("\n \n\n")
    (folder / "latin1.txt").write_bytes("jos\xe9\n".encode("latin-1"))
    (folder / "digits.txt").write_text("123\n456\n")  # characters the shipped model does not know
    shutil.copy(SHIPPED / "names.npz", folder / "good.npz")
    shutil.copy(SHIPPED / "names.onnx", folder / "good.onnx")
    shutil.copy(SHIPPED / "names.onnx", folder / "GOOD.ONNX")
    (folder / "ro.npz").write_bytes(b"read-only")
    (folder / "ro.npz").chmod(0o444)
    (folder / "dir").mkdir()
    (folder / "dir.npz").mkdir()
    os.mkfifo(folder / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    os.symlink("good.npz", folder / "link.npz")
    os.symlink("names.txt", folder / "names-link.txt")
    (folder / "text.npz").write_text("not a zip")
    (folder / "text.onnx").write_text("not a model")
    (folder / "half.npz").write_bytes((SHIPPED / "names.npz").read_bytes()[:5000])
    (folder / "half.onnx").write_bytes((SHIPPED / "names.onnx").read_bytes()[:5000])


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
    ("train-diverges-lr-1e6", "train", ["--data", "names.txt", "--out", "d.npz", "--lr", "1e6", "--steps", "50", "-q"], 1,
     ["diverged", "lower --lr"]),
    ("train-unknown-option", "train", ["--colour"], 2, ["--colour"]),
    ("train-extra-argument", "train", ["names.txt"], 2, ["names.txt"]),
]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command, args, status, words",
                         [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
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
    ("split-fraction-1", _split(["a", "b"], 1.0), ValueError, ["val_fraction"]),
    ("split-fraction-neg", _split(["a", "b"], -0.5), ValueError, ["val_fraction"]),
    ("split-fraction-nan", _split(["a", "b"], float("nan")), ValueError, ["val_fraction"]),
    ("split-fraction-bool", _split(["a", "b"], True), TypeError, ["val_fraction"]),
    ("split-fraction-str", _split(["a", "b"], "0.1"), TypeError, ["val_fraction"]),
    ("split-documents-str", _split("abc", 0.1), TypeError, ["documents"]),
    ("split-documents-ints", _split([1, 2], 0.1), TypeError, ["documents"]),
    ("split-all-held-out", _split(["a", "b"], 0.9), ValueError, ["leaves no training"]),
]


@pytest.mark.parametrize("call, error, words", [pytest.param(*case[1:], id=case[0]) for case in API_CASES])
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
