"""What a run trains: data splits, the model (+ init, + method) and its optimiser, from a typed config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.config import RunConfig, TrainConfig
from ferbench.data import FerDataset, load_dataset
from ferbench.errors import ConfigError, FerbenchError
from ferbench.methods import Method
from ferbench.train.precision import fused_ok


@dataclass
class Splits:
    train: FerDataset
    val: FerDataset
    test: FerDataset | None
    full: FerDataset


def dataset_name(cfg: RunConfig | dict[str, Any]) -> str:
    """``data.name`` as one string (a union as ``"a+b"``)."""
    name = cfg.data.name if isinstance(cfg, RunConfig) else cfg["data"]["name"]
    return "+".join(name) if isinstance(name, list) else name


def is_union(cfg: RunConfig | dict[str, Any]) -> bool:
    """Whether the run trains on a union of datasets (``data.name`` ``"a+b"`` or a list)."""
    from ferbench.data.registry import parse_dataset_names

    name = cfg.data.name if isinstance(cfg, RunConfig) else cfg["data"]["name"]
    return len(parse_dataset_names("+".join(name) if isinstance(name, list) else name)) > 1


def split_names(cfg: RunConfig) -> tuple[str, str, str | None]:
    """The (train, val, test) split names the run uses: the config's, or the roles for a union."""
    if is_union(cfg):
        return "train", "val", "test" if cfg.data.test_split else None
    return cfg.data.train_split, cfg.data.val_split, cfg.data.test_split


def read_soft_label_file(path: str | Path, ds: FerDataset) -> torch.Tensor:
    """Label distributions ``(N, K)`` float32 from a ``ferbench distill-targets`` file, checked against ``ds``.

    The file (safetensors ``probs`` + JSON sidecar) must be of the same dataset: same name, ``N`` rows in
    the dataset's order and its classes in its order; anything else is a one-line ConfigError.
    """
    from safetensors.torch import load_file

    p = Path(path)
    side_p = p.with_suffix(".json")
    if not p.is_file() or not side_p.is_file():
        raise ConfigError(f"data.soft_label_file: {p} (and its .json sidecar) not found; make it with "
                          "ferbench distill-targets")
    try:
        side = json.loads(side_p.read_text())
        probs = load_file(str(p))["probs"].float()
    except Exception as e:  # safetensors / json raise their own types
        raise ConfigError(f"data.soft_label_file: {p} is not a distill-targets file ({str(e)[:120]})") from None
    if side.get("dataset") != ds.name or side.get("classes") != list(ds.classes) or tuple(probs.shape) != (
            len(ds), len(ds.classes)):
        raise ConfigError(f"data.soft_label_file: {p} holds {side.get('dataset')} {tuple(probs.shape)} "
                          f"{side.get('classes')}, the run's data is {ds.name} ({len(ds)}, {len(ds.classes)}) "
                          f"{list(ds.classes)}")
    return probs


def prepare_data(cfg: RunConfig) -> Splits:
    """Load the dataset and cut train/val/test (by split name, or by explicit ``data.indices``)."""
    from ferbench.data.registry import soft_labels_for

    d = cfg.data
    kwargs: dict[str, Any] = {"sampling_weights": d.sampling_weights} if d.sampling_weights else {}
    if d.soft_labels and is_union(cfg):
        kwargs["soft_labels"] = True
    ds = load_dataset(dataset_name(cfg), d.root, **kwargs)
    if d.soft_label_file:
        ds.soft_labels = read_soft_label_file(d.soft_label_file, ds)
    elif d.soft_labels and ds.soft_labels is None:
        try:
            ds.soft_labels = soft_labels_for(ds, d.root)
        except FerbenchError as e:
            raise ConfigError(f"data.soft_labels: {e}") from None
    if d.indices:
        ix = d.indices
        if "train" not in ix or "val" not in ix:
            raise ConfigError("data.indices needs 'train' and 'val' lists")
        train, val = ds.subset(ix["train"]), ds.subset(ix["val"])
        test = ds.subset(ix["test"]) if ix.get("test") else None
    else:
        tr, va, te = split_names(cfg)
        train, val = ds.split(tr), ds.split(va)
        test = ds.split(te) if te else None
    if d.limit:
        train = train.subset(np.arange(min(d.limit, len(train))))
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"{ds.name}: the {'training' if len(train) == 0 else 'validation'} split is empty")
    return Splits(train, val, test, ds)


def fill_model_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill ``preprocessing.size/channels`` left unset from the model's registration (in place; returned)."""
    from ferbench.models import model_info

    info = model_info(cfg["model"]["name"])
    pre = cfg["preprocessing"]
    if pre.get("size") is None:
        pre["size"] = info.input_size
    if pre.get("channels") is None:
        pre["channels"] = info.in_chans
    return cfg


def fill_split_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """Translate split names that belong to another dataset into this dataset's split of the same role (in place).

    The config defaults (and the seed-000 protocols) name FER2013's splits (``Training`` / ``PublicTest`` /
    ``PrivateTest``); with ``data.name: ckplus`` those become CK+48's ``train`` / ``val`` / ``test``. Only names
    that some registered dataset uses for that role are translated; a name this dataset has, ``all``, unions
    and unknown names are left alone (an unknown one fails later with the dataset's list of splits).
    """
    from ferbench.data.registry import ROLES, get_spec, list_datasets, parse_dataset_names

    d = cfg["data"]
    names = parse_dataset_names(dataset_name(cfg))
    if len(names) != 1:
        return cfg
    spec = get_spec(names[0])
    own = set(spec.splits.values())
    for role in ROLES:
        v = d.get(f"{role}_split")
        if v is None or v in own or v == "all" or role not in spec.splits:
            continue
        if any(other.splits.get(role) == v for other in list_datasets()):
            d[f"{role}_split"] = spec.splits[role]
    return cfg


def build_for_training(cfg: RunConfig, classes: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Create the model (+ init, + method wrapper) and the sidecar ``architecture`` dict.

    Input size and channels are the config's preprocessing (filled from the registry by
    :func:`fill_model_defaults`); they are stored once, in the sidecar's ``preprocessing``.
    """
    from ferbench.models import create_model, model_info

    m, pre = cfg.model, cfg.preprocessing
    kwargs = dict(m.kwargs)
    if m.head:
        kwargs["head"] = m.head
    model = create_model(m.name, num_classes=len(classes), in_chans=pre.channels, input_size=pre.size, **kwargs)
    if m.init != "scratch":
        from ferbench.models.init import apply_init

        apply_init(model, m.init, name=m.name, num_classes=len(classes), classes=classes)
    meth = cfg.method.model_dump()
    if not meth.get("name") and model_info(m.name).default_method:
        meth = {"name": model_info(m.name).default_method}
    arch: dict[str, Any] = {"name": m.name, "num_classes": len(classes), "kwargs": kwargs, "method": None}
    if meth.get("name"):
        from ferbench.methods import build_method

        opts = {k: v for k, v in meth.items() if k != "name"}
        model = build_method(meth["name"], model, num_classes=len(classes), **opts)
        arch["method"] = dict(meth)
    return model, arch


def make_optimizer(method: Method, t: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """The configured optimiser over the method's trainable parameter groups."""
    groups = [dict(g) for g in method.param_groups(lr)]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: every parameter is frozen (check model.policy)")
    fused = fused_ok(groups) if t.fused_optimizer else None
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, eps=t.eps, weight_decay=t.weight_decay, fused=fused)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, eps=t.eps, weight_decay=t.weight_decay, fused=fused)
    return torch.optim.SGD(groups, lr=lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay,
                           fused=fused)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name} requested but no CUDA device is available")
    return dev
