"""mgpt-generate (and mgpt-eval on .onnx files) through click's runner and, once, the real script:
output formats, reproducibility, and every bad input as a one-line error with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

import runtime_models
from mgpt.runtime import Generator, default_model_path
from mgpt.runtime.cli import generate_command
from mgpt.train import checkpoint as ckpt_io
from mgpt.train.cli import eval_command


@pytest.fixture(scope="module")
def ckpt():
    return runtime_models.small_checkpoint()


@pytest.fixture(scope="module")
def model(ckpt, tmp_path_factory) -> str:
    return str(runtime_models.export_to(ckpt, tmp_path_factory.mktemp("cli") / "small.onnx"))


def run(*args: str):
    return CliRunner().invoke(generate_command, list(args))


def test_prints_20_samples_in_the_seeds_format(model):
    result = run("--model", model, "--seed", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    expected = Generator(model).generate(20, temperature=0.5, seed=3)
    assert lines == [f"sample {i:2d}: {s}" for i, s in enumerate(expected, start=1)]
    assert lines[0].startswith("sample  1: ")


def test_formats_options_and_reproducibility(model):
    args = ["--model", model, "-n", "30", "--seed", "5", "-t", "1.2", "--top-k", "8", "--top-p", "0.95",
            "--prefix", "ma", "--batch-size", "4"]
    names = run(*args, "--format", "names").output.splitlines()
    assert names == Generator(model).generate(30, 1.2, 8, 0.95, 5, "ma")
    assert names == run(*args[:-2], "--batch-size", "30", "--format", "names").output.splitlines()
    rows = [json.loads(line) for line in run(*args, "--format", "jsonl").output.splitlines()]
    assert rows == [{"sample": i, "text": s} for i, s in enumerate(names, start=1)]
    assert run("--model", model, "-n", "0").output == ""


def test_greedy_and_max_length(model):
    out = run("--model", model, "-n", "3", "-t", "0", "--max-length", "2", "--format", "names").output.split()
    assert len(set(out)) == 1 and len(out[0]) <= 2


SMALL_BAD_OPTIONS = [
    (["-t", "-0.5"], "--temperature"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.01"], "--top-p"),
    (["--top-k", "0"], "--top-k"),
    (["-n", "-1"], "--num-samples"),
    (["--batch-size", "0"], "--batch-size"),
    (["--max-length", "0"], "--max-length"),
    (["--max-length", "9"], "exceeds the model's block size 8"),
    (["--prefix", "Zoe"], "characters not in the vocabulary: 'Z'"),
    (["--prefix", "abcdefgh"], "must be shorter than the block size 8"),
    (["--format", "xml"], "--format"),
]


@pytest.mark.parametrize("args, message", SMALL_BAD_OPTIONS)
def test_bad_options_are_one_line_errors(model, args, message):
    result = run("--model", model, *args)
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and message in error[0], result.output
    assert "Traceback" not in result.output


def test_bad_model_files_are_one_line_errors(tmp_path, ckpt, model):
    (tmp_path / "notes.txt").write_text("hello")
    bare = onnx.load(model)
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    cases = [
        (tmp_path / "missing.onnx", "does not exist"),
        (tmp_path / "notes.txt", "is not an ONNX model that onnxruntime can load"),
        (runtime_models.identity_model(tmp_path / "identity.onnx"), "is an ONNX model but not an mgpt step graph"),
        (tmp_path / "bare.onnx", "is an ONNX model but not an mgpt step graph"),
        (runtime_models.identity_model(tmp_path / "fake.onnx", runtime_models.mgpt_props(ckpt)),
         "is not a usable mgpt step graph"),
        (runtime_models.hollow_model(tmp_path / "hollow.onnx", ckpt), "its step at position 0 returns logits of shape"),
    ]
    for path, message in cases:
        result = run("--model", str(path))
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and message in result.output


@pytest.mark.parametrize("kind, message", [("nan", "gave logits that are not finite (NaN or infinity) at position 1"),
                                           ("error", "failed in onnxruntime at position 1")])
def test_a_model_that_breaks_while_sampling_or_scoring_is_a_one_line_error(tmp_path, ckpt, kind, message):
    path, trigger = runtime_models.late_failing_model(tmp_path / f"{kind}.onnx", ckpt, kind)
    path = str(path)
    for result in (run("--model", path, "-n", "100", "--prefix", trigger, "-t", "0"),
                   run("--model", path, "-n", "100", "--prefix", trigger, "--batch-size", "1")):
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and message in result.output
    data = tmp_path / "names.txt"
    data.write_text(f"emma\n{trigger}ia\n")
    scored = CliRunner().invoke(eval_command, [path, "--data", str(data)])
    assert scored.exit_code == 1 and scored.output.count("\n") == 1 and message in scored.output, scored.output


def test_the_installed_script_runs_and_reports_errors_without_a_traceback(model, tmp_path):
    script = Path(sys.executable).with_name("mgpt-generate")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "mgpt.runtime.cli"]
    ok = subprocess.run([*argv, "--model", model, "-n", "3", "--seed", "1"], capture_output=True, text=True)
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 3 and ok.stderr == ""
    bad = subprocess.run([*argv, "--model", str(tmp_path / "none.onnx")], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_without_model_uses_the_shipped_default():
    if not default_model_path().exists():
        result = run("-n", "1")
        assert result.exit_code == 1 and "default model" in result.output and "is not installed" in result.output
        pytest.skip("the default model is not in this tree; the release ships it")
    result = run("-n", "5", "--seed", "1", "--format", "names")
    assert result.exit_code == 0 and len(result.output.splitlines()) == 5


def test_eval_scores_an_onnx_file_like_its_checkpoint(ckpt, model, tmp_path):
    ckpt_io.save(tmp_path / "small.npz", ckpt)
    data = tmp_path / "names.txt"
    data.write_text("emma\nolivia\nchristopher\nkaya\n")
    from_onnx = CliRunner().invoke(eval_command, [model, "--data", str(data)])
    from_npz = CliRunner().invoke(eval_command, [str(tmp_path / "small.npz"), "--data", str(data)])
    assert from_onnx.exit_code == from_npz.exit_code == 0, from_onnx.output + from_npz.output
    nll_onnx, rest_onnx = from_onnx.output.split(" ", 1)
    nll_npz, rest_npz = from_npz.output.split(" ", 1)
    assert abs(float(nll_onnx) - float(nll_npz)) <= 1e-4 and rest_onnx == rest_npz
    bad = CliRunner().invoke(eval_command, [str(runtime_models.identity_model(tmp_path / "x.onnx")),
                                            "--data", str(data)])
    assert bad.exit_code == 1 and "not an mgpt step graph" in bad.output
