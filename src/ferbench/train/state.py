"""Resumable training state without pickle: tensors → safetensors, everything else → JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ferbench.data.cache import atomic_write_text
from ferbench.train.checkpoint import save_safetensors


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (``opt.<param>.<key>``) and a JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer` → a dict for ``opt.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(run_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, extra_tensors: dict[str, torch.Tensor],
               meta: dict[str, Any]) -> None:
    """Write ``last-eNNNN.safetensors`` then ``last.json`` naming it.

    The JSON is the commit point of an epoch: a kill before it leaves the previous epoch's pair intact;
    older tensor files are removed only after it.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_t, opt_meta = flatten_optimizer(opt)
    tensors.update(opt_t)
    tensors.update(extra_tensors)
    fname = f"last-e{int(meta['epoch']):04d}.safetensors"
    save_safetensors(run_dir / fname, tensors)
    atomic_write_text(run_dir / "last.json", json.dumps({**meta, "tensors_file": fname, "optimizer": opt_meta},
                                                        indent=1))
    for old in run_dir.glob("last-e*.safetensors"):
        if old.name != fname:
            old.unlink(missing_ok=True)


def load_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(tensors, meta)`` of the last finished epoch, or ``None`` when there is none."""
    if not (run_dir / "last.json").exists():
        return None
    meta = json.loads((run_dir / "last.json").read_text())
    return load_file(str(run_dir / meta["tensors_file"])), meta


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix)}
