"""A study carried across machines: the ``first:`` run order, exporting finished records and importing them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_sweep import _study
from typer.testing import CliRunner

from ferbench.errors import ConfigError, FerbenchError
from ferbench.persist import RunDir
from ferbench.sweep.executors import run_study
from ferbench.sweep.store import ResultsStore, read_jsonl
from ferbench.sweep.study import load_study


def test_first_patterns_reorder_trials_without_changing_keys(tmp_path: Path) -> None:
    grid = "grid:\n  train.class_weights: [none, simple, conservative]\n"
    plain = load_study(_study(tmp_path, grid, "a")).trials()
    ordered = load_study(_study(tmp_path, grid + "first:\n  - {train.class_weights: conservative}\n", "a")).trials()
    cw = [t.config["train"]["class_weights"] for t in ordered]
    assert cw == ["conservative", "none", "simple"]  # matched first, the rest in listed order
    assert sorted(t.key for t in plain) == sorted(t.key for t in ordered)
    with pytest.raises(ConfigError, match="exclude/first key 'nosuch.key'"):
        load_study(_study(tmp_path, grid + "first:\n  - {nosuch.key: 1}\n", "b"))


def test_export_then_import_skips_finished_trials_and_counts_once(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.cli.main import app

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n")
    first = tmp_path / "machine1"
    res = run_study(p, first, data_root=tiny_root, log=lambda s: None)
    assert res["finished"] == 2
    ledger = tmp_path / "results.jsonl"
    r = CliRunner().invoke(app, ["results", "--db", str(first / "results.db"), "--export", str(ledger)])
    assert r.exit_code == 0 and "exported 2 finished trial records" in r.output
    recs = read_jsonl(ledger)
    assert len(recs) == 2 and all(json.loads(json.dumps(x))["key"] for x in recs)
    text = ledger.read_text()
    assert str(tmp_path) not in text and str(tiny_root) not in text  # no machine-specific path is written
    assert {r["run_dir"] for r in recs} == {f"runs/{r['key']}" for r in recs}
    assert all(r["config"]["data"]["root"] is None for r in recs)

    shutil.rmtree(first)  # the run directories are gone, as on a new machine
    second = tmp_path / "machine2"
    again = run_study(p, second, data_root=tiny_root, log=lambda s: None, import_from=ledger)
    assert (again["imported"], again["finished"], len(again["todo"])) == (2, 0, 0)  # nothing retrained
    with ResultsStore(second / "results.db") as s:
        assert s.counts()["finished"] == 2 and s.import_records(recs) == 0  # a second import adds nothing
        assert sorted(x["test_accuracy"] for x in s.results()) == sorted(x["test_accuracy"] for x in recs)
        assert {t["run_dir"] for t in s.trials()} == {str(second / "runs" / r["key"]) for r in recs}
    # where each trial trained travels with its record: the report on the new machine still names it
    assert all(r["machine"]["cpu"] and r["machine"]["cpu_count"] >= 1 for r in recs)
    from ferbench.report.study import write_study_report

    md = write_study_report(second / "results.db", tmp_path / "rep", measure_latency=False).read_text()
    assert f"- machine (2 trials): {recs[0]['machine']['cpu']}" in md
    # a trial trained on a GPU (a record from such a machine) shows GPU wall hours, not CPU hours
    gpu = {**recs[0], "train_time_s": 5400.0,
           "machine": {**recs[0]["machine"], "device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"}}
    cpu = {**recs[1], "train_time_s": 7200.0, "threads": 2}
    ledger.write_text("".join(json.dumps(x) + "\n" for x in (gpu, cpu)))
    third = tmp_path / "machine3"
    assert run_study(p, third, data_root=tiny_root, log=lambda s: None, import_from=ledger)["imported"] == 2
    md = write_study_report(third / "results.db", tmp_path / "rep3", measure_latency=False).read_text()
    assert "| 1.50 GPU |" in md and "| 4.00 |" in md  # 1.5 h on the GPU; 2 h × 2 threads on a CPU
    csv_text = (tmp_path / "rep3" / "results.csv").read_text()
    assert "train_device" in csv_text.splitlines()[0] and "NVIDIA H100 80GB HBM3" in csv_text


def test_a_bad_ledger_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    p = _study(tmp_path, "")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "k"}\nnot json\n')
    with pytest.raises(FerbenchError, match=r"bad.jsonl:1: not a ferbench trial record"):
        run_study(p, tmp_path / "out", import_from=bad, log=lambda s: None)
    assert not (tmp_path / "out" / "results.db").exists()
    with pytest.raises(FerbenchError, match="results file .* not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_only_runs_the_selected_trials_and_leaves_the_rest(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.cli.main import app

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple, conservative]\n")
    keys = {t.config["train"]["class_weights"]: t.key for t in load_study(p).trials()}
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--only 'train.class_weights=simpel' matches no trial"):
        run_study(p, out, data_root=tiny_root, log=lambda s: None, only=["train.class_weights=simpel"])
    assert not out.exists()  # a typo writes nothing
    res = run_study(p, out, data_root=tiny_root, log=lambda s: None,
                    only=["train.class_weights=simple", keys["conservative"]])
    assert res["finished"] == 2 and {t.key for t in res["todo"]} == {keys["simple"], keys["conservative"]}
    with ResultsStore(out / "results.db") as s:
        status = {t["key"]: t["status"] for t in s.trials()}
    assert status == {keys["none"]: "pending", keys["simple"]: "finished", keys["conservative"]: "finished"}
    r = CliRunner().invoke(app, ["sweep", str(p), "--out", str(out), "--data-root", str(tiny_root),
                                 "--only", "train.class_weights=none", "--dry-run"])
    assert r.exit_code == 0 and keys["none"] in r.output and keys["simple"] not in r.output
    assert "1 trials" in r.output


def test_report_counts_a_killed_drivers_trial_as_interrupted(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.report.study import write_study_report
    from ferbench.sweep.executors import run_dir_busy, run_dir_lock

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple, conservative]\n")
    keys = {t.config["train"]["class_weights"]: t.key for t in load_study(p).trials()}
    out = tmp_path / "out"
    run_study(p, out, data_root=tiny_root, log=lambda s: None, only=[keys["none"]])
    with ResultsStore(out / "results.db") as s:  # two drivers died mid-trial; the store still says running
        for cw in ("simple", "conservative"):
            s.mark_running(keys[cw])
    live = out / "runs" / keys["simple"]
    assert not run_dir_busy(live)  # no .lock yet
    dead = RunDir(out / "runs" / keys["conservative"])  # the dead driver's trial had committed 1 of 2 epochs
    dead.path.mkdir(parents=True)
    dead.write_metrics([{"epoch": 1, "val_accuracy": 0.4321, "time_s": 7200.0}])
    with run_dir_lock(live):  # a driver that is alive holds its run dir's lock
        assert run_dir_busy(live) and not run_dir_busy(out / "runs" / keys["conservative"])
        md = write_study_report(out / "results.db", tmp_path / "rep", measure_latency=False).read_text()
    assert "1 finished trials (finished 1, interrupted (resumable) 1, running 1)." in md
    assert (f"- `{keys['conservative']}` (train.class_weights=conservative): 1 of 2 epochs (at most 2.0 h more at "
            "its median epoch time), best validation accuracy so far 0.4321, interrupted (resumes from its last "
            "epoch when the sweep runs again)") in md
    assert keys["simple"] not in md.split("Unfinished trials")[1].split("\n\n")[1]  # no committed epoch: not listed
    from ferbench.cli.main import app

    r = CliRunner().invoke(app, ["sweep", str(p), "--out", str(out), "--dry-run"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    status = {k: next(line for line in r.output.splitlines() if k in line) for k in keys.values()}
    assert "finished" in status[keys["none"]] and "interrupted 1/2" in status[keys["conservative"]]
    assert "interrupted" in status[keys["simple"]] and "/" not in status[keys["simple"]]  # its lock is gone now;
    # no committed epoch, so no epochs done/cap
    assert not run_dir_busy(live)  # the probe kept no lock
