"""``ferbench models ...``: list the model zoo with its cost, inspect one model."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ferbench.models.table import COST_TABLE, check_model_name, shipped_rows, write_cost_table, write_csv
from ferbench.progress import console as _console
from ferbench.progress import is_terminal

models_app = typer.Typer(
    help="The model zoo: list models with params / GFLOPs / latency, show layers.", no_args_is_help=True
)


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def cost_rows(pattern: str, measure: bool, threads: int, runs: int,
              data_root: Path | None = None) -> list[dict[str, object]]:
    """Cost rows (see :class:`ferbench.models.cost.ModelCost`) for every model matching ``pattern``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ferbench.errors import FerbenchError
    from ferbench.models import list_models, model_info
    from ferbench.models.cost import model_cost

    # one row per network: a pattern that matches an alias (a paper's name) selects its network
    names = sorted({model_info(n).network for n in list_models(pattern, include_aliases=True)})
    if not names:
        raise FerbenchError(f"no model matches {pattern!r}; see `ferbench models list`")
    rows = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not is_terminal(sys.stderr),
        console=_console(stderr=True),
    ) as prog:
        task = prog.add_task("cost", total=len(names))
        for name in names:
            prog.update(task, description=f"{name:<20}")
            rows.append(model_cost(name, measure=measure, threads=threads, runs=runs, data_root=data_root).as_row())
            prog.advance(task)
    return rows


@models_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="Shell pattern on the model name, e.g. 'resnet*'."),
    measure: bool = typer.Option(
        False,
        "--measure/--no-measure",
        help="Also time CPU batch-1 inference at 48 px on real FER2013 test faces (2 threads, median of --runs "
        "after warm-up; slow).",
    ),
    csv_out: Path | None = typer.Option(None, "--csv", help="Also write the table to this CSV file."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for --measure."),
    runs: int = typer.Option(50, "--runs", min=50, help="Timed runs for --measure (median reported)."),
    recompute: bool = typer.Option(False, "--recompute/--shipped", help="Count params/GFLOPs now (builds "
                                   "every model: minutes) instead of reading the shipped table."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Where fer2013/ is (the faces --measure "
                                          "times; default $FERBENCH_DATA, ./data, ../shared/data)."),
) -> None:
    """Table of registered networks: family, paper, aliases, params, GFLOPs at 48 and 224 px (optionally latency).

    One row per network; a pattern matching an alias (a paper's name for the network) selects that network.
    Params and GFLOPs come from the table shipped with ferbench (instant); --measure or --recompute build
    the models and count them now.
    """
    from rich.table import Table

    from ferbench.errors import FerbenchError

    rows = None if (measure or recompute) else shipped_rows(pattern)
    if rows is None:
        rows = cost_rows(pattern, measure, threads, runs, data_root)
    elif not rows:
        raise FerbenchError(f"no model matches {pattern!r}; see `ferbench models list`")
    table = Table(title=f"ferbench models ({len(rows)}) — GFLOPs = 2×multiply-adds, batch 1")
    for col, just in (
        ("name", "left"),
        ("family", "left"),
        ("paper", "center"),
        ("aliases", "left"),
        ("params", "right"),
        ("GFLOPs@48", "right"),
        ("GFLOPs@224", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    if measure:
        table.add_column(f"ms@48/{threads}thr", justify="right", no_wrap=True)
    for r in rows:
        cells = [
            str(r["name"]),
            str(r["family"]),
            str(r["paper"] or "—"),
            str(r["aliases"]).replace(" ", ", ") or "—",
            _fmt(r["params"]),
            _fmt(r["gflops_48"]),
            _fmt(r["gflops_224"]),
        ]
        if measure:
            cells.append(_fmt(r["latency_ms_48"], 2))
        table.add_row(*cells)
    _console().print(table)
    if csv_out:
        if csv_out.resolve() == COST_TABLE.resolve():
            write_cost_table(rows)  # regenerating the shipped table: stamp it
        else:
            write_csv(rows, csv_out)
        typer.echo(f"wrote {csv_out}")


@models_app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="Registry name or alias (see `ferbench models list`)."),
    size: int | None = typer.Option(None, "--size", help="Input side in px (default: the model's own)."),
    depth: int = typer.Option(2, "--depth", min=1, help="Module nesting depth to show."),
) -> None:
    """Layer summary of one model: module, type, output shape, parameters."""
    from rich.table import Table

    check_model_name(name)  # a misspelt name fails here, before torch and the zoo load
    from ferbench.models import count_params, model_info
    from ferbench.models.cost import build_meta, layer_summary

    info = model_info(name)
    s = size or info.input_size
    rows = layer_summary(name, s, depth=depth)
    total = count_params(build_meta(name, s))
    table = Table(title=f"{name} — {info.description}")
    for col, just in (("layer", "left"), ("type", "left"), ("output", "left"), ("params", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        indent = "  " * r["layer"].count(".")
        table.add_row(indent + r["layer"], r["type"], str(r["output"]), _fmt(r["params"]))
    con = _console()
    con.print(table)
    exp = info.expected_params.get(s)
    con.print(
        f"family {info.family} · paper {info.paper or '—'} · input {info.in_chans}×{s}×{s} · "
        f"sizes {', '.join(map(str, info.sizes))} · Grad-CAM layer {info.target_layer or '—'}"
    )
    if info.is_alias:
        preset = ", ".join(f"{k}={v!r}" for k, v in info.preset.items())
        con.print(f"alias of {info.network}" + (f" with {preset}" if preset else ""))
    if info.aliases:
        con.print(f"{'other aliases' if info.is_alias else 'aliases'}: {', '.join(info.aliases)}")
    opts = ", ".join(f"{k}={v!r}" for k, v in info.options.items())
    con.print(f"options: {opts or 'none'}")
    con.print(f"parameters: {total:,}" + (f" (docs/protocol.md §2.17: {exp:,})" if exp else ""))


def register(app: typer.Typer) -> None:
    """Add ``ferbench models`` to ``app``."""
    app.add_typer(models_app, name="models")
