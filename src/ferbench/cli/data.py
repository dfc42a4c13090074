"""``ferbench data ...``: inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ferbench.progress import console as _console

data_app = typer.Typer(help="Inspect datasets: counts per split and class, sample grids.", no_args_is_help=True)
DataRoot = typer.Option(None, "--data-root", help="Folder holding fer2013/, ferplus/, ckplus48/ "
                        "(default: $FERBENCH_DATA, ./data, ../shared/data).")


@data_app.command("info")
def info(name: str = typer.Argument(..., help="fer2013 | ferplus | ckplus | folder:PATH"),
         data_root: Path | None = DataRoot) -> None:
    """Print a split × class count table."""
    from ferbench.data import load_dataset

    ds = load_dataset(name, data_root)
    table = Table(title=f"{ds.name} ({len(ds)} images, {tuple(ds.images.shape[1:])} uint8) — {ds.source}")
    table.add_column("split")
    for c in ds.classes:
        table.add_column(c, justify="right")
    table.add_column("total", justify="right")
    counts = ds.counts()
    for split, row in counts.items():
        table.add_row(split, *[f"{v:,}" for v in row], f"{sum(row):,}")
    tot = [sum(r[i] for r in counts.values()) for i in range(ds.num_classes)]
    table.add_row("all", *[f"{v:,}" for v in tot], f"{sum(tot):,}", style="bold")
    _console().print(table)


@data_app.command("list")
def list_cmd() -> None:
    """The dataset registry: names, split roles, classes, subjects, soft-label sources (a union is "a+b")."""
    from ferbench.data.registry import registry_table

    t = Table(title="datasets (load one by name, or a union as a+b)")
    for col in ("name", "display", "train / val / test", "classes", "subjects", "soft labels", "shares images"):
        t.add_column(col)
    for r in registry_table():
        s = r["splits"]
        t.add_row(r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""), r["display_name"],
                  f"{s['train']} / {s['val']} / {s['test']}", ", ".join(r["classes"] or ["from folder names"]),
                  "yes" if r["subjects"] else "no", ", ".join(r["soft_labels"]) or "–", r["image_source"] or "–")
    _console().print(t)


@data_app.command("show")
def show(name: str = typer.Argument(..., help="fer2013 | ferplus | ckplus | folder:PATH"),
         out: Path = typer.Option(Path("grid.png"), "--out", help="PNG to write."),
         per_class: int = typer.Option(8, "--per-class", help="Samples per class (one row per class)."),
         split: str | None = typer.Option(None, "--split", help="Only this split."),
         seed: int = typer.Option(0, "--seed"),
         data_root: Path | None = DataRoot) -> None:
    """Write a grid of random samples, one row per class."""
    from ferbench.data import load_dataset

    ds = load_dataset(name, data_root)
    from ferbench.report.plots import sample_grid

    if split:
        ds = ds.split(split)
    sample_grid(ds, out, per_class=per_class, seed=seed)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
