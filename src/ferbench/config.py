"""Configs: YAML files with ``extends:`` inheritance, ``--set key=value`` overrides and a stable hash.

The schema is :class:`RunConfig` (pydantic): every key has a type, a range and a default (the seed-000 protocol,
docs/protocol.md §1), and a resolved config is validated once, at load, so a bad value is a one-line
:class:`~ferbench.errors.ConfigError` naming the key before anything is trained. Configs shipped with ferbench
live in the package (``ferbench/configs/``) and are found by name from any folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ferbench.errors import ConfigError

Positive = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class DataConfig(_Section):
    name: str | list[str] = "fer2013"    # a dataset, "a+b" or a list: a union in one taxonomy
    root: str | None = None
    train_split: str = "Training"
    val_split: str = "PublicTest"
    test_split: str | None = "PrivateTest"
    soft_labels: bool = False             # train on label distributions (FER+ votes) instead of one-hot labels
    soft_label_file: str | None = None    # label distributions from a file (ferbench distill-targets): distillation
    soft_mix: Annotated[float, Field(ge=0, le=1)] = 1.0  # target = soft_mix · distribution + (1 − soft_mix) · one-hot
    indices: dict[str, list[int]] | None = None  # {train: [...], val: [...], test: [...]}; overrides split names
    limit: Positive | None = None         # use at most this many training images (smoke tests)
    sampling_weights: dict[str, Annotated[float, Field(gt=0)]] | None = None  # per source dataset of a union


class ModelConfig(_Section):
    name: str = "shallow_cnn_s002"
    head: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init: str = "scratch"                 # scratch | imagenet | file:PATH | run:RUN_DIR
    policy: Literal["full", "head-only", "two-phase", "last-stage"] = "full"


class MethodConfig(BaseModel):
    """``name`` plus the method's own options (checked by the method's builder)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None


class PreprocessingConfig(_Section):
    size: Annotated[int, Field(ge=8, le=1024)] | None = None   # None: the model's registered input size
    channels: Literal[1, 3] | None = None                       # None: the model's registered channels
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [1.0])
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    crop_margin: Annotated[float, Field(ge=0, le=2)] = 0.1
    crop_shift: Annotated[float, Field(ge=-1, le=1)] = -0.1  # measured by benchmarks/pipeline.py (blazeface)


class PlateauConfig(_Section):
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    patience: Annotated[int, Field(ge=0)] = 10
    min_lr: Annotated[float, Field(ge=0)] = 1.0e-10


class StepConfig(_Section):
    step_size: Positive = 10
    gamma: Annotated[float, Field(gt=0)] = 0.5


class TrainConfig(_Section):
    epochs: Positive = 100
    batch_size: Positive = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0)] = 1.0e-4
    eps: Annotated[float, Field(gt=0)] = 1.0e-7      # Keras Adam epsilon
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    scheduler: Literal["plateau", "cosine", "onecycle", "step", "none"] = "plateau"
    plateau: PlateauConfig = Field(default_factory=PlateauConfig)
    step: StepConfig = Field(default_factory=StepConfig)
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    early_stopping: Annotated[int, Field(ge=0)] = 20  # patience on val_loss in epochs; 0 = off
    class_weights: Literal["none", "simple", "conservative"] = "none"
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    logit_adjust: Annotated[float, Field(ge=0)] = 0.0  # tau of logit-adjusted loss (log class priors); 0 = off
    sampler: Literal["shuffle", "balanced", "weighted"] = "shuffle"
    augment: Literal["keras", "light", "strong", "wild", "none"] = "keras"
    augment_overrides: dict[str, Any] = Field(default_factory=dict)
    mixup: Annotated[float, Field(ge=0)] = 0.0    # Beta(a, a) mixup alpha; 0 = off
    cutmix: Annotated[float, Field(ge=0)] = 0.0   # Beta(a, a) cutmix alpha; 0 = off (with mixup: one of the two)
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.0  # EMA decay of weights used for eval/checkpoints; 0 = off
    drop_last: bool = True
    precision: Literal["auto", "fp32", "bf16"] = "auto"   # auto: bf16 autocast where the CPU has bf16 units
    channels_last: bool | Literal["auto"] = "auto"
    # torch's fused CPU Adam/AdamW/SGD kernel: 4.6x faster step on 11 M params (benchmarks/results/bf16_cpu.md),
    # but a resumed run then drifts from an uninterrupted one, so it is opt-in
    fused_optimizer: bool = False
    compile: bool = False
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    threads: Positive | None = None
    time_limit_min: Annotated[float, Field(gt=0)] | None = None  # stop (after an epoch) before this wall time
    phase1_epochs: Positive = 30          # two-phase policy: frozen-backbone epochs
    phase2_lr: Annotated[float, Field(gt=0)] = 1.0e-4   # two-phase policy: LR after unfreezing


class CrossEvalConfig(_Section):
    data: str                             # a dataset name (fer2013, ferplus, ckplus, folder:PATH)
    split: str = "test"
    root: str | None = None               # its data root when not the run's own (data.root, then the usual search)


class EvalConfig(_Section):
    tta_hflip: bool = False
    batch_size: Positive = 512
    calibrate: bool = False               # fit a temperature on the validation split, store it in the sidecar
    # prior correction fitted with the temperature (evaluate/calibration.py): "auto" (its rule), a number, or none
    prior_tau: Annotated[float, Field(ge=0, le=2)] | Literal["auto"] | None = None
    # other datasets the best checkpoint is scored on after training, beside the test split (shared classes
    # only, as `ferbench evaluate`): eval_<data>_<split>.json, a line in the log, rows in the run report
    cross: list[CrossEvalConfig] = Field(default_factory=list)


class RunConfig(_Section):
    """One training run. Every key has a default (the seed-000 protocol, docs/protocol.md §1), so a config file
    only states what differs."""

    name: str = "run"
    seed: Annotated[int, Field(ge=0)] = 0
    deterministic: bool = True
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def _fmt_error(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    if err["type"] == "extra_forbidden":
        return f"{where}unknown config key {loc!r}"
    more = f"; {len(e.errors()) - 1} more problem(s)" if len(e.errors()) > 1 else ""
    return f"{where}config {loc}: {err['msg']}{shown}{more}"


def validate_config(cfg: dict[str, Any], where: str = "") -> RunConfig:
    """Validate a merged config dict → :class:`RunConfig`; one-line :class:`ConfigError` on the first problem."""
    try:
        return RunConfig.model_validate(cfg)
    except ValidationError as e:
        raise ConfigError(_fmt_error(e, f"{where}: " if where else "")) from None


DEFAULTS: dict[str, Any] = RunConfig().model_dump()


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins. Neither input is modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and v:
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"


def find_config(ref: str, relative_to: Path | None = None) -> Path:
    """Locate a config: a path, then relative to the including file, then a shipped config by name.

    Shipped configs (``ferbench/configs/``) are found from any folder as ``quickstart``, ``quickstart.yaml``,
    ``recipes/default.yaml`` or ``configs/recipes/default.yaml``.
    """
    names = [ref] if ref.endswith((".yaml", ".yml")) else [ref, f"{ref}.yaml"]
    cands: list[Path] = []
    for n in names:
        cands.append(Path(n))
        if relative_to is not None:
            cands.append(relative_to / n)
        rel = n[len("configs/"):] if n.startswith("configs/") else n
        cands.append(PACKAGE_CONFIGS / rel)
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"config {ref!r} not found (a YAML path, or a shipped config such as 'quickstart'; "
                      "`ferbench configs` lists them)")


def list_configs() -> list[str]:
    """Names of the shipped configs, e.g. ``["quickstart", "recipes/default", ...]``."""
    return sorted(str(p.relative_to(PACKAGE_CONFIGS).with_suffix("")) for p in PACKAGE_CONFIGS.rglob("*.yaml"))


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
    """Parse a YAML mapping; one-line :class:`ConfigError` for unreadable, invalid or non-mapping files."""
    try:
        data = _numbers(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def resolve_layers(ref: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Merge a config's ``extends`` chain (parents first) into one dict, without defaults or validation.

    Raises:
        ConfigError: a missing parent, or an ``extends`` cycle (named).
    """
    if isinstance(ref, dict):
        layer = copy.deepcopy(ref)
        parent_dir: Path | None = None
        seen: list[Path] = []
    else:
        path = find_config(str(ref), None)
        layer = read_yaml(path)
        parent_dir = path.parent
        seen = [path.resolve()]
    chain = [layer]
    while "extends" in chain[-1]:
        ext = chain[-1].pop("extends")
        if not isinstance(ext, str):
            raise ConfigError(f"{seen[-1] if seen else 'config'}: 'extends' must be a config name or path")
        parent = find_config(ext, parent_dir)
        if parent.resolve() in seen:
            cycle = " -> ".join(p.name for p in [*seen, parent.resolve()])
            raise ConfigError(f"config 'extends' forms a cycle: {cycle}")
        seen.append(parent.resolve())
        parent_dir = parent.parent
        chain.append(read_yaml(parent))
    out: dict[str, Any] = {}
    for layer in reversed(chain):
        out = deep_merge(out, layer)
    return out


def load_config(ref: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Resolve a config: defaults ← ``extends`` chain ← file ← ``key=value`` overrides, then validate.

    Args:
        ref: a YAML path, a shipped config name (``quickstart``), or an already-parsed dict.
        overrides: ``["train.lr=1e-3", "model.name=resnet18"]``; values are parsed as YAML.

    Returns:
        the validated config as a plain dict (JSON/YAML-able; its hash names run folders).

    Raises:
        ConfigError: one line naming the file/key and the problem.
    """
    where = "" if isinstance(ref, dict) else str(ref)
    cfg = deep_merge(DEFAULTS, resolve_layers(ref))
    for item in overrides:
        set_key(cfg, item)
    return validate_config(cfg, where).model_dump()


def typed(cfg: dict[str, Any]) -> RunConfig:
    """A resolved config dict as a :class:`RunConfig` (attribute access: ``cfg.train.lr``)."""
    return validate_config(cfg)


_FREE_KEYS = {"kwargs", "augment_overrides", "method", "indices", "sampling_weights"}


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
    """Stable 12-hex hash of a resolved config (keys sorted). How a run executes is not part of it:
    ``train.device`` is left out (``--device cpu`` and ``--device cuda`` name the same run and the same sweep
    trial), and ``train.fused_optimizer`` hashes as its default ``False`` (the fused kernel computes the same
    update to ~1 ulp), so switching it on keeps run names and sweep keys — and the trials already finished.
    ``eval.cross`` (which other datasets are scored after training) is left out too: it changes no weight."""
    if isinstance(cfg.get("eval"), dict) and "cross" in cfg["eval"]:
        cfg = {**cfg, "eval": {k: v for k, v in cfg["eval"].items() if k != "cross"}}
    if isinstance(cfg.get("train"), dict) and ("device" in cfg["train"] or cfg["train"].get("fused_optimizer")):
        train = {k: v for k, v in cfg["train"].items() if k != "device"}
        if "fused_optimizer" in train:
            train["fused_optimizer"] = False
        cfg = {**cfg, "train": train}
    for (section, key), default in _LATE_KEYS.items():  # added after trial keys were in use: hashed only when set
        part = cfg.get(section)
        if isinstance(part, dict) and key in part and part[key] == default:
            cfg = {**cfg, section: {k: v for k, v in part.items() if k != key}}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


# config keys added after runs and sweep trials were keyed by config_hash, with their defaults: a config at the
# default hashes as before the key existed, so finished runs and imported trials keep their keys
_LATE_KEYS: dict[tuple[str, str], Any] = {("data", "soft_label_file"): None, ("data", "soft_mix"): 1.0,
                                          ("eval", "prior_tau"): None}


def dump_yaml(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
