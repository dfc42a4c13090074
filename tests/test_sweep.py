"""Sweeps: study expansion, the SQLite store, resumable local execution, kill -9 safety, Ray, the study report."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ferbench.config import PACKAGE_CONFIGS
from ferbench.errors import ConfigError, FerbenchError
from ferbench.persist import RunDir
from ferbench.report.study import (
    PaperNumbers,
    levelled_networks,
    pareto_front,
    pooled_accuracy,
    seed000_cell_rows,
    seed_results_path,
    write_study_report,
)
from ferbench.sweep.executors import run_study
from ferbench.sweep.store import ResultsStore
from ferbench.sweep.study import Study, load_study, materialize, trial_key

REPO = Path(__file__).resolve().parents[1]

# a trial that takes about a second: lenet5, 1 channel, tiny data, no early stopping
TINY_SET = """
set:
  model: {name: lenet5}
  preprocessing: {channels: 1, mean: [0.5], std: [0.5], interpolation: bilinear}
  train: {batch_size: 16, lr: 3.0e-3, augment: light, early_stopping: 0, epochs: 2, scheduler: none}
  eval: {batch_size: 64}
"""


def _study(tmp_path: Path, body: str, name: str = "tiny") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nbase: protocols/seed000.yaml\n{TINY_SET}{body}")
    return p


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "runs").iterdir() if p.is_dir())


# -- study expansion ---------------------------------------------------------------------------------------
def test_trial_label_joins_named_axes_and_keeps_other_mappings_keys() -> None:
    from ferbench.sweep.study import trial_label

    assert trial_label({"arch": {"model.name": "lenet5", "train.lr": 0.001}, "train.class_weights": "none"}) == \
        "arch=lenet5/0.001 train.class_weights=none"
    assert trial_label({"model.name": "efficientface", "model.kwargs": {"stem_pool": False}}) == \
        "model.name=efficientface model.kwargs={stem_pool:False}"
    assert trial_label({}) == "base"


def test_grid_include_exclude_and_named_axes(tmp_path: Path) -> None:
    p = _study(tmp_path, """
grid:
  model.name: [lenet5, fer_vgg_s]
  train.class_weights: [none, simple, conservative]
  arch:
    - {train.lr: 1.0e-3}
    - {train.lr: 1.0e-4, train.batch_size: 32}
exclude:
  - {model.name: fer_vgg_s, train.class_weights: conservative}
include:
  - {model.name: seq3conv}
""")
    study = load_study(p)
    trials = study.trials()
    # 2 × 3 × 2 = 12, minus 2 excluded (fer_vgg_s conservative × 2 arch values), plus 1 included
    assert len(trials) == 11
    assert len({t.key for t in trials}) == 11
    inc = trials[-1]
    assert inc.params == {"model.name": "seq3conv"} and inc.config["model"]["name"] == "seq3conv"
    assert inc.config["train"]["lr"] == pytest.approx(3e-3)  # base value kept
    named = next(t for t in trials if t.params["arch"] == {"train.lr": 1.0e-4, "train.batch_size": 32})
    assert named.config["train"]["lr"] == pytest.approx(1e-4) and named.config["train"]["batch_size"] == 32
    assert not any(t.params.get("model.name") == "fer_vgg_s" and t.params.get("train.class_weights") ==
                   "conservative" for t in trials)
    # the key is the hash of the resolved config and does not depend on where the data lives
    assert trials[0].key == trial_key(study.resolve(trials[0].params))
    assert [t.key for t in study.trials(data_root="/somewhere")] == [t.key for t in trials]
    assert study.trials(data_root="/somewhere")[0].config["data"]["root"] == "/somewhere"
    assert study.trials(data_root=".")[0].config["data"]["root"] == str(Path.cwd())


def test_duplicate_points_collapse_to_one_trial(tmp_path: Path) -> None:
    p = _study(tmp_path, "grid:\n  model.name: [lenet5]\ninclude:\n  - {model.name: lenet5}\n")
    assert len(load_study(p).trials()) == 1


@pytest.mark.parametrize(("body", "msg"), [
    ("grid:\n  train.nope: [1]\n", "unknown config key"),
    ("grid:\n  model.name: lenet5\n", "non-empty list"),
    ("exclude:\n  - {foo: 1}\n", "neither a grid axis nor a config key"),
    ("colour: red\n", "unknown study key"),
    ("cross_eval:\n  - {split: test}\n", "needs 'data'"),
    ("cross_eval:\n  - {data: ckpluss, split: test}\n", "cross_eval: .*ckpluss"),
])
def test_bad_study_files_raise_one_line(tmp_path: Path, body: str, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        load_study(_study(tmp_path, body))


def test_kfold_trials_materialize_fold_indices(tiny_root: Path, tmp_path: Path) -> None:
    p = _study(tmp_path, "kfold: {k: 3}\n")
    trials = load_study(p).trials(data_root=tiny_root)
    assert [t.params["fold"] for t in trials] == [0, 1, 2]
    ix = [materialize(t.config)["data"]["indices"] for t in trials]
    tests = [set(i["test"]) | set(i["val"]) for i in ix]
    assert all(not (a & b) for k, a in enumerate(tests) for b in tests[k + 1:])  # held-out parts disjoint
    assert sum(len(t) for t in tests) == 280  # every image held out exactly once


# -- store ---------------------------------------------------------------------------------------------------
def test_store_records_a_trial_once_in_wal_mode(tmp_path: Path) -> None:
    cfg = load_study(_study(tmp_path, "")).trials()[0].config
    with ResultsStore(tmp_path / "results.db") as s:
        s.add_trial("k1", "st", {"a": 1}, cfg, "runs/k1")
        s.add_trial("k1", "st", {"a": 2}, cfg, "runs/k1")  # known key: unchanged
        assert s.status("k1") == "pending" and s.trials()[0]["params"] == {"a": 1}
        s.mark_running("k1")
        rec = {"key": "k1", "study": "st", "config": cfg, "val_accuracy": 0.5, "test_accuracy": 0.25}
        assert s.record_result("k1", rec) is True
        assert s.record_result("k1", rec) is False
        s.mark_failed("k1", "late error")  # a finished trial stays finished
        assert s.status("k1") == "finished" and s.counts()["finished"] == 1
    con = sqlite3.connect(tmp_path / "results.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*), MAX(test_accuracy) FROM results").fetchone() == (1, 0.25)


def test_store_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "results.db"
    bad.write_text("hello, I am not SQLite " * 100)
    with pytest.raises(FerbenchError, match="not a ferbench results database"):
        ResultsStore(bad)
    with pytest.raises(FerbenchError, match="not found"):
        ResultsStore(tmp_path / "missing.db", create=False)


# -- local execution, resume, report --------------------------------------------------------------------------
def test_sweep_runs_skips_finished_and_reports(tiny_root: Path, tmp_path: Path) -> None:
    from conftest import write_folder

    other = write_folder(tmp_path / "other", ["happy", "sad", "surprise"], n=10, size=48)  # a cross-domain set
    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n"
                         f"cross_eval:\n  - {{data: 'folder:{other}', split: test}}\n"
                         "notes:\n  - {train.class_weights: none, note: 'two epochs on 140 faces'}\n")
    out = tmp_path / "study"
    res = run_study(p, out, data_root=tiny_root, log=lambda s: None)
    assert (res["finished"], res["failed"], len(res["todo"])) == (2, 0, 2)
    with ResultsStore(out / "results.db") as s:
        recs = s.results()
        assert [t["status"] for t in s.trials()] == ["finished", "finished"]
    assert {r["config"]["train"]["class_weights"] for r in recs} == {"none", "simple"}
    for r in recs:
        assert r["epochs"] == 2 and [h["epoch"] for h in r["history"]] == [1, 2]
        assert r["test_split"] == "PrivateTest" and r["evals"]["PrivateTest"]["n"] == 70
        assert r["params_count"] > 1000 and r["latency_ms"] > 0
        assert r["test_accuracy"] == r["evals"]["PrivateTest"]["accuracy"]
        (ce,) = r["cross"]
        assert ce["classes"] == ["happy", "sad", "surprise"] and ce["n"] > 0  # scored on the shared classes
        # the study's cross_eval is each trial's eval.cross (not in the key), scored by the trainer
        assert r["config"]["eval"]["cross"] == [{"data": f"folder:{other}", "split": "test"}]
        assert set(r["evals"]) == {"PublicTest", "PrivateTest"}
        assert json.loads((Path(r["run_dir"]) / f"eval_{RunDir.cross_key(f'folder:{other}', 'test')}.json")
                          .read_text())["n"] == ce["n"]
    again = run_study(p, out, data_root=tiny_root, log=lambda s: None)
    assert (again["finished"], len(again["todo"])) == (0, 0)  # nothing retrained, nothing recorded twice

    md = write_study_report(out / "results.db", tmp_path / "report")
    text = md.read_text()
    for section in ("## Ranking", "## Seed-000 tables", "## Per-class results", "## Train × test dataset accuracy",
                    "## Recommendation", "acc_vs_latency.png", "per_class_recall.png", "learning_curves.png"):
        assert section in text, section
    best = max(recs, key=lambda r: r["test_accuracy"])
    assert f"test accuracy {best['test_accuracy']:.4f}" in text  # the recommendation quotes the numbers
    for f in ("report.html", "results.csv", "acc_vs_latency.png", "acc_vs_params.png", "per_class_recall.png",
              "learning_curves.png", f"cm_{best['key']}.png"):
        assert (tmp_path / "report" / f).stat().st_size > 0, f
    rows = (tmp_path / "report" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("key,study,architecture") and "cross_folder:" in rows[0]
    assert f"folder:{other} (test)" in text  # a column of the train × test matrix
    # rows under 0.50 test accuracy are listed with the cause the study's notes: give (none given: said so)
    low = {r["config"]["train"]["class_weights"]: r for r in recs if r["test_accuracy"] < 0.5}
    assert ("## Rows below 0.50 test accuracy" in text) == bool(low)
    cause = {"none": "two epochs on 140 faces", "simple": "**no cause stated**"}
    for cw, r in low.items():
        assert re.search(rf"\| {r['architecture']} \| {cw} \| {r['test_accuracy']:.4f} \| {re.escape(cause[cw])}",
                         text), cw


@pytest.mark.slow
def test_local_executor_with_worker_processes(tiny_root: Path, tmp_path: Path) -> None:
    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple, conservative]\n")
    out = tmp_path / "study"
    res = run_study(p, out, data_root=tiny_root, max_parallel=2, log=lambda s: None)
    assert (res["finished"], res["failed"]) == (3, 0)
    with ResultsStore(out / "results.db") as s:
        recs = s.results()
    assert sorted(r["config"]["train"]["class_weights"] for r in recs) == ["conservative", "none", "simple"]
    assert all([h["epoch"] for h in r["history"]] == [1, 2] for r in recs)


def test_failed_trial_is_recorded_and_retried(tiny_root: Path, tmp_path: Path) -> None:
    p = _study(tmp_path, "grid:\n  train.lr: [3.0e-3, 1.0e+9]\n")  # a huge LR makes the loss non-finite
    out = tmp_path / "study"
    res = run_study(p, out, data_root=tiny_root, log=lambda s: None)
    assert (res["finished"], res["failed"]) == (1, 1)
    with ResultsStore(out / "results.db") as s:
        failed = [t for t in s.trials() if t["status"] == "failed"]
    assert len(failed) == 1 and "loss became" in failed[0]["error"]
    again = run_study(p, out, data_root=tiny_root, log=lambda s: None)
    assert len(again["todo"]) == 1 and again["failed"] == 1  # only the failed trial is tried again


def test_unfinished_trial_resumes_from_its_last_epoch(tiny_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbench.train.loop as loop

    p = _study(tmp_path, "grid:\n  train.epochs: [3]\n")
    out = tmp_path / "study"
    real_aug, calls = loop.augment_batch, {"n": 0}

    def crashing(*a, **k):  # dies early in epoch 2 (140 // 16 = 8 steps per epoch), like a kill
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_aug(*a, **k)

    monkeypatch.setattr(loop, "augment_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_study(p, out, data_root=tiny_root, log=lambda s: None)
    monkeypatch.setattr(loop, "augment_batch", real_aug)
    with ResultsStore(out / "results.db") as s:
        assert [t["status"] for t in s.trials()] == ["running"] and not s.results()
    logs: list[str] = []
    run_study(p, out, data_root=tiny_root, log=logs.append)
    assert any("resuming" in m and "after epoch 1" in m for m in logs)
    with ResultsStore(out / "results.db") as s:
        (rec,) = s.results()
        assert s.trials()[0]["attempts"] == 2
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]


def test_kill9_loses_at_most_one_epoch_and_never_records_twice(tiny_root: Path, tmp_path: Path) -> None:
    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n  train.epochs: [3]\n")
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "ferbench.cli.main", "sweep", str(p), "--out", str(out),
           "--data-root", str(tiny_root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            lasts = list(out.glob("runs/*/last.json"))
            if lasts:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    first = lasts[0].parent
    killed_at = json.loads(lasts[0].read_text())["epoch"]
    assert 1 <= killed_at < 3
    with ResultsStore(out / "results.db") as s:
        assert s.counts()["finished"] == 0

    # re-run (in this process: the store and the run dirs are all it shares with the killed one)
    res = run_study(p, out, data_root=tiny_root, log=lambda s: None)
    assert (res["finished"], res["failed"], len(res["todo"])) == (2, 0, 2)
    con = sqlite3.connect(out / "results.db")
    keys = [k for (k,) in con.execute("SELECT key FROM results")]
    assert len(keys) == 2 and len(set(keys)) == 2 and first.name in keys
    assert con.execute("SELECT COUNT(*) FROM trials WHERE status='finished'").fetchone()[0] == 2
    for run in _runs(out):
        epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2, 3], (run.name, epochs)
    # and a third run changes nothing
    assert len(run_study(p, out, data_root=tiny_root, log=lambda s: None)["todo"]) == 0
    assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2


def test_cli_dry_run_and_results_table(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.cli.main import app

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n")
    out = tmp_path / "study"
    runner = CliRunner()
    r = runner.invoke(app, ["sweep", str(p), "--dry-run", "--out", str(out), "--data-root", str(tiny_root)])
    assert r.exit_code == 0, r.output
    assert "2 trials" in r.output and "nothing was run" in r.output and not (out / "results.db").exists()
    run_study(p, out, data_root=tiny_root, log=lambda s: None)
    r = runner.invoke(app, ["results", "--db", str(out / "results.db"), "--filter", "train.class_weights=simple",
                            "--json", str(tmp_path / "rows.json")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 1 and rows[0]["params"] == {"train.class_weights": "simple"}
    assert rows[0]["status"] == "finished" and 0 <= rows[0]["test_accuracy"] <= 1
    r = runner.invoke(app, ["results", "--db", str(tmp_path / "nope.db")])
    assert r.exit_code != 0 and "not found" in str(r.exception)


def test_results_without_db_points_at_the_sweeps_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbench.cli.main import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["results"])
    assert r.exit_code != 0 and str(r.exception) == "results database results.db not found"
    ResultsStore(tmp_path / "runs" / "mystudy" / "results.db").close()
    r = CliRunner().invoke(app, ["results"])
    assert str(r.exception) == ("results database results.db not found; sweeps here wrote: "
                                "runs/mystudy/results.db (pass --db)")


def test_a_study_on_another_dataset_records_its_own_splits(tmp_path: Path) -> None:
    """A seed-000 study (FER2013 split names) on a folder dataset: the record's val/test are the folder's."""
    from conftest import write_folder

    root = write_folder(tmp_path / "faces", ["angry", "happy", "sad"], n=10, size=32)
    p = _study(tmp_path, f"grid:\n  data.name: ['folder:{root}']\n")
    out = tmp_path / "out"
    res = run_study(p, out, log=lambda s: None)
    assert res["finished"] == 1 and res["failed"] == 0
    with ResultsStore(out / "results.db") as s:
        (rec,) = s.results()
    assert (rec["val_split"], rec["test_split"]) == ("val", "test")
    assert 0 <= rec["val_accuracy"] <= 1 and 0 <= rec["test_accuracy"] <= 1


def test_results_shows_how_far_an_unfinished_trial_got(tmp_path: Path) -> None:
    """A trial killed after 2 committed epochs reads 'interrupted', 2/5 epochs, its best val so far; while a process
    holds its run folder it reads 'running'; a trial with no committed epoch stays 'pending' with no numbers."""
    from ferbench.cli.main import app
    from ferbench.sweep.executors import run_dir_lock

    db, run = tmp_path / "results.db", tmp_path / "runs" / "k1"
    with ResultsStore(db) as s:
        s.add_trial("k1", "st", {"model.name": "lenet5"}, {"train": {"epochs": 5}}, str(run))
        s.mark_running("k1")  # the driver was then killed: the store still says running
        s.add_trial("k2", "st", {"model.name": "fer_vgg_s"}, {"train": {"epochs": 5}}, str(tmp_path / "runs" / "k2"))
    RunDir(run).path.mkdir(parents=True)
    RunDir(run).write_metrics([{"epoch": 1, "val_accuracy": 0.41, "time_s": 90.0},
                               {"epoch": 2, "val_accuracy": 0.37, "time_s": 110.0}])

    def rows() -> dict[str, dict]:
        r = CliRunner().invoke(app, ["results", "--db", str(db), "--json", str(tmp_path / "rows.json")],
                               env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "val acc = best epoch so far" in r.output
        return {x["key"]: x for x in json.loads((tmp_path / "rows.json").read_text())}

    got = rows()
    assert got["k1"]["status"] == "interrupted" and got["k1"]["epochs"] == 2 and got["k1"]["epochs_max"] == 5
    assert got["k1"]["val_accuracy"] == 0.41 and got["k1"]["partial"] is True
    assert got["k1"]["max_seconds_left"] == 3 * 110.0  # 3 epochs to its cap at the median (upper) epoch time
    assert got["k2"]["status"] == "pending" and got["k2"]["val_accuracy"] is None and "partial" not in got["k2"]
    with run_dir_lock(run):
        assert rows()["k1"]["status"] == "running"


def test_a_changed_study_retires_its_old_unfinished_trials(tmp_path: Path) -> None:
    """Editing a grid point (a new key) retires the old point's unfinished trial: kept, listed, never resumed;
    finished trials stay finished; reverting the edit brings the retired trial back to pending."""
    from ferbench.cli.main import app
    from ferbench.sweep.executors import plan

    def study(weights: str) -> Study:
        return load_study(_study(tmp_path, f"grid:\n  train.class_weights: [{weights}]\n"))

    old, new = study("none, simple"), study("none, conservative")
    k_none, k_simple = (t.key for t in old.trials())
    k_cons = new.trials()[1].key
    db = tmp_path / "results.db"
    with ResultsStore(db) as s:
        plan(old, s, tmp_path)
        s.record_result(k_none, {"key": k_none, "study": "tiny", "config": old.trials()[0].config,
                                 "val_accuracy": 0.5, "test_accuracy": 0.5})
        s.mark_running(k_simple)  # killed mid-trial
        todo = plan(new, s, tmp_path)
        assert [t.key for t in todo] == [k_cons]
        assert (s.status(k_none), s.status(k_simple), s.status(k_cons)) == ("finished", "retired", "pending")
        assert s.counts()["retired"] == 1
    r = CliRunner().invoke(app, ["results", "--db", str(db), "--json", str(tmp_path / "rows.json")],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "'retired': unfinished trials of an earlier version of the study file" in " ".join(r.output.split())
    assert {x["key"]: x["status"] for x in json.loads((tmp_path / "rows.json").read_text())}[k_simple] == "retired"
    with ResultsStore(db) as s:
        assert [t.key for t in plan(old, s, tmp_path)] == [k_simple]
        assert (s.status(k_simple), s.status(k_cons), s.status(k_none)) == ("pending", "retired", "finished")


def test_a_run_dir_in_use_is_not_trained_twice(tmp_path: Path) -> None:
    from ferbench.sweep.executors import TrialBusy, run_dir_lock

    with run_dir_lock(tmp_path / "run"):
        with pytest.raises(TrialBusy, match="another process"):
            with run_dir_lock(tmp_path / "run"):
                pass
    with run_dir_lock(tmp_path / "run"):  # released again
        pass


# -- report helpers -------------------------------------------------------------------------------------------
def test_pareto_front() -> None:
    pts = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (0.5, 0.4), (4.0, 0.7), (2.5, 0.6)]
    assert pareto_front(pts) == [3, 0, 1, 4]


def test_paper_numbers_match_the_seed_cells() -> None:
    path = seed_results_path()
    assert path is not None
    paper = PaperNumbers(path)

    def rec(model: str, size: int = 48, bal: str = "simple", data: str = "fer2013", init: str = "scratch") -> dict:
        return {"config": {"model": {"name": model, "init": init}, "preprocessing": {"size": size},
                           "data": {"name": data}, "train": {"class_weights": bal}}}

    # seed 000 Table 2: VGG16-IN, FER2013, 48 px, simple → val 0.68; conservative → 0.68; RAF-DB is not ours
    assert paper.for_record(rec("vgg16_in"))[:2] == (0.68, "val")
    assert paper.for_record(rec("vgg19"))[:2] == (0.68, "val")
    assert paper.for_record(rec("vgg16_in", bal="none"))[0] is None  # seed 000 always balanced
    # seed 002: shallow CNN test accuracy; seed 003: ResNet-18 accuracy
    assert paper.for_record(rec("shallow_cnn_s002", bal="none"))[:2] == (0.6839, "test")
    assert paper.for_record(rec("resnet18_s003", bal="none"))[:2] == (0.65, "test")
    # a from-scratch `resnet50` is compared with Table 2's 48-px "ResNet50" cell, as MobileNet with "MobileNet"
    assert paper.seed000_cells("resnet50", "FER2013", 48, "conservative") == [("ResNet50", 0.64)]
    assert paper.for_record(rec("fer_vgg_s"))[0] is None
    # the conservative "AlexNet" / "Sequential 4Conv" cells came from Modular / 3Conv notebooks (docs/protocol.md §2.6, docs/protocol.md §2.11)
    assert paper.for_record(rec("alexnet", bal="conservative"))[0] is None
    assert paper.for_record(rec("alexnet"))[:2] == (0.47, "val")  # its simple cell is the real AlexNet's
    assert paper.for_record(rec("seq4conv", bal="conservative"))[0] is None
    assert paper.for_record(rec("modular", bal="conservative"))[:2] == (0.65, "val")
    assert paper.seed000_cells("modular", "FER2013", 48, "conservative") == [("Modular", 0.65), ("AlexNet *", 0.59)]
    assert paper.seed000_cells("seq3conv", "FER2013", 48, "conservative") == [
        ("Sequential 3Conv", 0.66), ("Sequential 4Conv *", 0.66)]
    # conservative "VGG19" notebooks built VGGFace's VGG16; the simple FER2013 SMMB notebook loaded RAF-DB
    assert paper.for_record(rec("vgg19", bal="conservative"))[0] is None
    assert paper.seed000_cells("vgg16_vf", "FER2013", 48, "conservative") == [("VGG16 - VF", 0.65), ("VGG19", 0.67)]
    assert paper.for_record(rec("smmb"))[0] is None
    assert paper.for_record(rec("smmb", bal="conservative"))[:2] == (0.63, "val")


def test_seed000_cells_are_matched_with_the_network_that_produced_them() -> None:
    path = seed_results_path()
    assert path is not None

    def row(model: str, bal: str, val: float, fold: int | None = None, epochs: int = 30) -> dict:
        return {"model": model, "dataset": "fer2013", "size": 48, "balancing": bal, "fold": fold, "method": None,
                "val_accuracy": val, "val_test_accuracy": val + 0.01, "val_late_gain": 0.05 if fold else 0.0,
                "epochs": epochs, "group": f"{model}/{bal}/{epochs}"}

    rows = [row("modular", "conservative", 0.58), row("alexnet", "conservative", 0.50),
            row("alexnet", "simple", 0.45), row("alexnet", "simple", 0.47), row("lenet5", "none", 0.49),
            row("lenet5", "conservative", 0.40, fold=0), row("modular", "conservative", 0.60, epochs=15)]
    cells = seed000_cell_rows(rows, PaperNumbers(path))
    got = {(c["cell"], c["balancing"]): (c["network"], round(c["ours"], 4), round(c["diff"], 4), c["trials"],
                                         c["ran_instead"]) for c in cells}
    # seed 000 FER2013 48 px: Modular cons 0.65, AlexNet * cons 0.59 (its notebooks ran Modular), AlexNet * simple
    # 0.47 (the real AlexNet, two replicates); lenet5 unweighted has no cell, its fold trial is left out; of
    # Modular's two budgets the 30-epoch one is taken
    assert got == {("Modular", "conservative"): ("modular", 0.58, -0.07, 1, False),
                   ("AlexNet *", "conservative"): ("modular", 0.58, -0.01, 1, True),
                   ("AlexNet *", "simple"): ("alexnet", 0.46, -0.01, 2, False)}
    assert [round(c["diff_pooled"], 4) for c in cells] == [0.0, 0.0, -0.06]  # closest first, on val + test
    assert {c["late_gain"] for c in cells} == {0.0}  # the fold trial's rising curve is not one of them
    # networks behind the cells: alexnet and modular (lenet5 has no cell); a network counts as levelled when one
    # of its trials at any class weighting levelled off (here alexnet's unweighted one)
    assert levelled_networks(cells, rows) == (["alexnet", "modular"], [])
    rising = [dict(r, val_late_gain=0.02) if r["model"] in ("alexnet", "modular") else r for r in rows]
    assert levelled_networks(cells, rising) == (["alexnet", "modular"], ["alexnet", "modular"])
    assert levelled_networks(cells, rising + [row("alexnet", "none", 0.5)]) == (["alexnet", "modular"], ["modular"])


def test_pooled_accuracy_scores_validation_and_test_together() -> None:
    rec = {"val_split": "PublicTest", "test_split": "PrivateTest",
           "evals": {"PublicTest": {"n": 100, "accuracy": 0.5}, "PrivateTest": {"n": 300, "accuracy": 0.7}}}
    assert pooled_accuracy(rec) == pytest.approx(0.65)  # (50 + 210) / 400
    del rec["evals"]["PrivateTest"]
    assert pooled_accuracy(rec) is None


def test_report_of_an_empty_store_is_one_line(tmp_path: Path) -> None:
    ResultsStore(tmp_path / "results.db").close()
    with pytest.raises(FerbenchError, match="no finished trial"):
        write_study_report(tmp_path / "results.db", tmp_path / "rep")


def test_study_notes_match_resolved_configs_and_bad_ones_are_refused(tmp_path: Path) -> None:
    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n"
                         "notes:\n  - {train.class_weights: simple, note: known cause}\n")
    st = load_study(p)
    assert [st.note_for(t.config) for t in st.trials()] == [None, "known cause"]
    (tmp_path / "plain").mkdir()
    plain = load_study(_study(tmp_path / "plain", "grid:\n  train.class_weights: [none, simple]\n"))
    assert [t.key for t in st.trials()] == [t.key for t in plain.trials()]  # notes are in no trial's key
    for body, msg in (("notes:\n  - {note: no keys}\n", "needs 'note: text' and at least one config key"),
                      ("notes:\n  - {train.lr: 0.1}\n", "needs 'note: text'"),
                      ("notes:\n  - {train.speed: 2, note: x}\n", "notes key 'train.speed' is not a config key")):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            load_study(_study(tmp_path, body, name="bad"))


def test_shipped_studies_parse() -> None:
    studies = sorted((PACKAGE_CONFIGS / "studies").glob("*.yaml"))
    names = {p.stem for p in studies}
    for seed in ("seed000", "seed001", "seed002", "seed003"):
        assert seed in names and f"{seed}_quick" in names
    from ferbench.cli.common import check_config_names
    from ferbench.config import list_configs, load_config

    # every shipped file passes what `ferbench sweep` (a study: each trial) or `ferbench train` checks first
    for name in list_configs():  # studies/ and the study files elsewhere (experiments/) have a base
        path = PACKAGE_CONFIGS / f"{name}.yaml"
        if "base" in (yaml.safe_load(path.read_text()) or {}):
            trials = load_study(path).trials()
            assert trials, name
            for t in trials:
                check_config_names(t.config, f"{name} {t.label()}: ")
        else:
            check_config_names(load_config(name), f"{name}: ")


# -- Ray ------------------------------------------------------------------------------------------------------
@pytest.mark.ray
def test_ray_executor_runs_two_trials(tiny_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\nresources: {cpus: 1}\n")
    out = tmp_path / "study"
    res = run_study(p, out, executor="ray", data_root=tiny_root, log=lambda s: None)
    assert (res["finished"], res["failed"]) == (2, 0)
    with ResultsStore(out / "results.db") as s:
        recs = s.results()
    assert len(recs) == 2 and all(r["epochs"] == 2 and r["test_accuracy"] is not None for r in recs)
    assert {Path(r["run_dir"]).name for r in recs} == {t["key"] for t in ResultsStore(out / "results.db").trials()}
