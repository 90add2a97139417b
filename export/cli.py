"""``mgpt-export``: a thin click command over mgpt.export.export."""

from __future__ import annotations

from pathlib import Path

import click

from mgpt.runtime import __version__
from mgpt.runtime.command import CONTEXT_SETTINGS, Command
from mgpt.train.checkpoint import DEFAULT_PATH, CheckpointError
from mgpt.runtime.paths import PathError

from .exporter import ExportSummary, export
from .graph import DEFAULT_OPSET, ExportError

USER_ERRORS = (CheckpointError, ExportError, PathError)


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=Path(DEFAULT_PATH), show_default=True,
              help="Checkpoint to export (.npz), as mgpt-train writes it.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True,
              help="ONNX opset to target; any that this onnx and onnxruntime support.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run the graph in onnxruntime and compare it with the NumPy forward before writing.")
@click.version_option(__version__, prog_name="mgpt")
def export_command(output, checkpoint, opset, verify):
    """Export a checkpoint as one self-describing ONNX step graph, OUTPUT (.onnx)."""
    try:
        summary = export(checkpoint, output, opset=opset, verify=verify)
    except USER_ERRORS as e:
        raise click.ClickException(str(e)) from e
    for line in summary_lines(summary):
        click.echo(line)


def _shape(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def summary_lines(s: ExportSummary) -> list[str]:
    lines = [f"wrote {s.path} ({s.file_size / 1000:.1f} kB): opset {s.opset}, {s.num_params:,} parameters, "
             f"{s.num_nodes} nodes"]
    for title, rows in (("inputs", s.inputs), ("outputs", s.outputs)):
        lines.append(f"{title}:")
        width = max(len(name) for name, _, _ in rows)
        lines += [f"  {name:<{width}}  {dtype:<7}  {_shape(dims)}" for name, dtype, dims in rows]
    if s.max_error is None:
        lines.append("verification: skipped (--no-verify)")
    else:
        lines.append(f"verification: passed, onnxruntime matches the NumPy forward within {s.max_error:.2g} "
                     f"(tolerance {s.tolerance:.0e}) over positions 0-{s.block_size - 1}, batch {s.verify_batch}")
    return lines
