"""Seed-001 k-fold protocol (docs/protocol.md §3.1) on top of the one trainer.

Pool every official split, ``StratifiedKFold(k, shuffle=True, random_state=10)``; each fold's held-out
20 % is split 50/50 into val/test with ``train_test_split(test_size=0.5, random_state=1)`` (not
stratified) ⇒ 80/10/10. In subject-independent mode (the default where subject ids exist, e.g. CK+)
folds come from ``StratifiedGroupKFold`` and the val/test split keeps subjects whole too.

Each fold is one trainer run on ``data.indices``; a finished fold writes ``fold<k>/result.json``
atomically and is skipped on re-run, an unfinished one resumes from its last finished epoch.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedKFold, train_test_split

from ferbench.errors import ConfigError, FerbenchError
from ferbench.persist import RunDir
from ferbench.persist.atomic import atomic_write_text

#: metrics reported as mean ± std (seed 001 Table 2 columns, then two extras)
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "precision_weighted", "recall_weighted", "f1_hm",
                   "auc_weighted", "f1_weighted", "auc_macro")


def kfold_indices(labels: np.ndarray, k: int = 5, seed: int = 10, groups: np.ndarray | None = None,
                  split_seed: int = 1) -> list[dict[str, list[int]]]:
    """The seed-001 folds as index lists.

    Args:
        labels: int ``(N,)`` labels of the pooled dataset.
        k: number of folds.
        seed: k-fold shuffle seed (seed 001: 10).
        groups: ``(N,)`` subject ids for subject-independent folds, or None (random, as seed 001).
        split_seed: seed of the val/test split of each held-out part (seed 001: 1).

    Returns:
        ``k`` dicts ``{"train": [...], "val": [...], "test": [...]}`` of int positions; the three
        are disjoint and each fold's val ∪ test is that fold's held-out part.
    """
    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    if k < 2:
        raise ConfigError(f"--folds must be at least 2, not {k}")
    if groups is not None:
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(idx, labels, groups)
    else:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, labels)
    out = []
    for train, held in splitter:
        if groups is not None:
            a, b = next(GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=split_seed)
                        .split(held, groups=groups[held]))
            val, test = held[a], held[b]
        else:
            val, test = train_test_split(held, test_size=0.5, random_state=split_seed)
        out.append({"train": sorted(int(i) for i in train), "val": sorted(int(i) for i in val),
                    "test": sorted(int(i) for i in test)})
    return out


def summarize(fold_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std (population std, ``ddof=0``) over folds and the fold-averaged normalised confusion matrix.

    Args:
        fold_results: per-fold metric dicts from :func:`ferbench.evaluate.metrics.compute_metrics`.
    """
    out: dict[str, Any] = {"folds": len(fold_results)}
    for m in SUMMARY_METRICS:
        vals = [r[m] for r in fold_results if r.get(m) is not None]
        if vals:
            out[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "values": [float(v) for v in vals]}
    cms = [np.asarray(r["confusion_matrix_normalized"], dtype=np.float64) for r in fold_results
           if r.get("confusion_matrix_normalized") is not None]
    if cms:
        out["confusion_matrix_normalized_mean"] = np.mean(cms, axis=0).round(6).tolist()
    if fold_results and fold_results[0].get("classes"):
        out["classes"] = fold_results[0]["classes"]
    return out


def summary_markdown(summary: dict[str, Any], title: str = "") -> str:
    """A markdown table of ``mean ± std`` per metric plus the averaged confusion matrix."""
    lines = [f"## {title}", ""] if title else []
    lines += ["| metric | mean ± std |", "|---|---|"]
    for m in SUMMARY_METRICS:
        if m in summary:
            lines.append(f"| {m} | {summary[m]['mean']:.4f} ± {summary[m]['std']:.4f} |")
    cm = summary.get("confusion_matrix_normalized_mean")
    classes = summary.get("classes")
    if cm and classes:
        lines += ["", "Fold-averaged row-normalised confusion matrix (rows = true class):", "",
                  "| true \\ pred | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        for c, row in zip(classes, cm, strict=True):
            lines.append(f"| {c} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def run_kfold(config: dict[str, Any] | str | Path, folds: int = 5, out_dir: str | Path | None = None,
              subject_independent: bool | None = None, overrides: list[str] | tuple[str, ...] = (),
              progress: bool = True, log: Callable[[str], None] | None = None,
              train_fn: Callable[..., Path] | None = None) -> dict[str, Any]:
    """Run the k-fold protocol; returns the summary (also written to ``out_dir/summary.{json,md}``).

    Args:
        config: training config (YAML path or dict); its split names are replaced by fold indices.
        folds: k.
        out_dir: result folder (default ``runs/kfold-<name>-<config hash>``).
        subject_independent: True = group folds by subject, False = seed 001's random folds,
            None = subject-independent when the dataset has subject ids.
        overrides: ``key=value`` config overrides.
        progress: rich progress bars inside each fold's training.
        log: one-line status callback (default print).
        train_fn: the trainer (default :func:`ferbench.train.loop.train`; injectable for tests).
    """
    from ferbench.config import config_hash, load_config
    from ferbench.data import load_dataset

    say = log or print
    if train_fn is None:
        from ferbench.train.loop import train as train_fn
    cfg = load_config(config, overrides)
    ds = load_dataset(cfg["data"]["name"], cfg["data"].get("root"))
    if subject_independent is None:
        subject_independent = ds.subjects is not None
    if subject_independent and ds.subjects is None:
        raise ConfigError(f"{ds.name} has no subject ids; use --random folds")
    groups = ds.subjects if subject_independent else None
    fold_idx = kfold_indices(ds.labels.numpy(), folds, groups=groups)
    mode = "subject-independent" if subject_independent else "random"
    out = Path(out_dir) if out_dir else Path("runs") / f"kfold-{cfg['name']}-{mode}-{config_hash(cfg)}"
    out.mkdir(parents=True, exist_ok=True)
    plan = {"dataset": ds.name, "n": len(ds), "folds": folds, "mode": mode, "seed": 10, "split_seed": 1,
            "config_hash": config_hash(cfg), "sizes": [{k: len(v) for k, v in f.items()} for f in fold_idx]}
    plan_path = out / "plan.json"
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        if {k: old.get(k) for k in plan} != plan:
            raise FerbenchError(f"{out}: holds a k-fold run with a different dataset, config or fold plan; "
                                "use another --out")
    else:
        atomic_write_text(plan_path, json.dumps({**plan, "indices": fold_idx}))
    results = []
    for k, ix in enumerate(fold_idx):
        res_path = out / f"fold{k}" / "result.json"
        if res_path.exists():
            say(f"fold {k + 1}/{folds}: done before, skipped ({res_path})")
            results.append(json.loads(res_path.read_text()))
            continue
        say(f"fold {k + 1}/{folds} ({mode}): train {len(ix['train'])}, val {len(ix['val'])}, test {len(ix['test'])}")
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg["data"]["indices"] = ix
        fold_cfg["name"] = f"{cfg['name']}-fold{k}"
        run_dir = train_fn(fold_cfg, out / f"fold{k}" / "run", resume=True, progress=progress)
        rd = RunDir(run_dir)
        test_eval = rd.eval_file("test")
        if not test_eval.exists():
            raise FerbenchError(f"{run_dir}: trainer wrote no eval_test.json")
        res = json.loads(test_eval.read_text())
        best = json.loads(rd.best.with_suffix(".json").read_text())  # only the epoch is needed
        res.update({"fold": k, "best_epoch": best.get("epoch"), "run_dir": str(run_dir)})
        atomic_write_text(res_path, json.dumps(res, indent=1))
        say(f"fold {k + 1}/{folds}: test accuracy {res['accuracy']:.4f}, balanced {res['balanced_accuracy']:.4f}")
        results.append(res)
    summary = summarize(results)
    summary.update({"dataset": ds.name, "mode": mode, "config": str(config) if not isinstance(config, dict)
                    else cfg["name"], "method": (cfg.get("method") or {}).get("name"),
                    "model": cfg["model"]["name"], "epochs": cfg["train"]["epochs"]})
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    title = f"{summary['method'] or summary['model']} on {ds.name}, {folds}-fold {mode}"
    atomic_write_text(out / "summary.md", summary_markdown(summary, title))
    return summary
