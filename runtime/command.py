"""The click command class of every mgpt command: a mistaken option is one line of error, like
every other error, instead of click's usage block. (Imported by the commands only, never by
``mgpt.runtime`` itself.)"""

from __future__ import annotations

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


class Command(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # unknown option, bad value, missing argument
            raise OptionError(f"{e.format_message()} (see {ctx.command_path} --help)") from e
