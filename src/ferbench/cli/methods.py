"""``ferbench kfold`` (seed-001 protocol) and ``ferbench ensemble`` (seed-002 ensembles)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ferbench.progress import console as _console

DataRoot = typer.Option(None, "--data-root", help="Folder holding fer2013/, ferplus/, ckplus48/ "
                        "(default: $FERBENCH_DATA, ./data, ../shared/data).")


def kfold_cmd(
    config: Path = typer.Argument(..., help="Training config, e.g. configs/methods/scn_ckplus.yaml."),
    folds: int = typer.Option(5, "--folds", help="Number of folds (seed 001: 5)."),
    out: Path | None = typer.Option(None, "--out", help="Result folder (default runs/kfold-<name>-<mode>-<hash>). "
                                    "Re-running with the same --out skips finished folds."),
    subject_independent: bool | None = typer.Option(
        None, "--subject-independent/--random",
        help="Group folds by subject, or seed 001's random folds. Default: subject-independent where the "
             "dataset has subject ids (CK+)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set train.epochs=5 (repeatable)."),
    data_root: Path | None = DataRoot,
) -> None:
    """Seed-001 k-fold protocol: pool the splits, stratified k folds, 80/10/10 train/val/test per fold.

    Prints mean ± std of accuracy, balanced accuracy, weighted P/R, F1 = HM(wP, wR) and weighted AUC over
    folds; writes summary.json/summary.md and one result.json per fold under --out.
    """
    from ferbench.cli.common import check_config_names
    from ferbench.config import load_config

    sets = [*set_, f"data.root={data_root}"] if data_root else list(set_)
    # a bad config, name or missing data: before torch and any fold
    check_config_names(load_config(str(config), sets), data_files=True)
    from ferbench.sweep.kfold import SUMMARY_METRICS, run_kfold

    s = run_kfold(str(config), folds=folds, out_dir=out, subject_independent=subject_independent, overrides=sets)
    t = Table(title=f"{s['method'] or s['model']} on {s['dataset']}: {s['folds']}-fold {s['mode']}")
    t.add_column("metric")
    t.add_column("mean ± std", justify="right")
    for m in SUMMARY_METRICS:
        if m in s:
            t.add_row(m, f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}")
    _console().print(t)


def ensemble_cmd(
    members: list[str] = typer.Argument(..., help="Run directories or checkpoints (.safetensors) to combine."),
    data: str = typer.Option(..., "--data", help="fer2013 | ferplus | ckplus | folder:PATH"),
    split: str = typer.Option(..., "--split", help="Split to score, e.g. PrivateTest."),
    rule: str = typer.Option("sum", "--rule", help="sum (of probabilities, seed 002) | vote (majority, ties → "
                             "lowest class index)."),
    select: str | None = typer.Option(None, "--select", help="greedy: forward selection of members on --val-split."),
    val_split: str | None = typer.Option(None, "--val-split", help="Split for --select (default: the first "
                                         "member's training val split)."),
    save: Path | None = typer.Option(None, "--save", help="Write the (selected) ensemble as JSON; predict/serve "
                                     "load it like a checkpoint."),
    json_out: Path | None = typer.Option(None, "--json", help="Write all numbers to this JSON file."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Average each member with the mirrored image."),
    data_root: Path | None = DataRoot,
) -> None:
    """Combine trained models by summed probabilities or majority vote and score them on a split.

    Members may predict different class sets (a FER2013 and a FER+ model): the ensemble predicts the classes
    they share, and the split is scored on those of its classes."""
    from ferbench.cli.common import checkpoint_ref
    from ferbench.data.registry import check_dataset_files

    check_dataset_files(data, data_root)  # a misspelt or absent dataset, a missing member: before torch loads
    refs = [str(checkpoint_ref(m)) for m in members]
    from ferbench.evaluate.ensemble import evaluate_ensemble
    from ferbench.persist.atomic import atomic_write_text

    r = evaluate_ensemble(refs, data, split, rule=rule, select=select, val_split=val_split,
                          data_root=data_root, save=save, tta_hflip=tta)
    con = _console()
    t = Table(title=f"ensemble ({rule}) on {data}/{split}")
    t.add_column("model")
    t.add_column("accuracy", justify="right")
    for m in r["members"]:
        mark = " (selected)" if select and m["ref"] in r["selected"] else ""
        t.add_row(f"{m['ref']} [{m['architecture']}]{mark}", f"{m['accuracy']:.4f}")
    e = r["ensemble"]
    t.add_row(f"ensemble of {len(r['selected'])}", f"{e['accuracy']:.4f}")
    con.print(t)
    con.print(f"best single member {r['best_single']['accuracy']:.4f}; ensemble {e['accuracy']:.4f} "
              f"({e['accuracy'] - r['best_single']['accuracy']:+.4f}); balanced {e['balanced_accuracy']:.4f}, "
              f"F1(HM) {e['f1_hm']:.4f}")
    if e.get("dropped_classes"):
        con.print(f"scored on {', '.join(e['classes'])}; not predicted by the ensemble, dropped: "
                  f"{', '.join(e['dropped_classes'])}")
    if save:
        con.print(f"wrote {save}")
    if json_out:
        atomic_write_text(json_out, json.dumps(r, indent=1))
        con.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add ``kfold`` and ``ensemble`` to ``app``."""
    app.command("kfold")(kfold_cmd)
    app.command("ensemble")(ensemble_cmd)
