"""The loader: checkpoint files → ready models (single checkpoints, ensembles, shipped weights).

It sits above :mod:`ferbench.models` and :mod:`ferbench.methods` (it rebuilds both from a sidecar) and below
everything that uses a trained model (evaluate, train's final evaluation, deploy, explain). The file format
itself is :mod:`ferbench.persist.checkpoint`, which has no model code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError
from ferbench.models.ensemble import RULES, EnsembleModel, ensemble_preprocessing, shared_member_classes
from ferbench.persist.atomic import atomic_write_text
from ferbench.persist.checkpoint import (
    FORMAT,
    logit_bias_of,
    read_sidecar,
    read_weights,
    resolve_checkpoint,
    shipped_models,
    temperature_of,
    write_checkpoint,
)

ENSEMBLE_FORMAT = "ferbench-ensemble/1"

__all__ = ["ENSEMBLE_FORMAT", "FORMAT", "build_model", "is_ensemble_file", "load_checkpoint", "load_ensemble",
           "load_members", "preprocessing_of", "read_sidecar", "resolve_checkpoint", "save_checkpoint",
           "save_ensemble", "shipped_models"]


def build_model(arch: dict[str, Any], preprocessing: dict[str, Any] | Preprocessing | None = None) -> nn.Module:
    """Rebuild a model (and its method wrapper, if any) from a sidecar's ``architecture`` + ``preprocessing``.

    Input size and channels come from the preprocessing (the one input definition of a checkpoint); without
    one, from a format-1 ``architecture`` (``input_size``/``in_chans``) or the model's registered defaults.
    """
    from ferbench.models import create_model

    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing.from_dict(preprocessing)
    size = preprocessing.size if preprocessing is not None else arch.get("input_size")
    chans = preprocessing.channels if preprocessing is not None else arch.get("in_chans")
    model = create_model(arch["name"], num_classes=arch["num_classes"], in_chans=chans, input_size=size,
                         **arch.get("kwargs", {}))
    method = arch.get("method") or {}
    if not method.get("name"):
        from ferbench.models import model_info

        default = model_info(arch["name"]).default_method
        method = {"name": default} if default else {}
    if method.get("name"):
        from ferbench.methods import build_method

        model = build_method(method["name"], model, num_classes=arch["num_classes"],
                             **{k: v for k, v in method.items() if k != "name"})
    return model


def save_checkpoint(path: Path, model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``model``'s weights and ``meta`` as one checkpoint unit (see :func:`write_checkpoint`)."""
    return write_checkpoint(Path(path), model.state_dict(), meta)


def load_checkpoint(ref: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint: ``(model in eval mode, sidecar dict)``.

    ``ref`` is a shipped model name (``default``), a run directory, a ``.safetensors`` file or its ``.json``
    sidecar, or an ensemble JSON (which loads as one model combining its members).

    Raises:
        FerbenchError: one line when the files are missing, damaged, or the weights do not fit the architecture.
    """
    if is_ensemble_file(ref):
        ens = load_ensemble(ref)
        return ens, ens.sidecar
    p = resolve_checkpoint(ref)
    meta = read_sidecar(p)
    model = build_model(meta["architecture"], meta["preprocessing"])
    state = read_weights(p)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatch: the tensors are another network's
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise FerbenchError(f"{p}: weights do not match {meta['architecture']['name']} ({first})") from None
    if missing or unexpected:
        raise FerbenchError(f"{p}: weights do not match {meta['architecture']['name']} "
                            f"(missing {len(missing)}, unexpected {len(unexpected)} keys)")
    model.eval()
    return model, meta


def preprocessing_of(meta: dict[str, Any]) -> Preprocessing:
    """The :class:`Preprocessing` stored in a sidecar."""
    return Preprocessing.from_dict(meta["preprocessing"])


def load_members(refs: list[str | Path]) -> tuple[list[nn.Module], list[dict[str, Any]], list[str], list[list[int]]]:
    """Load ensemble members → ``(models, sidecars, classes, columns)``.

    The ensemble predicts the classes every member shares (by canonical name, in the first member's order;
    a FER+ member's ``contempt`` is dropped beside a FER2013 member); ``columns[i]`` is member ``i``'s output
    index of each (:func:`ferbench.models.ensemble.shared_member_classes`).

    Raises:
        FerbenchError: no member, a member that does not load, or members without a class in common.
    """
    if not refs:
        raise FerbenchError("an ensemble needs at least one member checkpoint")
    models, metas = [], []
    for r in refs:
        m, meta = load_checkpoint(r)
        models.append(m)
        metas.append(meta)
    classes, columns = shared_member_classes([list(meta["classes"]) for meta in metas])
    if not classes:
        listed = "; ".join(f"{r}: {', '.join(meta['classes'])}" for r, meta in zip(refs, metas, strict=True))
        raise FerbenchError(f"ensemble members share no class ({listed})")
    return models, metas, classes, columns


def is_ensemble_file(ref: str | Path) -> bool:
    """True when ``ref`` is an ensemble JSON written by :func:`save_ensemble`."""
    p = Path(ref)
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == ENSEMBLE_FORMAT
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return False


def save_ensemble(path: str | Path, members: list[str | Path], rule: str = "sum",
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write an ensemble JSON (members stored relative to its folder when possible); returns it."""
    path = Path(path)
    if rule not in RULES:
        raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    metas = [read_sidecar(m) for m in members]
    classes, _ = shared_member_classes([list(m["classes"]) for m in metas])
    if not classes:
        raise FerbenchError("ensemble members share no class")
    pres = [Preprocessing.from_dict(m["preprocessing"]) for m in metas]
    ckpts = [resolve_checkpoint(m).resolve() for m in members]
    base = path.parent.resolve()
    rel = [os.path.relpath(c, base) for c in ckpts]
    doc = {"format": ENSEMBLE_FORMAT, "rule": rule, "members": rel, "classes": classes,
           "preprocessing": ensemble_preprocessing(pres).to_dict(),
           "architecture": {"name": "ensemble", "num_classes": len(classes), "method": None,
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
    if doc.get("format") != ENSEMBLE_FORMAT:
        raise FerbenchError(f"{p}: not a ferbench ensemble file")
    refs = [m if Path(m).is_absolute() else str(p.parent / m) for m in doc["members"]]
    models, metas, classes, columns = load_members(refs)
    ens = EnsembleModel(models, [Preprocessing.from_dict(m["preprocessing"]) for m in metas], classes,
                        doc.get("rule", "sum"), temperatures=[temperature_of(m) for m in metas],
                        biases=[logit_bias_of(m) for m in metas], columns=columns)
    ens.sidecar = doc
    return ens.eval()
