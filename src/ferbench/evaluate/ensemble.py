"""Ensembles of trained checkpoints (docs/protocol.md §4.5): sum of probabilities or majority vote.

* :func:`combine` — ``sum`` (argmax of summed softmaxes; seed 002's 70.24 % rule) or ``vote``
  (majority of member argmaxes, ties → lowest class index).
* :func:`greedy_select` — forward selection of members on the validation split.
* :func:`save_ensemble` / :func:`load_ensemble` — an ensemble JSON listing member checkpoints loads
  as one ``nn.Module`` that maps the ensemble's ``[0, 1]`` input through each member's own
  preprocessing, so members may differ in size, channels and normalisation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.data.cache import atomic_write_text
from ferbench.data.preprocess import Preprocessing
from ferbench.errors import DataError, FerbenchError

FORMAT = "ferbench-ensemble/1"
RULES = ("sum", "vote")


def vote_shares(probs: np.ndarray) -> np.ndarray:
    """Majority vote. ``probs``: ``(M, N, C)`` → ``(N, C)`` vote shares; argmax = winner, ties → lowest index."""
    m, n, c = probs.shape
    votes = np.zeros((n, c), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(n)[None], m, 0), probs.argmax(-1)), 1.0)
    return votes / m


def combine(probs: np.ndarray, rule: str = "sum") -> np.ndarray:
    """Combine member probabilities ``(M, N, C)`` → ``(N, C)`` scores summing to 1 per row.

    ``sum``: mean of the softmaxes (same argmax as their sum). ``vote``: vote shares (:func:`vote_shares`).
    """
    if rule not in RULES:
        raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise FerbenchError("an ensemble needs at least one member")
    return probs.mean(0) if rule == "sum" else vote_shares(probs)


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


def ensemble_preprocessing(pres: list[Preprocessing]) -> Preprocessing:
    """Input definition of the ensemble: ``[0, 1]`` (no normalisation), RGB if any member is, at the
    smallest member size — so on data at that native size (FER2013 48 px) every member sees exactly what its
    own preprocessing would give it (each member then resizes with its own interpolation)."""
    return Preprocessing(size=min(p.size for p in pres), channels=max(p.channels for p in pres), mean=[0.0],
                         std=[1.0], interpolation="bilinear", crop_margin=pres[0].crop_margin)


class EnsembleModel(nn.Module):
    """Members behind one forward: ``(B, ch, S, S)`` float in [0, 1] → ``(B, C)`` log ensemble probabilities.

    ``softmax(forward(x))`` is the members' mean probability (``sum``) or their vote shares (``vote``).
    Attribute ``sidecar`` has the checkpoint-sidecar fields predict/serve use (classes, preprocessing).
    """

    def __init__(self, members: list[nn.Module], preprocessings: list[Preprocessing], classes: list[str],
                 rule: str = "sum") -> None:
        super().__init__()
        if rule not in RULES:
            raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
        self.members = nn.ModuleList(members)
        self.preprocessings = list(preprocessings)
        self.classes = list(classes)
        self.rule = rule
        self.preprocessing = ensemble_preprocessing(self.preprocessings)
        self.sidecar: dict[str, Any] = {}

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ch, S, S)`` in [0, 1] → ``(M, B, C)`` member softmaxes (each through its own preprocessing)."""
        return torch.stack([m(pre.from_float(x)).float().softmax(-1)
                            for m, pre in zip(self.members, self.preprocessings, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.member_probs(x)
        if self.rule == "sum":
            return p.mean(0).clamp_min(1e-12).log()
        votes = torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).sum(0).to(p.dtype)
        eps = 1e-3  # finite logs for classes without votes; argmax and ties unchanged
        return ((votes + eps) / (votes.sum(-1, keepdim=True) + eps * p.shape[-1])).log()


def _load_members(refs: list[str | Path]) -> tuple[list[nn.Module], list[dict[str, Any]]]:
    from ferbench.train.checkpoint import load_checkpoint

    if not refs:
        raise FerbenchError("an ensemble needs at least one member checkpoint")
    models, metas = [], []
    for r in refs:
        m, meta = load_checkpoint(r)
        models.append(m)
        metas.append(meta)
    classes = metas[0]["classes"]
    for r, meta in zip(refs, metas, strict=True):
        if meta["classes"] != classes:
            raise FerbenchError(f"{r}: classes {meta['classes']} differ from the first member's {classes}")
    return models, metas


def is_ensemble_file(ref: str | Path) -> bool:
    """True when ``ref`` is an ensemble JSON written by :func:`save_ensemble`."""
    p = Path(ref)
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError):
        return False


def save_ensemble(path: str | Path, members: list[str | Path], rule: str = "sum",
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write an ensemble JSON (members stored relative to its folder when possible); returns it."""
    from ferbench.train.checkpoint import read_sidecar, resolve_checkpoint

    path = Path(path)
    if rule not in RULES:
        raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    metas = [read_sidecar(m) for m in members]
    pres = [Preprocessing.from_dict(m["preprocessing"]) for m in metas]
    ckpts = [resolve_checkpoint(m).resolve() for m in members]
    base = path.parent.resolve()
    rel = [os.path.relpath(c, base) for c in ckpts]
    doc = {"format": FORMAT, "rule": rule, "members": rel, "classes": metas[0]["classes"],
           "preprocessing": ensemble_preprocessing(pres).to_dict(),
           "architecture": {"name": "ensemble", "num_classes": len(metas[0]["classes"]), "method": None,
                            "members": [m["architecture"]["name"] for m in metas]},
           **(extra or {})}
    atomic_write_text(path, json.dumps(doc, indent=2))
    return doc


def load_ensemble(path: str | Path) -> EnsembleModel:
    """Load an ensemble JSON as one model (eval mode); ``model.sidecar`` is the JSON, shaped like a sidecar."""
    p = Path(path)
    if not p.is_file():
        raise FerbenchError(f"{path}: ensemble file not found")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise FerbenchError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if doc.get("format") != FORMAT:
        raise FerbenchError(f"{p}: not a ferbench ensemble file")
    refs = [m if Path(m).is_absolute() else str(p.parent / m) for m in doc["members"]]
    models, metas = _load_members(refs)
    ens = EnsembleModel(models, [Preprocessing.from_dict(m["preprocessing"]) for m in metas],
                        metas[0]["classes"], doc.get("rule", "sum"))
    ens.sidecar = doc
    return ens.eval()


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
    models, metas = _load_members(list(refs))
    classes = metas[0]["classes"]
    ds = load_dataset(data, data_root)

    def probs_on(split_name: str) -> tuple[np.ndarray, np.ndarray]:
        sub = ds.split(split_name)
        y = _labels_for(ds.classes, classes, sub.labels.numpy(), f"{data}/{split_name}")
        p = np.stack([predict_probs(m, sub.images, Preprocessing.from_dict(meta["preprocessing"]), batch_size)
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
