"""Evaluate a checkpoint on any dataset split, across taxonomies (shared canonical classes only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferbench.data import FerDataset, load_dataset
from ferbench.data.taxonomy import class_mapping
from ferbench.errors import FerbenchError
from ferbench.evaluate.metrics import compute_metrics
from ferbench.evaluate.predict import predict_probs
from ferbench.persist.checkpoint import logit_bias_of, temperature_of


def shared_classes(ds: FerDataset, model_classes: list[str], name: str = "dataset"
                   ) -> tuple[FerDataset, np.ndarray, list[int], list[str]]:
    """The samples of ``ds`` whose class the model predicts too (by canonical name).

    Returns ``(subset, y, cols, shared)``: ``y`` ``(n,)`` int64 labels indexing ``shared`` (the shared classes in
    the dataset's order), ``cols`` the model's output column of each shared class (for :func:`restrict`).
    """
    shared = [c for c in ds.classes if c in model_classes]
    if not shared:
        raise FerbenchError(f"{name}: no class in common with the model ({', '.join(model_classes)})")
    ds_to_shared = class_mapping(ds.classes, shared)
    sub = ds.subset(np.flatnonzero(np.isin(ds.labels.numpy(), list(ds_to_shared))))
    y = np.array([ds_to_shared[int(v)] for v in sub.labels.numpy()], dtype=np.int64)
    return sub, y, [model_classes.index(c) for c in shared], shared


def restrict(probs: np.ndarray, cols: list[int]) -> np.ndarray:
    """Model probabilities ``(n, K)`` → the shared classes' columns ``(n, len(cols))``, renormalised per row."""
    p = probs[:, cols]
    return p / np.clip(p.sum(1, keepdims=True), 1e-12, None)


def checkpoint_probs(model: Any, meta: dict[str, Any], ds: FerDataset, name: str = "dataset",
                     batch_size: int = 512, tta_hflip: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, FerDataset, list[str]]:
    """Calibrated probabilities of a loaded checkpoint on the faces of ``ds`` whose class it predicts.

    The sidecar's temperature and prior correction apply; the probabilities are restricted to the shared classes
    and renormalised. Returns ``(probs (n, S), y (n,), subset, shared)`` as :func:`shared_classes` defines them.
    """
    from ferbench.loader import preprocessing_of

    sub, y, cols, shared = shared_classes(ds, list(meta["classes"]), name)
    probs = predict_probs(model, sub.images, preprocessing_of(meta), batch_size, tta_hflip, temperature_of(meta),
                          logit_bias_of(meta))
    return restrict(probs, cols), y, sub, shared


def evaluate_checkpoint(ref: str | Path, data: str, split: str, data_root: str | Path | None = None,
                        batch_size: int = 512, tta_hflip: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Metrics of checkpoint ``ref`` on ``data``/``split``.

    When the dataset's classes differ from the model's, only the shared canonical classes are scored:
    samples of other classes are dropped and the model's probabilities are restricted to the shared
    classes and renormalised. The result lists ``dropped_classes`` (dataset classes the model lacks) and
    ``ignored_model_classes``. ``device``: ``auto`` | ``cpu`` | ``cuda`` (see :mod:`ferbench.device`).
    """
    from ferbench.device import resolve_device
    from ferbench.loader import load_checkpoint

    model, meta = load_checkpoint(ref)
    model = model.to(resolve_device(device))
    ds = load_dataset(data, data_root).split(split)
    model_classes: list[str] = meta["classes"]
    p, y, sub, shared = checkpoint_probs(model, meta, ds, data, batch_size, tta_hflip)
    out = compute_metrics(y, p, shared)
    out.update({
        "dataset": data, "split": split, "checkpoint": str(ref), "model": meta["architecture"]["name"],
        "trained_on": meta.get("dataset"), "tta_hflip": tta_hflip,
        "temperature": temperature_of(meta), "prior_tau": float((meta.get("calibration") or {}).get("prior_tau") or 0.0),
        "dropped_classes": [c for c in ds.classes if c not in shared],
        "dropped_samples": int(len(ds) - len(sub)),
        "ignored_model_classes": [c for c in model_classes if c not in shared],
    })
    return out
