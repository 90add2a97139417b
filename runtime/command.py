"""The click command class of every mgpt command: a mistaken option is one line of error, like
every other error, instead of click's usage block. (Imported by the commands only, never by
``mgpt.runtime`` itself.)"""

from __future__ import annotations

import os
import sys

import click

# Every command: -h as well as --help, and help text wider than click's 80 columns.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class OptionError(click.ClickException):
    """A bad option or argument: printed as one ``Error:`` line, exit status 2 as click's own."""

    exit_code = 2


class FiniteRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (which slip through its comparisons)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if value != value or value in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return value


class OutputClosed(click.ClickException):
    """Standard output that cannot take what the command prints: one line, exit status 1."""


class _QuietExit(Exception):
    """The reader of standard output went away (``| head``): stop without a word, like other tools."""


class _Stdout:
    """sys.stdout for the length of a command: a write or flush that fails becomes one of the two
    exceptions above instead of an OSError traceback (or Python's "Exception ignored" at exit)."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise _QuietExit from None
        except (OSError, UnicodeEncodeError, ValueError) as e:  # /dev/full, EIO, a closed file, an encoding
            reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
            raise OutputClosed(f"could not write to standard output ({reason}); "
                               f"redirect it to a file that can take the output") from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence_stdout(stream) -> None:
    """Point file descriptor 1 at /dev/null, when ``stream`` writes there, so that what is left in
    its buffer does not fail again when Python flushes it at exit."""
    try:
        if stream.fileno() != 1:
            return
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both an OSError and a ValueError
        pass


class Command(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # unknown option, bad value, missing argument
            raise OptionError(f"{e.format_message()} (see {ctx.command_path} --help)") from e

    def invoke(self, ctx: click.Context):
        """Run the command with its standard output guarded, once for every command: closed
        (``>&-``), full (``> /dev/full``) or failing is one Error line before or after the work;
        a broken pipe ends quietly with status 0, and Ctrl-C with 130."""
        if sys.stdout is None:  # >&-: Python had no stream to give us
            raise OutputClosed("standard output is closed; redirect it (to /dev/null to discard the output)")
        original, sys.stdout = sys.stdout, _Stdout(sys.stdout)
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except _QuietExit:
            _silence_stdout(original)
            ctx.exit(0)
        except KeyboardInterrupt:  # Ctrl-C where a command does not take it itself: the shell's 130, quietly
            ctx.exit(130)
        except OutputClosed:
            _silence_stdout(original)
            raise
        finally:
            if sys.stdout is not None and isinstance(sys.stdout, _Stdout):
                sys.stdout = original
