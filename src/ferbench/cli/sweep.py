"""``ferbench sweep`` (run a study, resumably) and ``ferbench results`` (list a results store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def sweep_cmd(
    study: Path = typer.Argument(..., help="Study YAML (e.g. configs/studies/seed000_quick.yaml)."),
    executor: str = typer.Option("local", "--executor", help="local (this machine) or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: start Ray locally)."),
    max_parallel: int = typer.Option(1, "--max-parallel", min=1,
                                     help="Trials at once (local: worker processes; ray: tasks in flight)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials and their status; train nothing."),
    out: Path | None = typer.Option(None, "--out", help="Study folder: results.db + runs/<trial key>/ "
                                    "(default runs/<study name>)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder holding the datasets."),
    import_from: Path | None = typer.Option(None, "--import", help="Results file written by `ferbench results "
                                            "--export` (e.g. committed from another machine): its finished "
                                            "trials of this study are stored as done and not run again."),
    only: list[str] | None = typer.Option(None, "--only", help="Run only these trials: a trial key, or "
                                          "key=value[,key=value] over axis names / config keys (e.g. "
                                          "model.name=seq4conv,train.class_weights=none); repeatable."),
) -> None:
    """Run every trial of a study; re-running skips finished trials and resumes unfinished ones.

    Results go to OUT/results.db (SQLite), run directories to OUT/runs/<trial key>/. With --executor ray each
    trial is one Ray task with the study's `resources` request; the data and OUT must be on a filesystem the
    Ray workers share. Then: ferbench results --db OUT/results.db; ferbench report --db OUT/results.db.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ferbench.errors import FerbenchError
    from ferbench.progress import console as make_console
    from ferbench.sweep.executors import live_status, run_study
    from ferbench.sweep.store import ResultsStore
    from ferbench.sweep.study import load_study

    con = make_console()
    if executor not in ("local", "ray"):
        raise FerbenchError(f"--executor {executor!r}: choose local or ray")
    from ferbench.cli.common import check_config_names
    from ferbench.sweep.study import select_trials

    trials = select_trials(load_study(study).trials(data_root), only or [])  # a bad study or --only fails here
    for t in trials:  # so does a trial naming a model or dataset that does not exist, before any trial runs
        check_config_names(t.config, f"trial {t.key} ({t.label()}): ")
    n_all = len(trials)
    if dry_run:
        res = run_study(study, out, executor, address, max_parallel, data_root, dry_run=True, only=only)
        status: dict[str, str] = {}
        if res["db"].exists():
            with ResultsStore(res["db"], create=False) as store:
                for row in store.trials():
                    st, prog = live_status(row)
                    status[row["key"]] = st + (f" {prog['epochs_done']}/{prog['epochs_max'] or '?'}" if prog else "")
        _trial_table(con, res["study"].name, [(t.key, status.get(t.key, "new"), t.label()) for t in res["trials"]])
        con.print(f"{len(res['trials'])} trials; store {res['db']}; nothing was run (--dry-run)")
        return
    from ferbench.progress import LineLog, is_terminal

    tty = is_terminal()
    lines = LineLog(enabled=not tty)  # redirected output: one timestamped line per trial, no bar
    done = [0]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=con, disable=not tty) as bar:
        task = bar.add_task("trials", total=None, info="")

        def on_done(t: Any, rec: dict[str, Any] | None, err: str | None) -> None:
            done[0] += 1
            info = (f"{t.label()}: val {rec['val_accuracy']:.4f}" if rec and rec.get("val_accuracy") is not None
                    else f"{t.label()}: {err}")
            bar.update(task, advance=1, info=info[:80])
            line = ("done   " if rec else "failed ") + info + (_trial_numbers(rec) if rec else "")
            if tty:
                bar.console.print(line)
            else:
                lines.line(f"trial {done[0]} (study of {n_all}) {line}")

        def log(msg: str) -> None:
            bar.console.print(msg, markup=False, highlight=False)  # trial labels may hold [brackets]

        bar.update(task, total=n_all)
        # redirected: LineLog's own line (stamped once; the trainer's epoch lines recognise it and add no stamp)
        res = run_study(study, out, executor, address, max_parallel, data_root, log=log if tty else lines.line,
                        on_done=on_done, import_from=import_from, only=only)
        bar.update(task, completed=n_all - len(res["todo"]) + res["finished"] + res["failed"] + res["busy"])
    skipped = n_all - len(res["todo"])  # of the selected trials (all of them without --only)
    if import_from is not None:
        con.print(f"{res['imported']} finished trials imported from {import_from}")
    con.print(f"{res['finished']} trials finished, {res['failed']} failed, {res['busy']} skipped (claimed by another driver), "
              f"{skipped} already done; results in {res['db']}")
    con.print(f"report: ferbench report --db {res['db']} --out {res['out'] / 'report'}")
    if res["failed"]:
        raise typer.Exit(1)


def _trial_numbers(rec: dict[str, Any]) -> str:
    """`` test 0.6123, 12 epochs, 118 s, 1450 img/s`` from a trial record (missing numbers skipped)."""
    parts = []
    if rec.get("test_accuracy") is not None:
        parts.append(f"test {rec['test_accuracy']:.4f}")
    if rec.get("epochs") is not None:
        parts.append(f"{rec['epochs']} epochs")
    if rec.get("train_time_s") is not None:
        parts.append(f"{rec['train_time_s']:.0f} s")
    ips = [h["images_per_s"] for h in rec.get("history") or [] if h.get("images_per_s")]
    if ips:
        parts.append(f"{sum(ips) / len(ips):.0f} img/s")
    return (", " + ", ".join(parts)) if parts else ""


def _trial_table(con: Any, title: str, rows: list[tuple[str, ...]], extra: list[str] | None = None) -> None:
    from rich.table import Table

    t = Table(title=title)
    for c in ["key", "status", "trial", *(extra or [])]:
        t.add_column(c, justify="right" if c not in ("trial", "key", "status") else "left")
    for r in rows:
        t.add_row(*r)
    con.print(t)


def _lookup(trial: dict[str, Any], key: str) -> Any:
    """Value of ``key`` for filtering: a study param, a column (status, study, key) or a dotted config key."""
    if key in trial["params"]:
        return trial["params"][key]
    if key in ("status", "study", "key"):
        return trial[key]
    node: Any = trial["config"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def results_cmd(
    db: Path = typer.Option(Path("results.db"), "--db", help="A sweep's results.db."),
    filter_: list[str] = typer.Option([], "--filter", help="key=value (study param, status, or dotted config "
                                      "key such as model.name); repeatable, all must match."),
    study: str | None = typer.Option(None, "--study", help="Only this study."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
    export: Path | None = typer.Option(None, "--export", help="Write every finished trial's full record as JSON "
                                       "lines (small, committable; `ferbench sweep --import` reads it)."),
) -> None:
    """List the trials of a results store with their status and headline numbers."""
    import yaml

    from ferbench.errors import FerbenchError
    from ferbench.sweep.executors import live_status
    from ferbench.sweep.store import ResultsStore
    from ferbench.sweep.study import trial_label

    wanted = []
    for f in filter_:
        if "=" not in f:
            raise FerbenchError(f"--filter {f!r}: expected key=value")
        k, v = f.split("=", 1)
        wanted.append((k.strip(), yaml.safe_load(v)))
    with ResultsStore(db, create=False) as store:
        trials = store.trials(study)
        recs = {r["key"]: r for r in store.results(study)}
        n_exported = store.export_jsonl(export, study) if export is not None else None
    trials = [t for t in trials if all(_match(_lookup(t, k), v) for k, v in wanted)]
    rows, out = [], []
    n_partial = 0
    for t in trials:
        r = recs.get(t["key"], {})
        status, prog = live_status(t) if not r else (t["status"], None)
        if prog is not None:  # an unfinished trial with committed epochs: how far it got, and whether it trains now
            n_partial += 1
            cap, left_s = prog["epochs_max"], prog["seconds_left"]
            left = f" (≤ {left_s / 3600:.1f} h left)" if left_s else ""
            r = {"val_accuracy": prog["best_val_accuracy"], "epochs": f"{prog['epochs_done']}/{cap or '?'}{left}"}
        cells = [_fmt(r.get(k)) for k in ("val_accuracy", "test_accuracy", "test_f1_macro")]
        cells += [_fmt_int(r.get("params_count")), _fmt(r.get("latency_ms"), 2), str(r.get("epochs") or "–")]
        label = trial_label(t["params"])
        rows.append((t["key"], status + (f" ({t['error'][:40]})" if t.get("error") else ""), label, *cells))
        out.append({"key": t["key"], "study": t["study"], "status": status, "params": t["params"],
                    "error": t.get("error"), **{k: r.get(k) for k in ("val_accuracy", "test_accuracy",
                                                                     "test_f1_macro", "params_count",
                                                                     "latency_ms", "epochs")}})
        if prog is not None:
            out[-1].update(epochs=prog["epochs_done"], epochs_max=cap, partial=True, max_seconds_left=left_s)
    from ferbench.progress import console as make_console

    con = make_console()
    _trial_table(con, f"{db} ({len(rows)} trials)", rows,
                 ["val acc", "test acc", "test macro F1", "params", "latency ms", "epochs"])
    if n_partial:
        con.print(f"{n_partial} unfinished trial(s) with committed epochs: val acc = best epoch so far, epochs = done/cap "
                  "(time left at the median epoch time if it runs to its cap; early stopping may end it sooner); "
                  "'interrupted' resumes from its last epoch when the same `ferbench sweep` runs again")
    if any(o["status"] == "retired" for o in out):
        con.print("'retired': unfinished trials of an earlier version of the study file (a changed or removed grid "
                  "point); kept in the store, never resumed")
    if json_out:
        from ferbench.persist.atomic import atomic_write_text

        atomic_write_text(json_out, json.dumps(out, indent=1))
        con.print(f"wrote {json_out}")
    if n_exported is not None:
        con.print(f"exported {n_exported} finished trial records to {export}")


def _match(have: Any, want: Any) -> bool:
    return have == want or str(have) == str(want)


def _fmt(v: Any, nd: int = 4) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _fmt_int(v: Any) -> str:
    return "–" if v is None else f"{v / 1e6:.2f}M"


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``results``."""
    app.command("sweep")(sweep_cmd)
    app.command("results")(results_cmd)
