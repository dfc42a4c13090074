"""The cross-domain protocol: train on one dataset or a union, test on every other, as a matrix.

``run_crossdomain(config, out_dir, train_sets=["fer2013"], test_sets=["ckplus", "ferplus"])`` trains one run
per training set (``OUT/runs/<slug>/``, resumable) and evaluates each run's best checkpoint on the test split
of every test dataset, scored in the classes the model and the dataset share
(:func:`ferbench.evaluate.crossdata.evaluate_checkpoint`). ``leave_one_out=[fer2013, ferplus, ckplus, ...]``
builds the training sets itself: for each held-out dataset, the union of the others that share no images
with it (FER2013 and FER+ share pixels, so holding one out holds out both; of two members sharing images the
first listed is kept).

Each cell is committed atomically to ``OUT/cells/<train>__<test>.json`` together with the digest of the
checkpoint it scored, so a re-run skips finished trainings and cells and redoes only those whose checkpoint
changed. ``OUT/crossdomain.json`` holds the whole matrix; :mod:`ferbench.report.crossdomain` renders it as
Markdown and a heat-map PNG.

Cell kinds: ``in-domain`` (the test dataset is a training member; its test split is disjoint from the
training split, subject-disjoint for CK+48), ``same-images`` (the test dataset relabels a training member's
pixels, e.g. FER+ after FER2013: a label-set shift, not a domain shift) and ``cross-domain``.

A test column is a dataset (scored on its test split) or ``DATASET@SPLIT``, another split of it: ``ckplus@all``
scores every CK+48 image, the larger sample for a dataset a row never trained on. Such a column is scored only in
cross-domain rows; in a row that trained on the dataset's images the split holds training images, so the cell is
left empty and listed under ``refused``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ferbench.config import config_hash, load_config, read_yaml
from ferbench.data.registry import (
    canonical_dataset_name,
    display_name,
    domain_relation,
    get_spec,
    parse_dataset_names,
    split_name,
)
from ferbench.errors import FerbenchError
from ferbench.persist import RunDir, read_sidecar
from ferbench.persist.atomic import atomic_write_text
from ferbench.persist.checkpoint import file_digest

DEFAULT_LOO = ("fer2013", "ferplus", "ckplus")
RESULTS_JSON = "crossdomain.json"


def normalise_set(name: str | Sequence[str]) -> str:
    """A training/test set in registry spelling: ``"FER2013+CK+"`` → ``"fer2013+ckplus"``."""
    return "+".join(canonical_dataset_name(n) for n in parse_dataset_names(name))


def slug(name: str) -> str:
    """A file-name-safe id of a dataset set: ``fer2013+ckplus``; folders → ``folder-<dir>-<hash>``."""
    out = []
    for n in parse_dataset_names(name):
        if n.startswith("folder:"):
            path = n.split(":", 1)[1]
            base = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).name or "root").strip("-")
            out.append(f"folder-{base}-{hashlib.sha1(path.encode()).hexdigest()[:6]}")
        else:
            out.append(n)
    return "+".join(out)


def parse_test(spec: str) -> tuple[str, str | None]:
    """A test column → ``(dataset in registry spelling, split or None)``: ``"CK+@all"`` → ``("ckplus", "all")``,
    ``"ferplus"`` → ``("ferplus", None)`` (None: the dataset's test split)."""
    name, sep, split = spec.rpartition("@")
    if not sep or not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", split):
        return normalise_set(spec), None
    return normalise_set(name), split


def normalise_test(spec: str) -> str:
    """A test column in registry spelling; ``DATASET@SPLIT`` naming the dataset's own test split → ``DATASET``.

    Raises:
        FerbenchError: a union (not a domain), or a split the dataset does not have (``all`` = every image).
    """
    name, split = parse_test(spec)
    if len(parse_dataset_names(name)) > 1:
        raise FerbenchError(f"--test {spec}: test on single datasets (a union is not a domain)")
    if split is None or split == split_name(name, "test"):
        return name
    ds_spec = get_spec(name)
    known = [*dict.fromkeys(ds_spec.splits.values()), "all"]
    if not ds_spec.argument and split not in known:
        raise FerbenchError(f"--test {spec}: {display_name(name)} has no split {split!r}; choose one of "
                            f"{', '.join(known)}")
    return f"{name}@{split}"


def leave_one_out_sets(datasets: Sequence[str]) -> list[tuple[str, str]]:
    """``[(held-out dataset, training set)]`` for leave-one-dataset-out over ``datasets``.

    The training set of a held-out dataset is the union of the datasets that share no images with it, with
    at most one member per image source (the first listed).

    Raises:
        FerbenchError: fewer than two datasets, or a held-out dataset that leaves nothing to train on.
    """
    names = [normalise_set(d) for d in datasets]
    if len(names) < 2 or len(set(names)) != len(names):
        raise FerbenchError("leave-one-out needs at least two distinct datasets")
    out = []
    for held in names:
        src = get_spec(held).image_source or held
        members: list[str] = []
        used: set[str] = {src}
        for n in names:
            s = get_spec(n).image_source or n
            if n != held and s not in used:
                members.append(n)
                used.add(s)
        if not members:
            raise FerbenchError(f"leave-one-out: holding out {held} leaves no dataset with other images")
        out.append((held, "+".join(members)))
    return out


def cell_kind(train_set: str, test: str) -> str:
    """``in-domain``, ``same-images`` or ``cross-domain`` (see the module docstring)."""
    return domain_relation(train_set, test)


def run_config(config: str | Path | dict[str, Any], train_set: str, overrides: Sequence[str] = (),
               data_root: str | Path | None = None) -> dict[str, Any]:
    """The resolved training config of one row: ``config`` + ``overrides``, with ``data.name`` set to the
    training set, the splits set to the set's train / val / test roles (from the registry) and
    ``data.sampling_weights`` restricted to the set's members."""
    cfg = load_config(config, list(overrides))
    d = cfg["data"]
    d["name"] = train_set
    d["train_split"], d["val_split"], d["test_split"] = (split_name(train_set, r) for r in ("train", "val", "test"))
    d["indices"] = None
    cfg.setdefault("eval", {})["cross"] = []  # the matrix scores every test set itself (eval.cross is not hashed)
    if d.get("sampling_weights"):  # a config shared by several rows: each row keeps its own members' weights
        members = {canonical_dataset_name(m) for m in parse_dataset_names(train_set)}
        d["sampling_weights"] = {k: v for k, v in d["sampling_weights"].items()
                                 if canonical_dataset_name(k) in members} or None
    if data_root is not None:
        d["root"] = str(data_root)
    return cfg


def _finished(run_dir: Path, cfg: dict[str, Any]) -> bool:
    """The run in ``run_dir`` finished (its committed state says it stopped, not just that a best checkpoint
    exists: a killed run has one after its first epoch) under this exact config."""
    rd = RunDir(run_dir)
    if not rd.has_state() or not rd.best.exists() or not rd.config.exists():
        return False
    return bool(rd.read_last().get("stopped")) and config_hash(read_yaml(rd.config)) == config_hash(cfg)


def _cell_summary(m: dict[str, Any], train_set: str, test: str, dataset: str, split: str,
                  digest: str) -> dict[str, Any]:
    return {
        "train": train_set, "test": test, "split": split, "kind": cell_kind(train_set, dataset),
        "train_display": display_name(train_set), "test_display": display_name(dataset),
        "n": m["n"], "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
        "f1_macro": m.get("f1_macro"), "ece": m.get("ece"),
        "classes": m["classes"],
        "per_class_recall": {c: r["recall"] for c, r in m["per_class"].items()},
        "per_class_support": {c: r["support"] for c, r in m["per_class"].items()},
        "dropped_classes": m.get("dropped_classes", []), "dropped_samples": m.get("dropped_samples", 0),
        "ignored_model_classes": m.get("ignored_model_classes", []),
        "tta_hflip": m.get("tta_hflip", False), "checkpoint_digest": digest,
        "confusion_matrix": m.get("confusion_matrix"),
    }


def run_crossdomain(
    config: str | Path | dict[str, Any],
    out_dir: str | Path,
    train_sets: Sequence[str | Sequence[str]] = (),
    test_sets: Sequence[str] = (),
    *,
    leave_one_out: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    tta_hflip: bool | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    train_fn: Callable[..., Path] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train every training set (resumably) and fill the train × test matrix; returns the results dict.

    Args:
        config: training config (YAML path or dict), as for ``ferbench train``.
        out_dir: results folder: ``runs/<train slug>/``, ``cells/``, ``crossdomain.json``.
        train_sets: training sets (``"fer2013"``, ``"fer2013+ckplus"``, ``["fer2013", "ckplus"]``).
        test_sets: test datasets, or ``DATASET@SPLIT`` for another split (``ckplus@all``: every image; scored
            only in rows that never trained on the dataset's images); every training member is also tested (the
            in-domain cell).
        leave_one_out: datasets for leave-one-dataset-out (adds its training sets; all of them are tested).
        overrides: ``key=value`` config overrides for every run.
        data_root: datasets folder.
        tta_hflip: h-flip test-time augmentation in the cells (default: the config's ``eval.tta_hflip``).
        progress: rich progress bars in training.
        log: one-line status callback (default print).
        train_fn: the trainer (default :func:`ferbench.train.loop.train`), for tests.
        command: the command line to record in the results.

    Returns:
        ``{"train_sets", "test_sets", "mode", "held_out", "cells": [...], "refused": [...], "runs": {...}, ...}``
        (also written to ``OUT/crossdomain.json``).
    """
    say = log or print
    out = Path(out_dir)
    rows = [normalise_set(t) for t in train_sets]
    tests = [normalise_test(t) for t in test_sets]
    held_out: dict[str, str] = {}
    if leave_one_out is not None:
        for held, tr in leave_one_out_sets(leave_one_out):
            held_out[held] = tr
            rows.append(tr)
            tests.append(held)
    rows = list(dict.fromkeys(rows))
    if not rows:
        raise FerbenchError("crossdomain: give --train (one dataset or a union) or --leave-one-out")
    if leave_one_out is None:  # the in-domain columns first, then the other test datasets
        tests = [canonical_dataset_name(m) for r in rows for m in parse_dataset_names(r)] + tests
    else:
        tests += [canonical_dataset_name(m) for r in rows for m in parse_dataset_names(r)]
    tests = list(dict.fromkeys(tests))
    base = load_config(config, list(overrides))
    tta = bool(base["eval"]["tta_hflip"]) if tta_hflip is None else bool(tta_hflip)
    # the names and the config are checked: now the heavy imports (torch, the zoo)
    from ferbench.evaluate.crossdata import evaluate_checkpoint

    if train_fn is None:
        from ferbench.train.loop import train as train_fn

    results: dict[str, Any] = {
        "mode": "leave-one-out" if leave_one_out is not None else "given",
        "train_sets": rows, "test_sets": tests, "held_out": held_out, "tta_hflip": tta,
        "config": str(config) if not isinstance(config, dict) else "(dict)", "overrides": list(overrides),
        "command": command, "model": base["model"]["name"], "epochs": base["train"]["epochs"],
        "runs": {}, "cells": [], "refused": [],
    }
    for r in rows:
        run_dir = out / "runs" / slug(r)
        cfg = run_config(config, r, overrides, data_root)
        t0 = time.perf_counter()
        if _finished(run_dir, cfg):
            say(f"{r}: training finished earlier ({run_dir})")
            trained_s = None
        else:
            say(f"{r}: training → {run_dir}")
            train_fn(cfg, out_dir=run_dir, resume=True, progress=progress, log=say)
            trained_s = time.perf_counter() - t0
        best = read_sidecar(RunDir(run_dir).best)
        digest = file_digest(run_dir / "best.safetensors")
        results["runs"][r] = {"run_dir": str(run_dir), "best_epoch": best.get("epoch"),
                              "epochs_run": len(RunDir(run_dir).read_metrics()), "wall_s_this_call": trained_s,
                              "train_wall_s": _elapsed(run_dir), "metrics": best.get("metrics", {})}
        for test in tests:
            dataset, other_split = parse_test(test)  # other_split: None = the dataset's test split
            split = other_split or split_name(dataset, "test")
            if other_split and cell_kind(r, dataset) != "cross-domain":
                results["refused"].append({"train": r, "test": test, "reason": "trained on these images"})
                say(f"{r} → {dataset}/{split}: not scored, the split holds images {r} trained on")
                continue
            cell_path = out / "cells" / f"{slug(r)}__{slug(dataset)}{'@' + split if other_split else ''}.json"
            if cell_path.exists():
                cell = json.loads(cell_path.read_text())
                if cell.get("checkpoint_digest") == digest and cell.get("tta_hflip") == tta:
                    results["cells"].append(cell)
                    continue
            m = evaluate_checkpoint(run_dir, dataset, split, data_root, tta_hflip=tta)
            cell = _cell_summary(m, r, test, dataset, split, digest)
            atomic_write_text(cell_path, json.dumps(cell, indent=1))
            say(f"{r} → {test}/{split}: balanced accuracy {cell['balanced_accuracy']:.4f}, "
                f"accuracy {cell['accuracy']:.4f} (n={cell['n']}, {cell['kind']})")
            results["cells"].append(cell)
        atomic_write_text(out / RESULTS_JSON, json.dumps(results, indent=1))
    atomic_write_text(out / RESULTS_JSON, json.dumps(results, indent=1))
    return results


def _elapsed(run_dir: Path) -> float | None:
    """Training wall time over all resumed calls (sum of the per-epoch times)."""
    h = RunDir(run_dir).read_metrics()
    return float(sum(r.get("time_s", 0.0) for r in h)) if h else None


def load_results(out_dir: str | Path) -> dict[str, Any]:
    """``OUT/crossdomain.json``; a one-line error when absent."""
    p = Path(out_dir) / RESULTS_JSON
    if not p.exists():
        raise FerbenchError(f"{p}: no cross-domain results (run ferbench crossdomain first)")
    return json.loads(p.read_text())
