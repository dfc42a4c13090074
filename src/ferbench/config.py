"""Configs: YAML files with ``extends:`` inheritance, ``--set key=value`` overrides and a stable hash.

Every key has a default here, so a config file only states what differs from the defaults
(which are the seed-000 protocol, protocol.md §1.3–1.8).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from ferbench.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "deterministic": True,
    "data": {
        "name": "fer2013",
        "root": None,
        "train_split": "Training",
        "val_split": "PublicTest",
        "test_split": "PrivateTest",
        "soft_labels": False,   # train on label distributions (FER+ votes) instead of one-hot labels
        "indices": None,        # {train: [...], val: [...], test: [...]} positions; overrides split names
        "limit": None,          # use at most this many training images (smoke tests)
    },
    "model": {"name": "shallow_cnn_s002", "head": None, "kwargs": {}, "init": "scratch", "policy": "full"},
    "method": {"name": None},
    "preprocessing": {"size": 48, "channels": 1, "mean": [0.0], "std": [1.0], "interpolation": "nearest",
                      "crop_margin": 0.1},
    "train": {
        "epochs": 100,
        "batch_size": 64,
        "optimizer": "adam",            # adam | adamw | sgd
        "lr": 1.0e-4,
        "eps": 1.0e-7,                  # Keras Adam epsilon
        "weight_decay": 0.0,
        "momentum": 0.9,
        "nesterov": False,
        "scheduler": "plateau",         # plateau | cosine | onecycle | step | none
        "plateau": {"factor": 0.5, "patience": 10, "min_lr": 1.0e-10},
        "step": {"step_size": 10, "gamma": 0.5},
        "warmup_epochs": 0,
        "early_stopping": 20,           # patience on val_loss in epochs; 0 = off
        "class_weights": "none",        # none | simple | conservative
        "label_smoothing": 0.0,
        "sampler": "shuffle",           # shuffle | balanced
        "augment": "keras",             # keras | light | strong | none
        "augment_overrides": {},
        "mixup": 0.0,                   # Beta(a, a) mixup alpha; 0 = off
        "ema": 0.0,                     # EMA decay of weights used for eval/checkpoints (timm warm-up); 0 = off
        "drop_last": True,
        "channels_last": True,
        "compile": False,
        "threads": None,
        "device": "auto",               # auto (a CUDA GPU when present) | cpu | cuda | cuda:N; not in the hash
        "time_limit_min": None,         # stop (after a finished epoch) before exceeding this wall time
        "phase1_epochs": 30,            # two-phase policy: frozen-backbone epochs
        "phase2_lr": 1.0e-4,            # two-phase policy: LR after unfreezing (fresh optimiser)
    },
    "eval": {"tta_hflip": False, "batch_size": 512},
}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins. Neither input is modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and v:
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _find_config(ref: str, relative_to: Path | None) -> Path:
    cands = [Path(ref)]
    if relative_to is not None:
        cands.append(relative_to / ref)
    here = Path(__file__).resolve()
    cands += [Path("configs") / ref, here.parents[2] / "configs" / ref, here.parent / "configs" / ref]
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"config {ref!r} not found")


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")


def _numbers(node: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; every user means the number."""
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    if isinstance(node, str) and _FLOAT.match(node.strip()):
        return float(node)
    return node


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = _numbers(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(ref: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Resolve a config: defaults ← ``extends`` chain ← file ← ``key=value`` overrides.

    Args:
        ref: a YAML path (also looked up under ``configs/``) or an already-parsed dict.
        overrides: ``["train.lr=1e-3", "model.name=resnet18"]``; values are parsed as YAML.
    """
    if isinstance(ref, dict):
        layer = copy.deepcopy(ref)
        parent_dir = None
    else:
        path = _find_config(str(ref), None)
        layer = read_yaml(path)
        parent_dir = path.parent
    chain = [layer]
    while "extends" in chain[-1]:
        parent = _find_config(chain[-1].pop("extends"), parent_dir)
        parent_dir = parent.parent
        chain.append(read_yaml(parent))
    cfg = copy.deepcopy(DEFAULTS)
    for layer in reversed(chain):
        _check_keys(layer, DEFAULTS)
        cfg = deep_merge(cfg, layer)
    for item in overrides:
        set_key(cfg, item)
    return cfg


_FREE_KEYS = {"kwargs", "augment_overrides", "method", "indices"}


def _check_keys(layer: dict[str, Any], ref: dict[str, Any], prefix: str = "") -> None:
    for k, v in layer.items():
        if k not in ref:
            raise ConfigError(f"unknown config key {prefix}{k!r}")
        if isinstance(v, dict) and isinstance(ref[k], dict) and k not in _FREE_KEYS:
            _check_keys(v, ref[k], f"{prefix}{k}.")


def set_key(cfg: dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` override in place (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if not isinstance(node.get(p), dict):
            if p in node and node[p] is not None:
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is not a section")
            node[p] = {}
        node = node[p]
    free = any(p in _FREE_KEYS for p in parts[:-1])
    if parts[-1] not in node and not free:
        raise ConfigError(f"--set {key}: unknown config key")
    try:
        node[parts[-1]] = _numbers(yaml.safe_load(raw))
    except yaml.YAMLError:
        node[parts[-1]] = raw


def config_hash(cfg: dict[str, Any]) -> str:
    """Stable 12-hex hash of a resolved config (keys sorted); ``train.device`` (where it runs) is left out."""
    if isinstance(cfg.get("train"), dict) and "device" in cfg["train"]:
        cfg = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "device"}}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def dump_yaml(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
