"""Classification metrics (docs/protocol.md §8), computed with scikit-learn, named as the seeds name them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins: ``Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|``."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def _auc(y_true: np.ndarray, probs: np.ndarray, average: str) -> float | None:
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    onehot = (y_true[:, None] == present[None, :]).astype(int)
    try:
        return float(roc_auc_score(onehot, probs[:, present], average=average))
    except ValueError:
        return None


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """All metrics for one evaluation.

    Args:
        y_true: int ``(N,)`` labels in ``0..C-1``.
        probs: float ``(N, C)`` class scores (softmax probabilities).
        classes: ``C`` class names.

    Returns:
        dict with ``n, accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro,
        precision_weighted, recall_weighted, f1_weighted, f1_hm`` (seed 001: harmonic mean of weighted P
        and R), ``auc_weighted`` (seed 001), ``auc_macro`` (seed 003), ``ece``, ``per_class``
        (name → precision/recall/f1/support/auc), ``confusion_matrix`` (rows = true class) and
        ``confusion_matrix_normalized`` (row-normalised).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1)
    labels = np.arange(len(classes))
    out: dict[str, Any] = {"n": int(len(y_true)), "classes": list(classes)}
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        present = np.unique(y_true) if avg == "macro" else labels
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    pw, rw = out["precision_weighted"], out["recall_weighted"]
    out["f1_hm"] = float(2 * pw * rw / (pw + rw)) if pw + rw > 0 else 0.0
    out["auc_weighted"] = _auc(y_true, probs, "weighted")
    out["auc_macro"] = _auc(y_true, probs, "macro")
    out["ece"] = expected_calibration_error(y_true, probs)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per = {}
    for i, c in enumerate(classes):
        auc = None
        if 0 < s[i] < len(y_true):
            auc = float(roc_auc_score((y_true == i).astype(int), probs[:, i]))
        per[c] = {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                  "auc": auc}
    out["per_class"] = per
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    out["confusion_matrix"] = cm.tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["confusion_matrix_normalized"] = np.nan_to_num(cm / cm.sum(1, keepdims=True)).round(6).tolist()
    return out
