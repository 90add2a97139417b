"""What mgpt-train shows and logs while it runs: a live status line (or plain periodic lines), and a
metrics log that stays small. Both are fed the trainer's per-step records
{"step", "lr", "loss", "seconds"[, "val_loss"][, "last"]}."""

from __future__ import annotations

import json
import time
from typing import IO, Callable

PLAIN_EVERY_SECONDS = 30.0  # a plain line at least this often, so a slow run still shows it is alive
REDRAW_SECONDS = 0.1  # a terminal's line is redrawn at most 10 times a second
BAR_WIDTH = 20


def clock(seconds: float) -> str:
    """4.25 -> '4.2s', 83.4 -> '1:23', 4000 -> '1:06:40'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """On a terminal, one line redrawn in place: a bar, the step, the loss (mean of the steps since
    the last redraw), the latest held-out loss, steps/s, elapsed and time left. Otherwise a plain
    line at every held-out evaluation, every ``every`` steps, the last step and at least every 30 s.
    ``write(text, end)`` prints (to stderr in mgpt-train)."""

    def __init__(self, write: Callable[[str, bool], None], tty: bool, steps: int | None,
                 time_limit: float | None, every: int):
        self.write, self.tty, self.steps, self.time_limit, self.every = write, tty, steps, time_limit, every
        self.last_shown, self.losses, self.val_loss, self.open_line = time.perf_counter(), [], None, False

    def fraction(self, record: dict) -> float:
        """How much of the run is done: by steps, by the clock, or whichever is further."""
        done = record["step"] / self.steps if self.steps else 0.0
        if self.time_limit:
            done = max(done, record["seconds"] / self.time_limit)
        return min(done, 1.0)

    def __call__(self, record: dict) -> None:
        self.losses.append(record["loss"])
        if "val_loss" in record:
            self.val_loss = record["val_loss"]
        now = time.perf_counter()
        last = record.get("last", False)  # the trainer's word: with a time limit no step count tells
        if self.tty:
            due = now - self.last_shown >= REDRAW_SECONDS or last or "val_loss" in record
        else:
            due = ("val_loss" in record or last or record["step"] % self.every == 0
                   or now - self.last_shown >= PLAIN_EVERY_SECONDS)
        if due:
            self.last_shown = now
            self.show(record, final=last)

    def show(self, record: dict, final: bool = False) -> None:
        done = self.fraction(record)
        seconds = record["seconds"]
        rate = record["step"] / max(seconds, 1e-9)
        total = f"/{self.steps}" if self.steps else ""
        parts = [f"step {record['step']:>{len(str(self.steps or ''))}}{total}",
                 f"loss {sum(self.losses) / len(self.losses):.4f}"]
        self.losses = []
        if self.val_loss is not None:
            parts.append(f"held-out {self.val_loss:.4f}")
        parts += [f"lr {record['lr']:.2e}", f"{rate:,.0f} steps/s", f"{clock(seconds)} elapsed"]
        if 0 < done < 1:
            parts.append(f"{clock(seconds * (1 - done) / done)} left")
        line = " | ".join(parts)
        if self.tty:
            filled = int(round(done * BAR_WIDTH))
            self.write("\r" + f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {line}\x1b[K", final)
            self.open_line = not final
        else:
            self.write(line, True)

    def end(self) -> None:
        """Finish a redrawn line (a run stopped before its last step) before other output."""
        if self.open_line:
            self.write("", True)
            self.open_line = False


class Reading:
    """A data file's reading as a bar redrawn in place, on a terminal only, and only once reading
    has taken SHOW_AFTER_SECONDS (a small file shows nothing): bytes read of the file's size and
    the rate. Called as data.read_corpus's ``progress(bytes_read, bytes_total)``."""

    SHOW_AFTER_SECONDS = 0.5

    def __init__(self, write: Callable[[str, bool], None], tty: bool, name: str):
        self.write, self.tty, self.name = write, tty, name
        self.start, self.last_shown, self.open_line = time.perf_counter(), 0.0, False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.tty or now - self.start < self.SHOW_AFTER_SECONDS or now - self.last_shown < REDRAW_SECONDS:
            return
        self.last_shown = now
        filled = int(round(done / max(total, 1) * BAR_WIDTH))
        rate = done / (now - self.start) / 1e6
        self.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] reading {self.name}: {done / 1e6:,.0f} of "
                   f"{total / 1e6:,.0f} MB | {rate:,.0f} MB/s | {clock(now - self.start)} elapsed\x1b[K", False)
        self.open_line = True

    def end(self) -> None:
        """Clear the bar (the training's progress takes the line)."""
        if self.open_line:
            self.write("\r\x1b[K", False)
            self.open_line = False


def significant(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits: 2.42763 is more than a loss curve shows,
    and json would write 2.4276341859120347 (a third of a log line's bytes)."""
    return float(f"{value:.{digits}g}")


class MetricsLog:
    """JSON lines, one every ``every`` steps plus every evaluation and the last step done. A line's
    "loss" is the mean of the steps since the previous line (every step's own loss when every=1), so
    a long run's log stays small. Losses and the learning rate keep 6 significant digits, seconds 4
    decimals, and lines are written without spaces: about 9 bytes a step by default (docs/formats.md)."""

    def __init__(self, file: IO[str], every: int, run: str | None = None):
        self.file, self.every = file, every
        self.run = {"run": run} if run else {}  # the run's id, also in its checkpoint: they belong together
        self.losses: list[float] = []
        self.pending: dict | None = None

    def __call__(self, record: dict) -> None:
        self.losses.append(record["loss"])
        self.pending = record
        if record["step"] % self.every == 0 or "val_loss" in record or record.get("last"):
            self.flush()

    def flush(self) -> None:
        """Write the pending line, if any: the run's last step done always ends the log."""
        if self.pending is None:
            return
        record = self.pending
        line = {"step": record["step"], "lr": significant(record["lr"]),
                "loss": significant(sum(self.losses) / len(self.losses)), "seconds": round(record["seconds"], 4)}
        if "val_loss" in record:
            line["val_loss"] = significant(record["val_loss"])
        self.file.write(json.dumps({**line, **self.run}, separators=(",", ":")) + "\n")
        self.losses, self.pending = [], None
