"""Command-line plumbing the benchmarks share with :mod:`plastix.cli`: one-line usage errors, and running one
benchmark command on its own (``python -m plastix.bench.ad|online|orders``).

Each benchmark module defines its command as a plain function with typer-annotated options (``command``) and a
``main(argv)`` that runs it through :func:`run_command`; :mod:`plastix.cli` mounts the same functions as
``plastix bench ad``, ``plastix bench online`` and ``plastix orders``. So the command line imports the
benchmarks, never the reverse.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer
from typer.core import TyperGroup

__all__ = ["OneLineErrors", "int_list", "main_one_line", "run_command"]

# The base class of click's usage errors, whether typer vendors click (typer >= 0.2x) or depends on it.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main_one_line(main: Callable, args, prog_name, **extra):
    """Run a click ``main`` with usage errors as one ``Error: ...`` line on stderr (never a traceback or a boxed
    panel); exits with the command's status."""
    try:
        rv = main(args, prog_name, standalone_mode=False, **extra)
    except _ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: show the help, it is not an error
            typer.echo(e.format_message())
            sys.exit(0)
        message = " ".join(e.format_message().split())
        typer.echo(f"Error: {message}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


class OneLineErrors(TyperGroup):
    """A command group whose usage errors are one line on stderr (:func:`main_one_line`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)

        def group_main(args, prog_name, **kwargs):
            return super(OneLineErrors, self).main(args, prog_name, complete_var, **kwargs)

        return main_one_line(group_main, args, prog_name, **extra)


def run_command(command: Callable, argv: Sequence[str] | None, prog_name: str) -> None:
    """Run one typer-annotated command function as a program (``argv`` default: ``sys.argv[1:]``)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command()(command)
    main_one_line(typer.main.get_command(app).main, list(sys.argv[1:] if argv is None else argv), prog_name)


def int_list(text: str, name: str) -> list[int]:
    """``"128,512"`` -> ``[128, 512]``; a usage error naming option ``name`` unless all are positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{name} must be a comma-separated list of positive integers, got {text!r}")
    return values
