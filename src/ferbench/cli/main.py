"""The ``ferbench`` command line. Thin: parse, call the library, print.

Each command group lives in its own module with a ``register(app)`` function.
User errors (:class:`ferbench.errors.FerbenchError`) print one line and exit with code 2.
"""

from __future__ import annotations

import inspect
import sys

import typer

from ferbench.cli import (
    crossdomain,
    data,
    deploy,
    explain,
    methods,
    models,
    report,
    sweep,
    train,
)
from ferbench.errors import FerbenchError

app = typer.Typer(
    name="ferbench",
    help="Facial expression recognition: benchmark architectures under one protocol, study the knobs, "
    "deploy the chosen model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from ferbench.version import __version__

        typer.echo(f"ferbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the ferbench version and exit."),
) -> None:
    """Facial expression recognition: benchmark architectures under one protocol, study the knobs, deploy the
    chosen model. Nothing is downloaded at run time (the Hugging Face hub is kept offline)."""

for _module in (data, train, report, models, methods, sweep, crossdomain, explain, deploy):
    _module.register(app)


def _reflow(doc: str | None) -> str | None:
    """A command docstring with each paragraph on one line, so that ``--help`` wraps it to the terminal's width.

    Typer keeps the single line breaks of every paragraph after the first, which at 80 columns cut each source
    line into a long and a short one. A paragraph that starts with ``\\b`` keeps its breaks (click's rule).
    """
    if not doc:
        return doc
    paras = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(ln.strip() for ln in p.splitlines()) for p in paras)


def _reflow_help(t: typer.Typer) -> None:
    for c in t.registered_commands:
        c.help = _reflow(c.help or (c.callback.__doc__ if c.callback else None))
    for g in t.registered_groups:
        if g.typer_instance is not None:
            _reflow_help(g.typer_instance)


_reflow_help(app)


def main() -> None:
    """Console entry point: run the app, turning user errors into one line + exit code 2."""
    try:
        app()
    except FerbenchError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted (finished epochs and results are saved; use --resume)", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
