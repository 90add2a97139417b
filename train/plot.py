"""A picture of a training run: train and held-out loss against steps and against time, from the
metrics log that mgpt-train writes. Needs matplotlib (``pip install "mgpt[plot]"``), imported only
when a figure is drawn, so reading a log and the command's --help work without it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mgpt.runtime.paths import PathError, check_paths

from .files import atomic_write

FORMATS = ("png", "svg", "pdf")  # what the output's suffix may be
DPI = 100  # pixels per inch of a PNG: its size in pixels is the size given, exactly


class PlotError(ValueError):
    """A metrics log that cannot be plotted, or an output that cannot be written."""


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics log (JSON lines with a numeric "step" and "loss", and "val_loss",
    "seconds" where present), checked line by line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlotError(f"metrics log {str(path)!r} does not exist; pass the .metrics.jsonl mgpt-train wrote") from None
    except IsADirectoryError:
        raise PlotError(f"metrics log {str(path)!r} is a directory; pass a .metrics.jsonl file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlotError(f"cannot read metrics log {str(path)!r}: {e}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        problem = _problem(record)
        if problem:
            raise PlotError(f"line {number} of {str(path)!r} {problem}; pass a log written by mgpt-train")
        records.append(record)
    if not records:
        raise PlotError(f"metrics log {str(path)!r} has no records; train for at least one step")
    return records


# No run logs a step, a second or a loss beyond this (training stops when a loss passes 100 ln(vocab));
# far inside it, matplotlib can scale any axis (at 1e308 it overflows and raises).
MAX_VALUE = 1e12
PLOTTED = ("step", "loss", "val_loss", "seconds")  # step and loss always, the others where present


def _problem(record) -> str | None:
    """Why ``record`` (a parsed log line) cannot be plotted, or None."""
    if not (isinstance(record, dict) and all(_number(record.get(k)) for k in ("step", "loss"))
            and all(_number(record[k]) for k in PLOTTED if k in record)):
        return "is not a metrics record (a JSON object with numbers step and loss)"
    for key in PLOTTED:
        if key in record and abs(record[key]) > MAX_VALUE:
            return f"has {key} {record[key]:g}, beyond the {MAX_VALUE:g} that any training run logs"
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def figure(records: list[dict], width: int = 1000, height: int = 450):
    """A matplotlib Figure of ``width`` x ``height`` pixels (at DPI): the loss against steps on the
    left and against seconds on the right (when the log has times), train and held-out lines."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    timed = all("seconds" in r for r in records)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2 if timed else 1, sharey=True, squeeze=False)[0]
    held = [r for r in records if "val_loss" in r]
    for ax, x in zip(axes, ["step", "seconds"]):
        ax.plot([r[x] for r in records], [r["loss"] for r in records], label="train", linewidth=1)
        if held:
            ax.plot([r[x] for r in held], [r["val_loss"] for r in held], label="held-out", marker=".")
        ax.set_xlabel("step" if x == "step" else "seconds of training")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats/token)")
    axes[0].legend()
    best = min(held, key=lambda r: r["val_loss"]) if held else None
    fig.suptitle(f"best held-out {best['val_loss']:.4f} at step {best['step']}" if best
                 else f"{records[-1]['step']} steps, final loss {records[-1]['loss']:.4f}")
    return fig


def plot(metrics: str | Path, output: str | Path, width: int = 1000, height: int = 450) -> Path:
    """Draw the log ``metrics`` into ``output`` (.png, .svg or .pdf, by its suffix), atomically."""
    output = Path(output)
    check_paths({"the metrics log": metrics}, {"output": output})  # by file identity: links too
    kind = output.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise PlotError(f"output {str(output)!r} has no image suffix; end it in {', '.join('.' + f for f in FORMATS)}")
    records = read_metrics(metrics)
    try:
        fig = figure(records, width, height)
        with atomic_write(output, "wb") as f:
            fig.savefig(f, format=kind)
    except PathError:  # a ValueError too, with its own message: the output could not be written
        raise
    except (ValueError, OverflowError) as e:  # what matplotlib raises for data it cannot lay out
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PlotError(f"matplotlib could not draw {str(metrics)!r} ({reason}); nothing was written") from e
    return output
