"""mgpt-plot: the image is there, has the size asked for, and draws the log's numbers."""

import json
import struct
import sys

import pytest
from click.testing import CliRunner

from mgpt.train.plot import read_metrics
from mgpt.train.plot_cli import plot_command

RECORDS = [{"step": 10 * i, "lr": 0.01, "loss": 3.3 - 0.1 * i, "seconds": 0.5 * i} for i in range(1, 11)]
RECORDS[4]["val_loss"], RECORDS[9]["val_loss"] = 2.85, 2.9  # held out at steps 50 and 100: the best is 50


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "run.metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def png_size(path):
    """(width, height) from a PNG's IHDR chunk: 8 signature bytes, length, type, then two big-endian ints."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_png_has_the_size_asked_for(tmp_path, log):
    pytest.importorskip("matplotlib", reason="mgpt-plot needs the optional matplotlib (mgpt[plot])")
    result = CliRunner().invoke(plot_command, [str(log), "--width", "640", "--height", "360"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run.loss.png"  # the default name, beside the log
    assert png_size(out) == (640, 360)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([log.name, out.name])  # no temporary file left


def test_an_svg_is_written_where_asked(tmp_path, log):
    pytest.importorskip("matplotlib", reason="mgpt-plot needs the optional matplotlib (mgpt[plot])")
    out = tmp_path / "loss.svg"
    result = CliRunner().invoke(plot_command, [str(log), "-o", str(out)])
    assert result.exit_code == 0, result.output
    head = out.read_text()[:2000]
    assert "<svg" in head and 'width="720pt"' in head and 'height="324pt"' in head  # 1000 x 450 px at 100 dpi


def assert_draws(fig, records):
    """``fig`` has the train and held-out loss of ``records`` against steps, then against seconds."""
    by_steps, by_time = fig.axes
    held = [r for r in records if "val_loss" in r]
    for ax, x in ((by_steps, "step"), (by_time, "seconds")):
        train_line, held_line = ax.get_lines()
        assert train_line.get_label() == "train" and held_line.get_label() == "held-out"
        assert list(train_line.get_xdata()) == [r[x] for r in records]
        assert list(train_line.get_ydata()) == [r["loss"] for r in records]
        assert list(held_line.get_xdata()) == [r[x] for r in held]
        assert list(held_line.get_ydata()) == [r["val_loss"] for r in held]


def test_the_plotted_lines_are_the_logs_values():
    pytest.importorskip("matplotlib", reason="mgpt-plot needs the optional matplotlib (mgpt[plot])")
    from mgpt.train.plot import figure

    fig = figure(RECORDS)
    assert_draws(fig, RECORDS)
    assert "best held-out 2.8500 at step 50" in fig.texts[0].get_text()


def test_mgpt_plot_draws_the_log_a_real_mgpt_train_run_wrote(tmp_path, monkeypatch):
    # 40 steps of mgpt-train on a tiny file (a line every 5 steps, an evaluation every 10), then
    # mgpt-plot on its log, as a user runs them; the figure mgpt-plot draws is caught on its way out
    pytest.importorskip("matplotlib", reason="mgpt-plot needs the optional matplotlib (mgpt[plot])")
    from mgpt.train import plot
    from mgpt.train.cli import train_command

    data = tmp_path / "names.txt"
    data.write_text("emma\nolivia\nava\nisabella\nsophia\nmia\nliam\nnoah\njo\nkaya\n" * 2)
    trained = CliRunner().invoke(train_command, ["--data", str(data), "--out", str(tmp_path / "run.npz"),
                                                 "--steps", "40", "--batch-size", "2", "--val-fraction", "0.2",
                                                 "--eval-every", "10", "--metrics-every", "5", "-q"])
    assert trained.exit_code == 0, trained.output
    log = tmp_path / "run.metrics.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(5, 41, 5))

    drawn, figure = [], plot.figure
    monkeypatch.setattr(plot, "figure", lambda *args: drawn.append(figure(*args)) or drawn[-1])
    result = CliRunner().invoke(plot_command, [str(log)])
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "run.loss.png") == (1000, 450)
    assert_draws(drawn[0], records)
    best = min((r for r in records if "val_loss" in r), key=lambda r: r["val_loss"])
    assert f"best held-out {best['val_loss']:.4f} at step {best['step']}" in drawn[0].texts[0].get_text()


@pytest.mark.parametrize("content,args,words", [
    (None, [], ["does not exist"]),
    ("", [], ["no records"]),
    ('{"step": 1, "loss": 2.0}\nnot json\n', [], ["line 2", "not a metrics record"]),
    ('{"step": 1, "loss": NaN}\n', [], ["line 1"]),
    ('{"step": true, "loss": 2.0}\n', [], ["line 1"]),
    ('{"step": 1, "loss": 2.0}\n', ["-o", "{dir}/out.jpg"], [".png", ".svg"]),
    ('{"step": 1, "loss": 2.0}\n', ["-o", "{dir}/run.metrics.jsonl"], ["same file as the metrics log"]),
    ('{"step": 1, "loss": 2.0}\n', ["-o", "{dir}/missing/out.png"], ["--output", "does not exist"]),
    ('{"step": 1, "loss": 2.0}\n', ["--width", "5"], ["--width"]),
    ('{"step": 1, "loss": 1e308}\n{"step": 2, "loss": -1e308}\n', [], ["line 1", "loss 1e+308"]),  # finite, but
    ('{"step": 1, "loss": 2.0, "seconds": -1e300}\n', [], ["line 1", "seconds"]),  # matplotlib cannot scale it
    ('{"step": 1e13, "loss": 2.0}\n', [], ["line 1", "step 1e+13"]),
])
def test_bad_input_is_one_line_of_error(tmp_path, content, args, words):
    log = tmp_path / "run.metrics.jsonl"
    if content is not None:
        log.write_text(content)
    result = CliRunner().invoke(plot_command, [str(log)] + [a.format(dir=tmp_path) for a in args])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert all(w in errors[0] for w in words), errors[0]
    if content is not None:
        assert log.read_text() == content  # the log is never touched
    assert [p.name for p in tmp_path.iterdir()] == ([log.name] if content is not None else [])  # nothing written


def test_what_matplotlib_cannot_draw_is_one_line_of_error(tmp_path, log, monkeypatch):
    # whatever slips past the log's checks: matplotlib's ValueError names the log, leaves nothing behind
    pytest.importorskip("matplotlib", reason="mgpt-plot needs the optional matplotlib (mgpt[plot])")
    from matplotlib.figure import Figure

    def fail(self, *args, **kwargs):
        raise ValueError("arange: cannot compute length")

    monkeypatch.setattr(Figure, "savefig", fail)
    result = CliRunner().invoke(plot_command, [str(log)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("Error: matplotlib could not draw") and "arange" in result.output
    assert list(tmp_path.iterdir()) == [log]


def test_without_matplotlib_the_command_says_how_to_get_it(tmp_path, log, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes its import fail
    result = CliRunner().invoke(plot_command, [str(log)])
    assert result.exit_code == 1
    assert 'pip install "mgpt[plot]"' in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [log]  # nothing written, no temporary file left


def test_read_metrics_reads_what_mgpt_train_writes(log):
    assert read_metrics(log) == RECORDS
