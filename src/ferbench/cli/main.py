"""The ``ferbench`` command line. Thin: parse, call the library, print.

Each command group lives in its own module with a ``register(app)`` function.
User errors (:class:`ferbench.errors.FerbenchError`) print one line and exit with code 2.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time

import typer  # noqa: E402

from ferbench.cli import (  # noqa: E402
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
from ferbench.errors import FerbenchError  # noqa: E402

app = typer.Typer(
    name="ferbench",
    help="Facial expression recognition: benchmark architectures under one protocol, study the knobs, "
    "deploy the chosen model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (data, train, report, models, methods, sweep, crossdomain, explain, deploy):
    _module.register(app)


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
