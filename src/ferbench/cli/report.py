"""``ferbench report``: Markdown + HTML report over run directories (or a sweep's results database)."""

from __future__ import annotations

from pathlib import Path

import typer


def report_cmd(
    runs: list[Path] = typer.Argument(None, help="Run directories to report on."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder for report.md, report.html, PNGs."),
    db: Path | None = typer.Option(None, "--db", help="A sweep's results.db instead of run directories."),
) -> None:
    """Write report.md and report.html: metrics table, confusion matrices, learning curves."""
    from ferbench.errors import FerbenchError

    if db is not None:
        try:
            from ferbench.report.study import write_study_report
        except ImportError:
            raise FerbenchError("report --db needs the sweep module (ferbench.report.study)") from None
        path = write_study_report(db, out)
    else:
        if not runs:
            raise FerbenchError("give run directories or --db results.db")
        from ferbench.report.runs import write_report

        path = write_report(list(runs), out)
    typer.echo(f"wrote {path} and {path.with_suffix('.html')}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
