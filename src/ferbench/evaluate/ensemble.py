"""Ensembles of trained checkpoints (docs/protocol.md §4.5): scoring members and their combination on a split, and
greedy forward selection of members on the validation split.

The combination rules and the one-model form are :mod:`ferbench.models.ensemble`; ensemble files are
:func:`ferbench.loader.save_ensemble` / :func:`ferbench.loader.load_ensemble`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferbench.data.preprocess import Preprocessing
from ferbench.errors import DataError, FerbenchError
from ferbench.loader import load_members, save_ensemble
from ferbench.models.ensemble import RULES, combine, vote_shares
from ferbench.persist.checkpoint import logit_bias_of, temperature_of

__all__ = ["RULES", "combine", "evaluate_ensemble", "greedy_select", "vote_shares"]


def greedy_select(probs: np.ndarray, y: np.ndarray, rule: str = "sum") -> tuple[list[int], list[float]]:
    """Forward selection without replacement on a validation split.

    Start from the best single member, then repeatedly add the member that most raises the ensemble's
    accuracy; stop when no addition raises it strictly.

    Args:
        probs: ``(M, N, C)`` member probabilities on the validation split.
        y: ``(N,)`` int labels.
        rule: combination rule.

    Returns:
        ``(selected member indices in order of selection, accuracy after each addition)``.
    """
    y = np.asarray(y)
    chosen: list[int] = []
    history: list[float] = []
    best = -1.0
    while len(chosen) < probs.shape[0]:
        cand = [(float((combine(probs[chosen + [j]], rule).argmax(1) == y).mean()), j)
                for j in range(probs.shape[0]) if j not in chosen]
        acc, j = max(cand, key=lambda t: (t[0], -t[1]))
        if acc <= best:
            break
        chosen.append(j)
        history.append(acc)
        best = acc
    return chosen, history


def _labels_for(ds_classes: list[str], classes: list[str], labels: np.ndarray, name: str) -> np.ndarray:
    """Map dataset labels onto the members' class order (by canonical name)."""
    missing = [c for c in ds_classes if c not in classes]
    if missing:
        raise DataError(f"{name}: classes {missing} are not predicted by the ensemble members ({classes})")
    lut = np.array([classes.index(c) for c in ds_classes], dtype=np.int64)
    return lut[labels]


def evaluate_ensemble(refs: list[str | Path], data: str, split: str, rule: str = "sum", select: str | None = None,
                      val_split: str | None = None, data_root: str | Path | None = None,
                      save: str | Path | None = None, batch_size: int = 512) -> dict[str, Any]:
    """Score members and their ensemble on ``data``/``split``; optionally select greedily and save.

    Each member's probabilities are its calibrated ones (the temperature and prior correction of its sidecar,
    as :class:`ferbench.models.ensemble.EnsembleModel` combines them when the saved ensemble is loaded).

    Returns:
        ``{"members": [{ref, accuracy}], "best_single": {...}, "selected": [...], "ensemble": metrics,
        "rule", "split", "dataset"}`` where ``ensemble`` is :func:`compute_metrics` of the combined scores.
    """
    from ferbench.data import load_dataset
    from ferbench.evaluate.metrics import compute_metrics
    from ferbench.evaluate.predict import predict_probs

    if rule not in RULES:
        raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    if select not in (None, "greedy", "none"):
        raise FerbenchError(f"unknown selection {select!r}; use greedy")
    models, metas = load_members(list(refs))
    classes = metas[0]["classes"]
    ds = load_dataset(data, data_root)

    def probs_on(split_name: str) -> tuple[np.ndarray, np.ndarray]:
        sub = ds.split(split_name)
        y = _labels_for(ds.classes, classes, sub.labels.numpy(), f"{data}/{split_name}")
        p = np.stack([predict_probs(m, sub.images, Preprocessing.from_dict(meta["preprocessing"]), batch_size,
                                    temperature=temperature_of(meta), logit_bias=logit_bias_of(meta))
                      for m, meta in zip(models, metas, strict=True)])
        return p, y

    chosen = list(range(len(models)))
    history: list[float] = []
    if select == "greedy":
        vs = val_split or (metas[0].get("protocol") or {}).get("data", {}).get("val_split") or "val"
        if vs == split:
            raise FerbenchError(f"--select greedy chooses members on the validation split; it must differ from "
                                f"--split {split}")
        pv, yv = probs_on(vs)
        chosen, history = greedy_select(pv, yv, rule)
    p, y = probs_on(split)
    members = [{"ref": str(r), "architecture": meta["architecture"]["name"],
                "accuracy": float((p[i].argmax(1) == y).mean())} for i, (r, meta) in enumerate(zip(refs, metas,
                                                                                                    strict=True))]
    best = max(members, key=lambda m: m["accuracy"])
    metrics = compute_metrics(y, combine(p[chosen], rule), classes)
    out = {"dataset": data, "split": split, "rule": rule, "select": select, "members": members,
           "best_single": best, "selected": [str(refs[i]) for i in chosen], "greedy_val_accuracy": history,
           "ensemble": metrics}
    if save:
        save_ensemble(save, [refs[i] for i in chosen], rule,
                      extra={"metrics": {f"{split}_accuracy": metrics["accuracy"]}, "dataset": data})
    return out
