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
from ferbench.errors import FerbenchError
from ferbench.evaluate.crossdata import restrict, shared_classes
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


def evaluate_ensemble(refs: list[str | Path], data: str, split: str, rule: str = "sum", select: str | None = None,
                      val_split: str | None = None, data_root: str | Path | None = None,
                      save: str | Path | None = None, batch_size: int = 512, tta_hflip: bool = False) -> dict[str, Any]:
    """Score members and their ensemble on ``data``/``split``; optionally select greedily and save.

    Each member's probabilities are its calibrated ones (the temperature and prior correction of its sidecar,
    as :class:`ferbench.models.ensemble.EnsembleModel` combines them when the saved ensemble is loaded),
    restricted to the classes all members share; ``tta_hflip`` averages each member with the mirrored image. Like :func:`ferbench.evaluate.crossdata.evaluate_checkpoint`,
    only the dataset's classes the ensemble predicts are scored (CK+48's contempt is dropped for FER2013
    members; the metrics' ``dropped_classes`` says so).

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
    models, metas, classes, columns = load_members(list(refs))
    ds = load_dataset(data, data_root)
    shared: list[str] = []
    dropped = [c for c in ds.classes if c not in classes]

    def probs_on(split_name: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal shared
        sub, y, cols, shared = shared_classes(ds.split(split_name), classes, f"{data}/{split_name}")
        p = np.stack([restrict(predict_probs(m, sub.images, Preprocessing.from_dict(meta["preprocessing"]),
                                             batch_size, tta_hflip, temperature=temperature_of(meta),
                                             logit_bias=logit_bias_of(meta)), [own[k] for k in cols])
                      for m, meta, own in zip(models, metas, columns, strict=True)])
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
    metrics = compute_metrics(y, combine(p[chosen], rule), shared)
    metrics["dropped_classes"] = dropped
    out = {"dataset": data, "split": split, "rule": rule, "select": select, "tta_hflip": tta_hflip, "members": members,
           "best_single": best, "selected": [str(refs[i]) for i in chosen], "greedy_val_accuracy": history,
           "ensemble": metrics}
    if save:
        save_ensemble(save, [refs[i] for i in chosen], rule,
                      extra={"metrics": {f"{split}_accuracy": metrics["accuracy"]}, "dataset": data})
    return out
