"""``ferbench crossdomain``: the train × test matrix (one dataset or a union → every other dataset)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer


def _split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def crossdomain_cmd(
    train: str | None = typer.Option(None, "--train", help="Training set: one dataset or a union, A[+B...] "
                                     "(e.g. fer2013 or fer2013+ckplus); commas give several rows."),
    test: str | None = typer.Option(None, "--test", help="Test datasets, comma-separated (e.g. ckplus,ferplus), "
                                    "each on its test split; DATASET@SPLIT scores another split (ckplus@all: every "
                                    "CK+48 image, in the rows that never trained on it). Every training member is "
                                    "tested too (the in-domain cell)."),
    config: Path = typer.Option(..., "--config", help="Training config YAML (e.g. configs/quickstart.yaml)."),
    out: Path = typer.Option(..., "--out", help="Results folder: crossdomain.md/.json/.png, cells/, runs/."),
    leave_one_out: bool = typer.Option(False, "--leave-one-out/--no-leave-one-out", help="Leave-one-dataset-out over --datasets "
                                       "(default fer2013,ferplus,ckplus plus every folder: dataset in --test)."),
    datasets: str | None = typer.Option(None, "--datasets", help="Datasets for --leave-one-out, comma-separated."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key for every run (repeatable)."),
    tta: bool | None = typer.Option(None, "--tta/--no-tta", help="h-flip TTA in the cells (default: the config's "
                                    "eval.tta_hflip)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder holding the datasets."),
) -> None:
    """Train on one dataset or a union, evaluate the best checkpoint on every other dataset (shared classes).

    Re-running the same command skips finished trainings and cells (a killed run resumes from its last epoch).
    """
    from ferbench.config import load_config
    from ferbench.errors import FerbenchError
    from ferbench.models.table import check_model_name
    from ferbench.sweep.crossdomain import DEFAULT_LOO, normalise_test, parse_test, run_crossdomain

    check_model_name(load_config(str(config), set_)["model"]["name"])  # a misspelt model: before any training

    tests = [normalise_test(t) for t in _split_list(test)]
    test_datasets = list(dict.fromkeys(parse_test(t)[0] for t in tests))
    loo = None
    if leave_one_out:
        loo = _split_list(datasets) or [*DEFAULT_LOO, *(d for d in test_datasets if d.startswith("folder:"))]
    elif datasets:
        raise FerbenchError("--datasets goes with --leave-one-out")
    from ferbench.data.registry import check_dataset_files

    for name in dict.fromkeys([*_split_list(train), *test_datasets, *(loo or [])]):  # absent data: before any training
        check_dataset_files(name, data_root)
    command = "ferbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    res = run_crossdomain(config, out, _split_list(train), tests, leave_one_out=loo, overrides=set_,
                          data_root=data_root, tta_hflip=tta, command=command)
    from ferbench.report.crossdomain import write_report

    paths = write_report(res, out)
    typer.echo(paths["md"].read_text())
    typer.echo(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")


def register(app: typer.Typer) -> None:
    """Add ``crossdomain``."""
    app.command("crossdomain")(crossdomain_cmd)
