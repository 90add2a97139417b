"""The quickstart's pipeline through the real commands, with their default paths:
mgpt-train -> mgpt-export model.onnx -> mgpt-generate --model model.onnx."""

import re

import pytest
from click.testing import CliRunner

from mgpt.export.cli import export_command
from mgpt.runtime import Generator
from mgpt.train import checkpoint
from mgpt.train.cli import eval_command, train_command
from mgpt.runtime.cli import generate_command


def test_train_export_generate_with_default_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    trained = runner.invoke(train_command, ["--steps", "200", "--batch-size", "8", "-q"])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / checkpoint.DEFAULT_PATH).exists()

    exported = runner.invoke(export_command, ["model.onnx"])
    assert exported.exit_code == 0, exported.output
    assert "verification: passed" in exported.output

    generated = runner.invoke(generate_command, ["--model", "model.onnx", "--temperature", "0.5", "--seed", "3"])
    assert generated.exit_code == 0, generated.output
    lines = generated.output.splitlines()
    assert [line[:10] for line in lines] == [f"sample {i:2d}:" for i in range(1, 21)]
    names = [line[11:] for line in lines]
    assert all(re.fullmatch(r"[a-z]{0,8}", n) for n in names)
    assert len(set(names)) > 10  # 200 steps of 8 names already make varied samples

    # the exported file scores the data like its checkpoint (float32 vs float64 arithmetic; both
    # printed to 4 decimals, so the printed figures may differ by one in the last place)
    nll_ckpt = float(runner.invoke(eval_command, [checkpoint.DEFAULT_PATH]).output.split()[0])
    nll_onnx = float(runner.invoke(eval_command, ["model.onnx"]).output.split()[0])
    assert nll_onnx == pytest.approx(nll_ckpt, abs=1.5e-4)
    assert nll_ckpt < 2.6  # well below uniform over 27 symbols (3.30)

    # and the training record travels inside the .onnx
    info = Generator("model.onnx").info
    assert info.training["steps"] == 200 and info.training["batch_size"] == 8
