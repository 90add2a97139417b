"""``mgpt-plot``: a thin click command over mgpt.train.plot."""

from __future__ import annotations

from pathlib import Path

import click

from mgpt.runtime import __version__
from mgpt.runtime.command import CONTEXT_SETTINGS, Command
from mgpt.runtime.paths import PathError, check_input

from .files import check_writable
from .plot import PlotError, plot


def image_path_for(metrics: Path) -> Path:
    """run.metrics.jsonl -> run.loss.png, beside it."""
    name = metrics.name.removesuffix(".jsonl").removesuffix(".metrics")
    return metrics.with_name(name + ".loss.png")


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.argument("metrics", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Image to write: .png, .svg or .pdf. [default: METRICS's name with .loss.png]")
@click.option("--width", type=click.IntRange(min=200, max=10000), default=1000, show_default=True,
              help="Width in pixels (a PNG's exact size; SVG and PDF at 100 pixels an inch).")
@click.option("--height", type=click.IntRange(min=150, max=10000), default=450, show_default=True,
              help="Height in pixels.")
@click.version_option(__version__, prog_name="mgpt")
def plot_command(metrics, output, width, height):
    """Plot the train and held-out loss of an mgpt-train metrics log against steps and time."""
    try:
        output = check_writable(output or image_path_for(metrics), "--output")
        check_input(metrics, "metrics log", "pass the .metrics.jsonl file mgpt-train wrote")  # a FIFO would block
        plot(metrics, output, width, height)
    except (PathError, PlotError) as e:
        raise click.ClickException(str(e)) from e
    except ImportError as e:
        raise click.ClickException(f'mgpt-plot needs matplotlib ({e}); install it with pip install "mgpt[plot]"') from e
    click.echo(f"wrote {output}")
