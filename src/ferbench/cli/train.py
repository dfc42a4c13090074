"""``ferbench train``, ``evaluate``, ``calibrate``, ``distill-targets`` and ``quickstart``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ferbench.progress import console as _console

DeviceOpt = typer.Option("auto", "--device", help="auto (a CUDA GPU when one is present, else CPU) | cpu | cuda | cuda:N.")
DataRoot = typer.Option(None, "--data-root", help="Folder holding fer2013/, ferplus/, ckplus48/ "
                        "(default: $FERBENCH_DATA, ./data, ../shared/data).")


def _with_root(sets: list[str], data_root: Path | None) -> list[str]:
    return [*sets, f"data.root={data_root}"] if data_root else list(sets)


def train_cmd(
    config: Path = typer.Argument(..., help="YAML config, or a shipped config by name (e.g. quickstart, "
                                  "protocols/seed000; `ferbench configs` lists them)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set train.lr=1e-3 (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<name>-<config hash>)."),
    resume: bool = typer.Option(False, "--resume/--no-resume",
                                help="Continue the run in --out from its last finished epoch."),
    init: str | None = typer.Option(None, "--init", help="scratch | file:PATH | imagenet | run:RUN_DIR."),
    data_root: Path | None = DataRoot,
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N (sets train.device; "
                                      "default: the config's, normally auto = a CUDA GPU when present)."),
) -> None:
    """Train a model under a protocol config; writes a run directory (checkpoints, metrics, evaluation).

    On a terminal a progress bar; when the output is redirected, one plain line per epoch (time, losses,
    accuracies, learning rate, seconds, training images/s).
    """
    from ferbench.config import load_config
    from ferbench.device import check_device_name

    if device is not None:
        device = check_device_name(device)
    sets = (_with_root(set_, data_root) + ([f"model.init={init}"] if init else [])
            + ([f"train.device={device}"] if device else []))
    from ferbench.cli.common import check_config_names

    # a bad config or --set, a misspelt model or dataset name fail here, before torch and the data load
    check_config_names(load_config(str(config), sets), data_files=True)
    from ferbench.train.loop import train

    run = train(str(config), out_dir=out, resume=resume, overrides=sets)
    typer.echo(f"run directory: {run}")


def evaluate_cmd(
    run: str = typer.Argument(..., help="'default' / 'default-ferplus' (shipped models), a run directory, a "
                              "checkpoint (.safetensors) or an ensemble JSON."),
    data: str = typer.Option(..., "--data", help="fer2013 | ferplus | ckplus | folder:PATH"),
    split: str | None = typer.Option(None, "--split", help="Split name, e.g. PrivateTest, test, all (default: the "
                                     "dataset's test split: FER2013 PrivateTest, CK+48 test)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write all metrics to this JSON file."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Average with the horizontally flipped image."),
    data_root: Path | None = DataRoot,
    device: str = DeviceOpt,
) -> None:
    """Evaluate a checkpoint on a dataset split (other taxonomies: shared canonical classes only)."""
    from ferbench.device import check_device_name

    device = check_device_name(device)
    from ferbench.cli.common import checkpoint_ref
    from ferbench.data.registry import check_dataset_files

    check_dataset_files(data, data_root)  # a misspelt or absent dataset or checkpoint fails before torch loads
    if split is None:
        from ferbench.data.registry import split_name

        split = split_name(data, "test")
    ref = checkpoint_ref(run)
    from ferbench.evaluate.crossdata import evaluate_checkpoint
    from ferbench.persist.atomic import atomic_write_text

    if json_out is not None:
        _refuse_sidecar(json_out, ref)
    m = evaluate_checkpoint(ref, data, split, data_root, tta_hflip=tta, device=device)
    print_metrics(m)
    if json_out:
        atomic_write_text(json_out, json.dumps(m, indent=1))
        typer.echo(f"wrote {json_out}")


def calibrate_cmd(
    run: str = typer.Argument(..., help="'default' / 'default-ferplus', a run directory or a .safetensors file."),
    data: str | None = typer.Option(None, "--data", help="Dataset with the model's classes (default: the one it "
                                    "was trained on)."),
    split: str | None = typer.Option(None, "--split", help="Split that fits T and tau (default: the dataset's "
                                     "validation split, FER2013 PublicTest)."),
    prior_tau: str = typer.Option("auto", "--prior-tau", help="Prior-correction strength: auto (the rule "
                                  "below), 0 (temperature only) or a number in [0, 2] (1 = full correction)."),
    max_accuracy_drop: float = typer.Option(0.5, "--max-accuracy-drop", min=0.0, max=100.0,
                                            help="auto: the tau with the best balanced accuracy on --split "
                                            "among those losing at most this many points of accuracy."),
    tta: bool | None = typer.Option(None, "--tta/--no-tta", help="Fit on h-flip-averaged scores (default: as "
                                    "the sidecar says the model runs)."),
    out: Path | None = typer.Option(None, "--out", help="Write a calibrated copy here (.safetensors + .json) "
                                    "instead of updating the checkpoint's sidecar in place."),
    tta_gate: str | None = typer.Option(None, "--tta-gate", help="With h-flip TTA: auto (the lowest confidence "
                                        "gate that loses no accuracy or balanced accuracy on --split), off, or a "
                                        "number in (0, 1]; faces whose first view is at least this sure skip the "
                                        "mirrored view (default: keep the sidecar's)."),
    data_root: Path | None = DataRoot,
) -> None:
    """Fit a temperature and a prior correction on a validation split; store them in the checkpoint's sidecar.

    The prior correction divides the probabilities by the training classes' frequencies to the power tau
    (post-hoc logit adjustment): the model stops favouring FER2013's frequent classes (happy) over its rare
    ones (disgust, fear), which lifts balanced accuracy in-domain and on other datasets. Every reader of
    the checkpoint (evaluate, predict, serve, Recognizer, exports made afterwards) applies what is stored.
    With --tta-gate auto it also stores the confidence from which predict, serve and Recognizer skip the
    mirrored view of a face (h-flip TTA at up to half the cost, same validation accuracy).
    """
    from ferbench.cli.common import checkpoint_ref
    from ferbench.data.registry import check_dataset_files

    ref = checkpoint_ref(run)  # a misspelt model or dataset, absent data fail before torch loads
    if data is not None:
        check_dataset_files(data, data_root)
    from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint

    cal = calibrate_checkpoint(ref, data, split, None, data_root, tta, prior_tau,
                               max_accuracy_drop / 100.0, out, tta_gate=tta_gate)
    b, a = cal["val_uncalibrated"], cal["val_calibrated"]
    typer.echo(f"{cal['split']}: temperature {cal['temperature']:.3f}, prior tau {cal['prior_tau']:g} "
               f"(prior from {cal['prior_split']})")
    typer.echo(f"  accuracy {100 * b['accuracy']:.2f} -> {100 * a['accuracy']:.2f} %, balanced "
               f"{100 * b['balanced_accuracy']:.2f} -> {100 * a['balanced_accuracy']:.2f} %, ECE {b['ece']:.4f} -> "
               f"{a['ece']:.4f}")
    if cal.get("tta_gate") is not None:
        mirrored = next((r["mirrored"] for r in cal.get("tta_gate_search", []) if r["gate"] == cal["tta_gate"]), None)
        typer.echo(f"  TTA gate {cal['tta_gate']:g}: the mirrored view only below that confidence"
                   + (f" ({100 * mirrored:.1f} % of {cal['split']})" if mirrored is not None else ""))
    typer.echo(f"wrote the calibration into {out.with_suffix('.json') if out else run}")


def _refuse_sidecar(path: Path, ref: str | Path) -> None:
    """An output file that is the checkpoint's own ``.json`` sidecar would overwrite it: one-line error."""
    from ferbench.errors import FerbenchError
    from ferbench.persist.checkpoint import resolve_checkpoint

    try:
        side = resolve_checkpoint(ref).with_suffix(".json")
    except FerbenchError:
        return  # not a checkpoint (an ensemble JSON, a missing file): the command reports that itself
    if Path(path).resolve() == side.resolve():
        raise FerbenchError(f"--json {path}: that is the checkpoint's own sidecar; choose another file name")


def print_metrics(m: dict) -> None:
    """Print the metrics and per-class tables of :func:`ferbench.evaluate.metrics.compute_metrics` output."""
    from rich.table import Table

    con = _console()
    t = Table(title=f"{m.get('model', '')} on {m['dataset']}/{m['split']} (n={m['n']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in ("accuracy", "balanced_accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_hm",
              "precision_macro", "recall_macro", "f1_macro", "auc_weighted", "auc_macro", "ece"):
        v = m.get(k)
        t.add_row(k, "–" if v is None else f"{v:.4f}")
    con.print(t)
    pc = Table(title="per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        pc.add_column(col, justify="right")
    for c, r in m["per_class"].items():
        pc.add_row(c, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", str(r["support"]))
    con.print(pc)
    if m.get("dropped_classes"):
        con.print(f"dropped dataset classes the model lacks: {', '.join(m['dropped_classes'])} "
                  f"({m['dropped_samples']} images)")
    if m.get("ignored_model_classes"):
        con.print(f"model classes absent from the dataset (ignored): {', '.join(m['ignored_model_classes'])}")


def quickstart_cmd(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run directory."),
    data_root: Path | None = DataRoot,
    set_: list[str] = typer.Option([], "--set", help="Override a config key (repeatable)."),
) -> None:
    """Train the fast default config on FER2013, evaluate on PrivateTest and on CK+48 (never trained on), report (7–13 min).

    Measured: 6 min 54 s wall on 2 quiet CPU cores; 12 min 18 s on a 3× slower AVX2-only CPU, where the config's
    13-minute training limit stops it after epoch 4 of 10 (55.8 % instead of 63.3 %). Re-running continues an
    interrupted quickstart from its last finished epoch.
    """
    from ferbench.cli.common import check_config_names
    from ferbench.config import load_config

    # absent data (or a bad --set) fails here, before torch loads
    check_config_names(load_config("quickstart.yaml", _with_root(set_, data_root)), data_files=True)
    from ferbench.persist import RunDir
    from ferbench.report.runs import write_report
    from ferbench.train.loop import train

    run = train("quickstart.yaml", out_dir=out, resume=True, overrides=_with_root(set_, data_root))
    rep = write_report([run], run / "report")
    import yaml

    from ferbench.data.registry import display_name
    from ferbench.train.build import dataset_name

    run_cfg = yaml.safe_load(RunDir(run).config.read_text())
    test_split = run_cfg["data"].get("test_split") or "PrivateTest"
    ev = json.loads(RunDir(run).eval_file(test_split).read_text())  # with --set data.name=…: that dataset's test
    print_metrics({**ev, "model": "quickstart"})
    off = RunDir(run).eval_file(RunDir.cross_key("ckplus", "test"))  # the config's eval.cross: never trained on
    beside = ""
    if off.exists():
        ck = json.loads(off.read_text())
        beside = f"; CK+48 test (never trained on) {ck['accuracy']:.4f}, balanced {ck['balanced_accuracy']:.4f}"
    name = dataset_name(run_cfg)
    where = test_split if name == "fer2013" else f"{display_name(name)} {test_split}"
    typer.echo(f"{where} accuracy {ev['accuracy']:.4f}, balanced {ev['balanced_accuracy']:.4f}{beside}; "
               f"report: {rep} (+ report.html)")


def configs_cmd(
    show: str | None = typer.Argument(None, help="Print this shipped config resolved (defaults + extends)."),
) -> None:
    """List the configs shipped with ferbench (usable by name from any folder: `ferbench train quickstart`)."""
    from ferbench.config import dump_yaml, list_configs, load_config

    if show:
        typer.echo(dump_yaml(load_config(show)), nl=False)
        return
    for name in list_configs():
        typer.echo(name)


def distill_targets_cmd(
    teachers: list[str] = typer.Argument(..., help="Teacher checkpoints: 'default', run directories or "
                                         ".safetensors files (their probabilities are averaged)."),
    data: str = typer.Option("fer2013", "--data", help="Dataset whose images get targets (all splits)."),
    out: Path = typer.Option(..., "--out", help="Targets file, NAME.safetensors (+ NAME.json sidecar)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide the teachers' scores by T before the "
                                      "softmax (T > 1: softer targets)."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help="Average each teacher with the mirrored image."),
    data_root: Path | None = DataRoot,
) -> None:
    """Label distributions from an ensemble of your checkpoints, for offline knowledge distillation.

    Train on them with --set data.soft_label_file=OUT (and data.soft_mix=0.7 for 70 % teacher, 30 % one-hot label).
    """
    from ferbench.cli.common import checkpoint_ref
    from ferbench.data.registry import check_dataset_files

    check_dataset_files(data, data_root)  # misspelt names or absent data fail before torch loads ...
    refs = [str(checkpoint_ref(t)) for t in teachers]
    from ferbench.evaluate.distill import save_targets, targets_path, teacher_targets

    targets_path(out)  # ... and a bad --out before the teachers run over every image, not after
    probs, side = teacher_targets(refs, data, data_root, temperature, tta, log=typer.echo)
    path = save_targets(out, probs, side)
    agree = ", ".join(f"{k} {100 * v:.2f} %" for k, v in side["agreement_by_split"].items())
    typer.echo(f"wrote {path} ({side['n']} x {len(side['classes'])}); ensemble agrees with the labels: {agree}")


def register(app: typer.Typer) -> None:
    app.command("configs")(configs_cmd)
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("calibrate")(calibrate_cmd)
    app.command("distill-targets")(distill_targets_cmd)
    app.command("quickstart")(quickstart_cmd)
