"""Offline knowledge distillation: an ensemble's label distributions for every image of a dataset.

``teacher_targets`` runs each teacher checkpoint over all ``N`` images of a dataset (every split, in the
dataset's order) through its own sidecar preprocessing, keeps the dataset's classes (a teacher's extra
classes, e.g. FER+'s contempt on FER2013, are dropped and the rest renormalised) and averages the teachers'
probabilities. ``save_targets`` writes them as a safetensors file (``probs``, float32 ``(N, K)``) plus a JSON
sidecar; a run trains on them with ``data.soft_label_file: PATH`` (and ``data.soft_mix`` for the share of
the one-hot label), read back by ``ferbench.train.build.read_soft_label_file``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferbench.data import load_dataset
from ferbench.errors import FerbenchError
from ferbench.evaluate.predict import predict_probs
from ferbench.loader import load_checkpoint, preprocessing_of
from ferbench.persist.atomic import atomic_write_text
from ferbench.persist.checkpoint import file_digest, read_sidecar, resolve_checkpoint, save_tensors

FORMAT = "ferbench-soft-targets/1"


def teacher_targets(refs: Sequence[str | Path], data: str, data_root: str | Path | None = None,
                    temperature: float = 1.0, tta_hflip: bool = True,
                    log: Callable[[str], None] = print) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean teacher probabilities over ``data``'s images → float32 ``(N, K)`` in the dataset's class order, and
    the sidecar dict (dataset, classes, teachers with their file digests, per-split agreement with the labels).

    Raises:
        FerbenchError: no teacher, a teacher lacking one of the dataset's classes, or ``temperature`` ≤ 0.
    """
    if not refs:
        raise FerbenchError("distill-targets: give at least one teacher checkpoint")
    if temperature <= 0:
        raise FerbenchError(f"distill-targets: temperature must be > 0, got {temperature}")
    paths = [resolve_checkpoint(ref) for ref in refs]  # every teacher is checked before any of them runs
    ds = load_dataset(data, data_root)
    classes = list(ds.classes)
    for ref, path in zip(refs, paths, strict=True):
        missing = [c for c in classes if c not in read_sidecar(path)["classes"]]
        if missing:
            raise FerbenchError(f"distill-targets: teacher {ref} has no {', '.join(missing)} class of {ds.name}")
    total = np.zeros((len(ds), len(classes)), np.float64)
    teachers = []
    for ref, path in zip(refs, paths, strict=True):
        model, meta = load_checkpoint(path)
        own = list(meta["classes"])
        p = predict_probs(model, ds.images, preprocessing_of(meta), tta_hflip=tta_hflip, temperature=temperature)
        q = p[:, [own.index(c) for c in classes]].astype(np.float64)
        total += q / np.maximum(q.sum(1, keepdims=True), 1e-12)
        agree = float((q.argmax(1) == ds.labels.numpy()).mean())
        log(f"teacher {ref}: {(meta.get('architecture') or {}).get('name')}, agrees with the labels on "
            f"{100 * agree:.2f} % of {len(ds)} images")
        teachers.append({"ref": str(ref), "digest": file_digest(path),
                         "architecture": (meta.get("architecture") or {}).get("name"), "agreement": agree})
    probs = torch.from_numpy((total / len(refs)).astype(np.float32))
    pred, y = probs.argmax(1).numpy(), ds.labels.numpy()
    splits = np.asarray(ds.splits)
    side = {"format": FORMAT, "dataset": ds.name, "classes": classes, "n": len(ds), "temperature": temperature,
            "tta_hflip": tta_hflip, "teachers": teachers,
            "agreement_by_split": {s: float((pred[splits == s] == y[splits == s]).mean()) for s in ds.split_names}}
    return probs, side


def targets_path(path: str | Path) -> Path:
    """``path`` as a targets file name; a one-line :class:`FerbenchError` unless it ends in ``.safetensors``."""
    p = Path(path)
    if p.suffix != ".safetensors":
        raise FerbenchError(f"distill-targets: --out must end in .safetensors, got {p.name}")
    return p


def save_targets(path: str | Path, probs: torch.Tensor, side: dict[str, Any]) -> Path:
    """Write ``probs`` ``(N, K)`` to ``path`` (safetensors, atomic) and ``side`` beside it as ``.json``."""
    p = targets_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(p, {"probs": probs.float()})
    atomic_write_text(p.with_suffix(".json"), json.dumps(side, indent=1))
    return p
