"""The trainer: one plain loop for every model, protocol and method (read top to bottom).

``train(config) -> run_dir``. Each finished epoch is committed atomically (``last.json``), so a killed
run resumes with ``resume=True`` from the last finished epoch; every epoch seeds its own RNGs from
``(seed, epoch)``, so a resumed deterministic run ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.config import config_hash, dump_yaml, load_config, read_yaml
from ferbench.data import FerDataset, load_dataset
from ferbench.data.cache import atomic_write_text
from ferbench.data.preprocess import Preprocessing
from ferbench.device import machine_info, resolve_device
from ferbench.errors import ConfigError, FerbenchError
from ferbench.evaluate.metrics import compute_metrics
from ferbench.evaluate.predict import predict_probs
from ferbench.progress import EpochProgress as _Progress
from ferbench.train.augment import AugmentConfig, augment_batch
from ferbench.train.checkpoint import save_checkpoint
from ferbench.train.losses import class_weights, weighted_cross_entropy
from ferbench.train.policies import apply_policy, set_train_mode
from ferbench.train.state import load_state, prefixed, save_state, unflatten_optimizer

# Keys that may change between a run and its resumption (budgets, not the experiment itself).
_RESUMABLE_CHANGES = (("train", "epochs"), ("train", "time_limit_min"), ("train", "threads"),
                      ("train", "device"))


@dataclass
class Batch:
    """What a method's ``compute_loss`` sees for one step."""

    x: torch.Tensor                  # (B, C, S, S) float, preprocessed + augmented
    y: torch.Tensor                  # (B,) int64 hard labels
    soft: torch.Tensor | None        # (B, K) float label distributions (soft labels / mixup) or None
    index: torch.Tensor              # (B,) int64 positions in the training subset
    epoch: int
    class_weights: torch.Tensor | None


@dataclass
class Splits:
    train: FerDataset
    val: FerDataset
    test: FerDataset | None
    full: FerDataset


def prepare_data(cfg: dict[str, Any]) -> Splits:
    """Load the dataset and cut train/val/test (by split name, or by explicit ``data.indices``)."""
    d = cfg["data"]
    ds = load_dataset(d["name"], d.get("root"))
    if d.get("soft_labels") and ds.soft_labels is None:
        if ds.name == "fer2013":
            from ferbench.data.fer2013 import fer2013_ferplus_soft_labels

            ds.soft_labels = fer2013_ferplus_soft_labels(ds, d.get("root"))
        else:
            raise ConfigError(f"data.soft_labels: {ds.name} has no label distributions")
    if d.get("indices"):
        ix = d["indices"]
        train, val = ds.subset(ix["train"]), ds.subset(ix["val"])
        test = ds.subset(ix["test"]) if ix.get("test") else None
    else:
        train, val = ds.split(d["train_split"]), ds.split(d["val_split"])
        test = ds.split(d["test_split"]) if d.get("test_split") else None
    if d.get("limit"):
        train = train.subset(np.arange(min(int(d["limit"]), len(train))))
    return Splits(train, val, test, ds)


def build_for_training(cfg: dict[str, Any], classes: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Create the model (+ init, + method wrapper) and the sidecar ``architecture`` dict."""
    from ferbench.models import create_model

    m, pre = cfg["model"], cfg["preprocessing"]
    kwargs = dict(m.get("kwargs") or {})
    if m.get("head"):
        kwargs["head"] = m["head"]
    arch = {"name": m["name"], "num_classes": len(classes), "in_chans": pre["channels"],
            "input_size": pre["size"], "kwargs": kwargs, "method": None}
    model = create_model(m["name"], num_classes=len(classes), in_chans=pre["channels"], input_size=pre["size"],
                         **kwargs)
    init = m.get("init") or "scratch"
    if init != "scratch":
        from ferbench.models.init import apply_init

        apply_init(model, init, name=m["name"], num_classes=len(classes), classes=classes)
    meth = cfg.get("method") or {}
    if meth.get("name"):
        from ferbench.methods import build_method

        opts = {k: v for k, v in meth.items() if k != "name"}
        model = build_method(meth["name"], model, num_classes=len(classes), **opts)
        arch["method"] = dict(meth)
    return model, arch


def make_optimizer(model: nn.Module, t: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    if hasattr(model, "param_groups"):
        groups = model.param_groups(lr)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups = [g for g in groups if any(p.requires_grad for p in g["params"])]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    name = t["optimizer"]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, eps=t["eps"], weight_decay=t["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, eps=t["eps"], weight_decay=t["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=t["momentum"], nesterov=t["nesterov"],
                               weight_decay=t["weight_decay"])
    raise ConfigError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")


def train_batch(images: torch.Tensor, idx: torch.Tensor, pre: Preprocessing, aug: AugmentConfig,
                g: torch.Generator) -> torch.Tensor:
    """The trainer's input path: uint8 ``(N, H, W, C)`` rows ``idx`` → float ``(B, C, H, W)``, augmented
    (batched, on tensors) and normalised by the checkpoint's preprocessing."""
    return pre.from_float(augment_batch(images[idx].permute(0, 3, 1, 2).float().div_(255.0), aug, g))


def steps_in_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Optimiser steps per epoch over ``n_train`` samples.

    ``drop_last`` drops the trailing partial batch (kept when it is the only batch). Without it the partial
    batch is trained on, except a trailing batch of exactly one sample: BatchNorm cannot normalise a single
    sample (``Expected more than 1 value per channel``), so that sample sits out this epoch (the order is
    reshuffled every epoch).
    """
    if drop_last and n_train >= batch_size:
        return n_train // batch_size
    if n_train % batch_size == 1 and n_train > 1:
        return n_train // batch_size
    return math.ceil(n_train / batch_size)


def lr_factor(t: dict[str, Any], step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier on the base LR at ``step`` for the per-step schedules (plateau is handled per epoch)."""
    warm = t["warmup_epochs"] * steps_per_epoch
    if warm and step < warm:
        return (step + 1) / warm
    sched = t["scheduler"]
    if sched == "cosine":
        p = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    if sched == "onecycle":  # linear warm-up 30 % then cosine to 0, as torch's OneCycleLR
        up = int(0.3 * total_steps)
        if step < up:
            return 0.04 + 0.96 * step / max(1, up)
        return 0.5 * (1 + math.cos(math.pi * (step - up) / max(1, total_steps - up)))
    if sched == "step":
        return t["step"]["gamma"] ** ((step // steps_per_epoch) // t["step"]["step_size"])
    return 1.0


def _epoch_order(train: FerDataset, t: dict[str, Any], g: torch.Generator) -> torch.Tensor:
    n = len(train)
    if t["sampler"] == "balanced":
        counts = torch.bincount(train.labels, minlength=int(train.labels.max()) + 1).float()
        w = (1.0 / counts.clamp(min=1))[train.labels]
        return torch.multinomial(w, n, replacement=True, generator=g)
    if t["sampler"] != "shuffle":
        raise ConfigError(f"unknown sampler {t['sampler']!r}; choose shuffle or balanced")
    return torch.randperm(n, generator=g)


def _val_loss(y: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean())


def _same_experiment(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    for sec, key in _RESUMABLE_CHANGES:
        a[sec].pop(key, None)
        b[sec].pop(key, None)
    return config_hash(a) == config_hash(b)


def default_run_dir(cfg: dict[str, Any]) -> Path:
    return Path("runs") / f"{cfg['name']}-{config_hash(cfg)}"


def train(config: dict[str, Any] | str | Path, out_dir: str | Path | None = None, resume: bool = False,
          overrides: list[str] | tuple[str, ...] = (), progress: bool = True,
          log: Any = None) -> Path:
    """Train one model under a config; returns the run directory.

    Args:
        config: YAML path, or a dict (merged over the defaults in :mod:`ferbench.config`).
        out_dir: run directory (default ``runs/<name>-<config hash>``).
        resume: continue from the last finished epoch in ``out_dir``.
        overrides: ``key=value`` strings applied on top of the config.
        progress: show a rich progress bar.
        log: callable taking a string for one-line status messages (default: print).
    """
    say = log or print
    cfg = load_config(config, overrides)
    t = cfg["train"]
    run_dir = Path(out_dir) if out_dir else default_run_dir(cfg)
    state = load_state(run_dir) if run_dir.exists() else None
    if state is not None and not resume:
        raise FerbenchError(f"{run_dir} already holds a run; pass --resume to continue it or --out for a new one")
    if state is not None:
        saved = read_yaml(run_dir / "config.yaml")
        if not _same_experiment(saved, cfg):
            raise FerbenchError(f"{run_dir}: config differs from the run being resumed (only train.epochs, "
                                "train.time_limit_min and train.threads may change)")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))
    if cfg["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)

    torch.manual_seed(cfg["seed"])
    data = prepare_data(cfg)
    classes = data.full.classes
    pre = Preprocessing.from_dict(cfg["preprocessing"])
    model, arch = build_for_training(cfg, classes)
    device = resolve_device(t.get("device"))
    model = model.to(device)
    atomic_write_text(run_dir / "machine.json", json.dumps(machine_info(device), indent=1))
    if t["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    policy = cfg["model"].get("policy", "full")
    phase = 1
    aug = AugmentConfig.preset(t["augment"], **(t.get("augment_overrides") or {}))
    counts = np.bincount(data.train.labels.numpy(), minlength=len(classes))
    cw_np = class_weights(counts, t["class_weights"])
    cw = torch.tensor(cw_np, dtype=torch.float32, device=device) if cw_np is not None else None
    use_soft = bool(cfg["data"].get("soft_labels"))
    train_images, train_labels = data.train.images, data.train.labels
    train_soft = data.train.soft_labels if use_soft else None
    if hasattr(model, "on_train_start"):
        model.on_train_start(train_labels.clone())

    bs = int(t["batch_size"])
    n_train = len(data.train)
    steps_per_epoch = steps_in_epoch(n_train, bs, bool(t["drop_last"]))
    total_steps = steps_per_epoch * int(t["epochs"])

    ema = None
    if t["ema"]:
        from timm.utils import ModelEmaV3

        # warm-up: decay = min(ema, 1 - (1 + step)^-2/3), so the average does not drag the initial weights and
        # BatchNorm statistics along for thousands of steps (without it, decay 0.998 keeps 26 % of the random
        # init after 3 epochs of FER2013 and the EMA model predicts a single class)
        ema = ModelEmaV3(model, decay=float(t["ema"]), use_warmup=True)
    mixup = None
    if t["mixup"]:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=float(t["mixup"]), label_smoothing=0.0, num_classes=len(classes))

    def optimiser_for_phase() -> torch.optim.Optimizer:
        apply_policy(model, policy, phase)
        lr = t["phase2_lr"] if (policy == "two-phase" and phase == 2) else t["lr"]
        return make_optimizer(model, t, lr)

    opt = optimiser_for_phase()
    base_lrs = [g["lr"] for g in opt.param_groups]
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=t["plateau"]["factor"], patience=t["plateau"]["patience"],
        min_lr=t["plateau"]["min_lr"], threshold=1e-4, threshold_mode="abs")
    meta: dict[str, Any] = {"epoch": 0, "phase": 1, "best_val_accuracy": -1.0, "best_epoch": -1,
                            "best_val_loss": math.inf, "bad_epochs": 0, "history": [], "elapsed_s": 0.0,
                            "stopped": None}
    if state is not None:
        # weights first (they carry method structure such as ESR's active branches), then the optimiser
        tensors, meta = state
        phase = meta["phase"]
        model.load_state_dict(prefixed(tensors, "model."))
        opt = optimiser_for_phase()
        opt.load_state_dict(unflatten_optimizer(tensors, meta.pop("optimizer")))
        base_lrs = meta["base_lrs"]
        plateau.optimizer = opt
        plateau.load_state_dict(meta["plateau"])
        if ema is not None:
            ema.module.load_state_dict(prefixed(tensors, "ema."))
        if meta.get("stopped"):
            say(f"{run_dir}: training already finished ({meta['stopped']}); re-evaluating the best checkpoint")
        else:
            say(f"resuming {run_dir} after epoch {meta['epoch']}")

    train_fn: nn.Module = torch.compile(model) if t["compile"] else model
    eval_model = ema.module if ema is not None else model
    sidecar_base = {"architecture": arch, "classes": classes, "preprocessing": pre.to_dict(), "protocol": cfg,
                    "dataset": cfg["data"]["name"]}
    bar = _Progress(progress, int(t["epochs"]), meta["epoch"])
    t_start = time.perf_counter() - meta["elapsed_s"]
    try:
        epoch = meta["epoch"]
        while epoch < int(t["epochs"]) and not meta.get("stopped"):
            t_epoch = time.perf_counter()
            torch.manual_seed(cfg["seed"] * 100_003 + epoch)
            np.random.seed((cfg["seed"] * 100_003 + epoch) % 2**32)
            g = torch.Generator().manual_seed(cfg["seed"] * 7_919 + epoch)
            if hasattr(model, "on_epoch_start") and model.on_epoch_start(epoch):
                opt = optimiser_for_phase()
                base_lrs = [gr["lr"] for gr in opt.param_groups]
                plateau.optimizer = opt
            order = _epoch_order(data.train, t, g)
            set_train_mode(model)
            bar.new_epoch(epoch, steps_per_epoch)
            tot_loss, tot_correct, seen = 0.0, 0, 0
            for s in range(steps_per_epoch):
                idx = order[s * bs:(s + 1) * bs]
                x = train_batch(train_images, idx, pre, aug, g).to(device, non_blocking=True)
                y = train_labels[idx].to(device)
                soft = train_soft[idx].to(device) if train_soft is not None else None
                if mixup is not None and len(idx) % 2 == 0:
                    x, mixed = mixup(x, y)
                    soft = mixed if soft is None else mixed  # mixup's targets already mix the labels
                step = epoch * steps_per_epoch + s
                if t["scheduler"] in ("cosine", "onecycle", "step") or t["warmup_epochs"]:
                    f = lr_factor(t, step, total_steps, steps_per_epoch)
                    for gr, b in zip(opt.param_groups, base_lrs, strict=True):
                        gr["lr"] = b * f
                batch = Batch(x, y, soft, idx, epoch, cw)
                out = train_fn.forward_train(x) if hasattr(model, "forward_train") else train_fn(x)
                if hasattr(model, "compute_loss"):
                    loss = model.compute_loss(out, batch)
                else:
                    target = soft if soft is not None else y
                    loss = weighted_cross_entropy(out, target, cw, t["label_smoothing"])
                if not torch.isfinite(loss):
                    raise FerbenchError(f"loss became {loss.item()} at epoch {epoch + 1} step {s}; lower train.lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema is not None:
                    ema.update(model, step=step)
                if torch.is_tensor(out):
                    logits = out
                elif isinstance(out, (tuple, list)) and torch.is_tensor(out[0]) and out[0].shape[0] == len(idx):
                    logits = out[0]  # methods return (logits (B, C), extras...) from forward_train
                else:
                    logits = model(x)
                tot_loss += loss.item() * len(idx)
                tot_correct += int((logits.detach().argmax(1) == y).sum()) if logits.shape[-1] == len(classes) else 0
                seen += len(idx)
                bar.step(f"loss {tot_loss / seen:.3f}")
            train_s = time.perf_counter() - t_epoch
            # validation (the EMA weights when EMA is on: those are what gets saved)
            probs = predict_probs(eval_model, data.val.images, pre, cfg["eval"]["batch_size"])
            yv = data.val.labels.numpy()
            val_loss, val_acc = _val_loss(yv, probs), float((probs.argmax(1) == yv).mean())
            row = {"epoch": epoch + 1, "phase": phase, "lr": opt.param_groups[0]["lr"],
                   "train_loss": tot_loss / max(1, seen), "train_accuracy": tot_correct / max(1, seen),
                   "val_loss": val_loss, "val_accuracy": val_acc, "time_s": time.perf_counter() - t_epoch,
                   "train_img_per_s": seen / max(train_s, 1e-9)}
            if hasattr(model, "epoch_log"):
                row.update(model.epoch_log())
            if t["scheduler"] == "plateau":
                plateau.step(val_loss)
            if val_acc > meta["best_val_accuracy"]:
                meta["best_val_accuracy"], meta["best_epoch"] = val_acc, epoch + 1
                save_checkpoint(run_dir / "best.safetensors", eval_model, {
                    **sidecar_base, "epoch": epoch + 1,
                    "metrics": {"val_accuracy": val_acc, "val_loss": val_loss}})
            if val_loss < meta["best_val_loss"] - 0.0:
                meta["best_val_loss"], meta["bad_epochs"] = val_loss, 0
            else:
                meta["bad_epochs"] += 1
            epoch += 1
            meta["history"].append(row)
            meta["epoch"] = epoch
            meta["elapsed_s"] = time.perf_counter() - t_start
            es = int(t["early_stopping"] or 0)
            if es and meta["bad_epochs"] >= es:
                if policy == "two-phase" and phase == 1:
                    meta["switch_phase"] = True
                else:
                    meta["stopped"] = f"early stopping after epoch {epoch}"
            if policy == "two-phase" and phase == 1 and epoch >= int(t["phase1_epochs"]):
                meta["switch_phase"] = True
            limit = t.get("time_limit_min")
            if limit and not meta["stopped"]:
                per_epoch = meta["elapsed_s"] / max(1, len(meta["history"]))
                if meta["elapsed_s"] + per_epoch > float(limit) * 60:
                    meta["stopped"] = f"time limit {limit} min after epoch {epoch}"
            if meta.pop("switch_phase", False) and not meta["stopped"]:
                # seed 000 §1.7: reload the phase-1 best, unfreeze, fresh optimiser, reset callbacks
                from safetensors.torch import load_file

                model.load_state_dict(load_file(str(run_dir / "best.safetensors")))
                phase = 2
                opt = optimiser_for_phase()
                base_lrs = [gr["lr"] for gr in opt.param_groups]
                plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt, mode="min", factor=t["plateau"]["factor"], patience=t["plateau"]["patience"],
                    min_lr=t["plateau"]["min_lr"], threshold=1e-4, threshold_mode="abs")
                meta["best_val_loss"], meta["bad_epochs"] = math.inf, 0
            meta["phase"] = phase
            meta["plateau"] = plateau.state_dict()
            meta["base_lrs"] = base_lrs
            extra = {f"ema.{k}": v for k, v in ema.module.state_dict().items()} if ema is not None else {}
            _write_metrics(run_dir, meta["history"])
            save_state(run_dir, model, opt, extra, meta)
            bar.epoch_done(f"val acc {val_acc:.4f} (best {meta['best_val_accuracy']:.4f} @ {meta['best_epoch']})", row)
        if not meta.get("stopped"):
            meta["stopped"] = f"reached {epoch} epochs"
            meta["plateau"] = plateau.state_dict()
            meta["base_lrs"] = base_lrs
            save_state(run_dir, model, opt, {f"ema.{k}": v for k, v in ema.module.state_dict().items()}
                       if ema is not None else {}, meta)
    finally:
        bar.close()
    if not (run_dir / "best.safetensors").exists():
        raise FerbenchError(f"{run_dir}: no epoch finished, nothing to evaluate")
    finalize(run_dir, data, cfg)
    say(f"{run_dir}: {meta['stopped']}; best val accuracy {meta['best_val_accuracy']:.4f} "
        f"at epoch {meta['best_epoch']}")
    return run_dir


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` from the committed history (so no epoch is ever counted twice)."""
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def finalize(run_dir: Path, data: Splits, cfg: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``best`` on val and test, write ``eval_<split>.json``, and record the numbers in ``best.json``."""
    from ferbench.train.checkpoint import load_checkpoint, preprocessing_of

    model, meta = load_checkpoint(run_dir)
    model = model.to(resolve_device(cfg["train"].get("device")))
    pre = preprocessing_of(meta)
    results = {}
    named = [(cfg["data"].get("val_split") or "val", data.val)]
    if data.test is not None:
        named.append((cfg["data"].get("test_split") or "test", data.test))
    if cfg["data"].get("indices"):
        named = [("val", data.val)] + ([("test", data.test)] if data.test is not None else [])
    for split_name, subset in named:
        probs = predict_probs(model, subset.images, pre, cfg["eval"]["batch_size"], cfg["eval"]["tta_hflip"])
        m = compute_metrics(subset.labels.numpy(), probs, meta["classes"])
        m.update({"dataset": cfg["data"]["name"], "split": split_name, "checkpoint": str(run_dir / "best.safetensors"),
                  "epoch": meta["epoch"], "tta_hflip": cfg["eval"]["tta_hflip"]})
        atomic_write_text(run_dir / f"eval_{split_name}.json", json.dumps(m, indent=1))
        results[split_name] = m
    summary = {f"{s}_{k}": r[k] for s, r in results.items()
               for k in ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "auc_macro", "ece")}
    meta["metrics"] = {**meta.get("metrics", {}), **summary}
    meta.pop("format", None)
    from ferbench.train.checkpoint import FORMAT

    atomic_write_text(run_dir / "best.json", json.dumps({"format": FORMAT, **meta}, indent=2))
    return results
