"""Every command's option mistakes are one line of error with exit status 2, like click's own code
for usage errors, and no usage block."""

import pytest
from click.testing import CliRunner

from mgpt.export.cli import export_command
from mgpt.runtime.cli import generate_command
from mgpt.train.cli import eval_command, train_command


@pytest.mark.parametrize("command, args, words", [
    (train_command, ["--steps", "0"], ["--steps", "x>=1", "(see mgpt-train --help)"]),
    (train_command, ["--bogus"], ["--bogus"]),
    (train_command, ["--val-fraction", "1"], ["--val-fraction"]),
    (eval_command, ["--data"], ["--data", "requires an argument"]),
    (export_command, [], ["Missing argument 'OUTPUT'"]),
    (export_command, ["x.onnx", "--opset", "abc"], ["--opset", "not a valid integer"]),
    (generate_command, ["--temperature", "-1"], ["--temperature", "x>=0"]),
    (generate_command, ["--top-p", "0"], ["--top-p"]),
    (generate_command, ["--top-k", "0"], ["--top-k"]),
    (generate_command, ["-n", "-1"], ["--num-samples"]),
    (generate_command, ["--prefix", "ab9"], ["--prefix", "'9'"]),
    (generate_command, ["--prefix", "abcdefgh"], ["--prefix", "shorter"]),
])
def test_option_mistakes_are_one_line(command, args, words):
    name = {train_command: "mgpt-train", eval_command: "mgpt-eval", export_command: "mgpt-export",
            generate_command: "mgpt-generate"}[command]
    result = CliRunner().invoke(command, args, prog_name=name)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0]
