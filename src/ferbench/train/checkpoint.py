"""Checkpoints: ``NAME.safetensors`` (tensors only) + ``NAME.json`` sidecar. No pickle anywhere.

The sidecar holds everything needed to rebuild and use the model::

    {"format": "ferbench-checkpoint/1",
     "architecture": {"name": "shallow_cnn_s002", "num_classes": 7, "in_chans": 1, "input_size": 48,
                      "kwargs": {...}, "method": null | {"name": "scn", ...}},
     "classes": ["angry", ...],             # canonical names, index = logit
     "preprocessing": {...},                # ferbench.data.preprocess.Preprocessing
     "protocol": {...},                     # the resolved training config
     "metrics": {...}, "dataset": "fer2013", "epoch": 12}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ferbench.data.cache import atomic_write_text
from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError

FORMAT = "ferbench-checkpoint/1"


def build_model(arch: dict[str, Any]) -> nn.Module:
    """Rebuild a model (and its method wrapper, if any) from a sidecar's ``architecture`` dict."""
    from ferbench.models import create_model

    model = create_model(
        arch["name"], num_classes=arch["num_classes"], in_chans=arch.get("in_chans"),
        input_size=arch.get("input_size"), **arch.get("kwargs", {}),
    )
    method = arch.get("method")
    if method and method.get("name"):
        from ferbench.methods import build_method

        model = build_method(method["name"], model, num_classes=arch["num_classes"],
                             **{k: v for k, v in method.items() if k != "name"})
    return model


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomic safetensors write (contiguous, de-aliased copies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_checkpoint(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) then its ``.json`` sidecar, both atomically."""
    path = Path(path)
    save_safetensors(path, model.state_dict())
    atomic_write_text(path.with_suffix(".json"), json.dumps({"format": FORMAT, **meta}, indent=2))


def resolve_checkpoint(ref: str | Path) -> Path:
    """A run dir, a ``.safetensors`` or a ``.json`` → the ``.safetensors`` path; clear error if absent."""
    p = Path(ref)
    if p.is_dir():
        p = p / "best.safetensors"
    elif p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.exists():
        raise FerbenchError(f"{ref}: no checkpoint found (expected a run dir with best.safetensors, "
                            "or a .safetensors file with its .json sidecar)")
    if not p.with_suffix(".json").exists():
        raise FerbenchError(f"{p}: sidecar {p.with_suffix('.json').name} missing")
    return p


def read_sidecar(ref: str | Path) -> dict[str, Any]:
    p = resolve_checkpoint(ref)
    try:
        meta = json.loads(p.with_suffix(".json").read_text())
    except json.JSONDecodeError as e:
        raise FerbenchError(f"{p.with_suffix('.json')}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if meta.get("format") != FORMAT:
        raise FerbenchError(f"{p.with_suffix('.json')}: not a ferbench checkpoint sidecar")
    return meta


def load_checkpoint(ref: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint: ``(model in eval mode, sidecar dict)``.

    ``ref`` is a run directory, a ``.safetensors`` file or its ``.json`` sidecar — or an ensemble JSON
    (:mod:`ferbench.evaluate.ensemble`), which loads as one model averaging its members.
    """
    from ferbench.evaluate.ensemble import is_ensemble_file, load_ensemble

    if is_ensemble_file(ref):
        ens = load_ensemble(ref)
        return ens, ens.sidecar
    p = resolve_checkpoint(ref)
    meta = read_sidecar(p)
    model = build_model(meta["architecture"])
    try:
        state = load_file(str(p))
    except Exception as e:  # safetensors raises its own error types
        raise FerbenchError(f"{p}: unreadable safetensors file ({e})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FerbenchError(f"{p}: weights do not match {meta['architecture']['name']} "
                            f"(missing {len(missing)}, unexpected {len(unexpected)} keys)")
    model.eval()
    return model, meta


def preprocessing_of(meta: dict[str, Any]) -> Preprocessing:
    """The :class:`Preprocessing` stored in a sidecar."""
    return Preprocessing.from_dict(meta["preprocessing"])
