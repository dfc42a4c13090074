"""The trainer: one plain loop for every model, protocol and method (read top to bottom).

``train(config) -> run_dir``. Each finished epoch is committed atomically (``last.json``), so a killed run resumes
with ``resume=True`` from the last finished epoch; every epoch seeds its own RNGs from ``(seed, epoch)``, so a
resumed deterministic run ends with the same metrics as an uninterrupted one.

The parts, as in torchvision's reference scripts: :func:`train_one_epoch`, :func:`validate`,
:func:`stop_or_switch` (early stopping, time limit, the two-phase switch) and :func:`finalize` (final evaluation
of the best checkpoint). Methods plug in through :class:`ferbench.methods.Method`; the trainer never probes a
model for attributes.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferbench.config import RunConfig, TrainConfig, config_hash, dump_yaml, load_config, read_yaml, typed
from ferbench.data import FerDataset
from ferbench.data.preprocess import Preprocessing
from ferbench.data.registry import get_spec
from ferbench.device import machine_info
from ferbench.errors import ConfigError, DataError, FerbenchError
from ferbench.evaluate.metrics import compute_metrics
from ferbench.evaluate.predict import predict_probs
from ferbench.loader import load_checkpoint, preprocessing_of, save_checkpoint
from ferbench.methods import Batch, Method, MethodModule, as_method
from ferbench.persist import RunDir, read_sidecar, read_weights, update_sidecar
from ferbench.persist.atomic import atomic_write_text
from ferbench.persist.checkpoint import logit_bias_of
from ferbench.progress import EpochProgress as _Progress
from ferbench.train.augment import AugmentConfig, augment_batch
from ferbench.train.build import (
    Splits,
    build_for_training,
    dataset_name,
    fill_model_defaults,
    fill_split_defaults,
    is_union,
    make_optimizer,
    prepare_data,
    resolve_device,
    split_names,
)
from ferbench.train.losses import class_weights
from ferbench.train.mix import mix_batch
from ferbench.train.policies import apply_policy, set_train_mode
from ferbench.train.precision import cpu_bf16_support, resolve_channels_last, resolve_precision, to_fp32
from ferbench.train.schedule import lr_factor, make_plateau, per_step, steps_in_epoch
from ferbench.train.state import flatten_optimizer, prefixed, unflatten_optimizer

__all__ = ["Batch", "Splits", "finalize", "lr_factor", "prepare_data", "steps_in_epoch", "train", "train_batch"]

# Keys that may change between a run and its resumption (budgets and machine settings, not the experiment).
_RESUMABLE_CHANGES = (("train", "epochs"), ("train", "time_limit_min"), ("train", "threads"), ("train", "device"),
                      ("train", "compile"), ("train", "fused_optimizer"), ("eval", "batch_size"), ("eval", "cross"))


def train_batch(images: torch.Tensor, idx: torch.Tensor, pre: Preprocessing, aug: AugmentConfig,
                g: torch.Generator) -> torch.Tensor:
    """The trainer's input path: uint8 ``(N, H, W, C)`` rows ``idx`` → float ``(B, C, H, W)``, augmented
    (batched, on tensors) and normalised by the checkpoint's preprocessing."""
    return pre.from_float(augment_batch(images[idx].permute(0, 3, 1, 2).float().div_(255.0), aug, g))


def _epoch_order(train: FerDataset, t: TrainConfig, g: torch.Generator) -> torch.Tensor:
    n = len(train)
    if t.sampler == "balanced":
        counts = torch.bincount(train.labels, minlength=int(train.labels.max()) + 1).float()
        w = (1.0 / counts.clamp(min=1))[train.labels]
        return torch.multinomial(w, n, replacement=True, generator=g)
    if t.sampler == "weighted":
        w = getattr(train, "sample_weights", None)
        if w is None:
            raise ConfigError("train.sampler: weighted needs a dataset with sample weights (a union with "
                              "data.sampling_weights)")
        return torch.multinomial(torch.as_tensor(w, dtype=torch.float32), n, replacement=True, generator=g)
    return torch.randperm(n, generator=g)


def _val_loss(y: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean())


@dataclass
class RunState:
    """What ``last.json`` commits after each epoch (JSON-able)."""

    epoch: int = 0
    phase: int = 1
    best_val_accuracy: float = -1.0
    best_epoch: int = -1
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped: str | None = None
    base_lrs: list[float] = field(default_factory=list)
    plateau: dict[str, Any] = field(default_factory=dict)
    precision: str | None = None    # resolved train.precision: a resumed run keeps it (auto differs per machine)

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> RunState:
        known = {k: meta[k] for k in cls.__dataclass_fields__ if k in meta}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class _Run:
    """Everything one training run holds while it runs."""

    cfg: RunConfig
    rd: RunDir
    data: Splits
    pre: Preprocessing
    model: nn.Module
    method: Method
    arch: dict[str, Any]
    device: torch.device
    precision: str
    aug: AugmentConfig
    cw: torch.Tensor | None
    adjust: torch.Tensor | None
    soft: torch.Tensor | None
    channels_last: bool = False
    opt: torch.optim.Optimizer | None = None
    plateau: Any = None
    ema: Any = None
    phase: int = 1

    @property
    def t(self) -> TrainConfig:
        return self.cfg.train

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and saved (the EMA average when EMA is on)."""
        return self.ema.module if self.ema is not None else self.model

    def new_optimizer(self) -> None:
        """Apply the fine-tuning policy for the current phase and build a fresh optimiser."""
        apply_policy(self.model, self.cfg.model.policy, self.phase)
        lr = self.t.phase2_lr if (self.cfg.model.policy == "two-phase" and self.phase == 2) else self.t.lr
        self.opt = make_optimizer(self.method, self.t, lr)
        if self.plateau is None:
            self.plateau = make_plateau(self.opt, self.t)
        else:
            self.plateau.optimizer = self.opt


def _autocast(run: _Run) -> contextlib.AbstractContextManager[Any]:
    if run.precision == "bf16":
        return torch.autocast(run.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(run: _Run, state: RunState, epoch: int, bar: _Progress) -> dict[str, Any]:
    """One pass over the training set; returns the epoch's training numbers."""
    t, n_classes = run.t, len(run.data.full.classes)
    torch.manual_seed(run.cfg.seed * 100_003 + epoch)
    np.random.seed((run.cfg.seed * 100_003 + epoch) % 2**32)
    rng = np.random.default_rng(run.cfg.seed * 100_003 + epoch)
    g = torch.Generator().manual_seed(run.cfg.seed * 7_919 + epoch)
    if run.method.on_epoch_start(epoch):
        run.new_optimizer()
        state.base_lrs = [gr["lr"] for gr in run.opt.param_groups]
    bs = t.batch_size
    steps = steps_in_epoch(len(run.data.train), bs, t.drop_last)
    total_steps = steps * t.epochs
    order = _epoch_order(run.data.train, t, g)
    set_train_mode(run.model)
    bar.new_epoch(epoch, steps)
    images, labels = run.data.train.images, run.data.train.labels
    tot_loss, tot_correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    for s in range(steps):
        idx = order[s * bs:(s + 1) * bs]
        x = train_batch(images, idx, run.pre, run.aug, g)
        y = labels[idx]
        target = run.soft[idx].float() if run.soft is not None else F.one_hot(y, n_classes).float()
        x, target, lam = mix_batch(x, target, t.mixup, t.cutmix, rng)
        if per_step(t):
            f = lr_factor(t, epoch * steps + s, total_steps, steps)
            for gr, b in zip(run.opt.param_groups, state.base_lrs, strict=True):
                gr["lr"] = b * f
        if run.device.type != "cpu":
            x, y, target, idx = x.to(run.device), y.to(run.device), target.to(run.device), idx.to(run.device)
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batch = Batch(x=x, y=y, target=target, index=idx, epoch=epoch, class_weights=run.cw,
                      label_smoothing=t.label_smoothing, logit_adjustment=run.adjust,
                      soft=run.soft is not None or lam < 1.0)
        with _autocast(run):  # the forward only: fp32 master weights, fp32 loss
            out = to_fp32(run.method.forward_train(x))
        loss = run.method.compute_loss(out, batch)  # float32: the one cross-entropy upcasts the logits
        if not torch.isfinite(loss):
            raise FerbenchError(f"loss became {loss.item()} at epoch {epoch + 1} step {s}; lower train.lr")
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if run.ema is not None:
            run.ema.update(run.model, step=epoch * steps + s)
        logits = run.method.train_logits(out).detach()
        tot_loss += loss.item() * len(idx)
        tot_correct += int((logits.argmax(1) == y).sum()) if logits.shape[-1] == n_classes else 0
        seen += len(idx)
        bar.step(f"loss {tot_loss / seen:.3f}")
    dt = time.perf_counter() - t0
    return {"lr": run.opt.param_groups[0]["lr"], "train_loss": tot_loss / max(1, seen),
            "train_accuracy": tot_correct / max(1, seen), "images_per_s": seen / max(dt, 1e-9)}


def validate(run: _Run) -> tuple[float, float]:
    """``(val_loss, val_accuracy)`` of the weights that would be saved."""
    probs = predict_probs(run.eval_model, run.data.val.images, run.pre, run.cfg.eval.batch_size)
    yv = run.data.val.labels.numpy()
    return _val_loss(yv, probs), float((probs.argmax(1) == yv).mean())


def stop_or_switch(run: _Run, state: RunState) -> bool:
    """After a finished epoch: set ``state.stopped`` (early stopping, time limit) and return whether to switch
    to phase 2 of a two-phase policy."""
    t, two_phase = run.t, run.cfg.model.policy == "two-phase"
    switch = False
    if t.early_stopping and state.bad_epochs >= t.early_stopping:
        if two_phase and run.phase == 1:
            switch = True
        else:
            state.stopped = f"early stopping after epoch {state.epoch}"
    if two_phase and run.phase == 1 and state.epoch >= t.phase1_epochs:
        switch = True
    if t.time_limit_min and not state.stopped:
        per_epoch = state.elapsed_s / max(1, len(state.history))
        if state.elapsed_s + per_epoch > t.time_limit_min * 60:
            state.stopped = f"time limit {t.time_limit_min:g} min after epoch {state.epoch}"
    return switch and not state.stopped


def _switch_phase(run: _Run, state: RunState) -> None:
    """Seed 000's two-phase protocol (docs/protocol.md §1.7): reload the phase-1 best, unfreeze, fresh optimiser
    and callbacks."""
    run.model.load_state_dict(read_weights(run.rd.best))
    run.phase = 2
    run.plateau = None
    run.new_optimizer()
    state.base_lrs = [gr["lr"] for gr in run.opt.param_groups]
    state.best_val_loss, state.bad_epochs = math.inf, 0


def _commit(run: _Run, state: RunState) -> None:
    """Write the epoch's resume state (tensors, then ``last.json``: the commit point)."""
    state.phase = run.phase
    state.plateau = run.plateau.state_dict()
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    opt_t, opt_meta = flatten_optimizer(run.opt)
    tensors.update(opt_t)
    if run.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in run.ema.module.state_dict().items()})
    run.rd.write_metrics(state.history)
    run.rd.write_state(tensors, {**state.to_json(), "optimizer": opt_meta})


def _same_experiment(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    for sec, key in _RESUMABLE_CHANGES:
        a.get(sec, {}).pop(key, None)
        b.get(sec, {}).pop(key, None)
    return config_hash(a) == config_hash(b)


def _time_limit_raised(saved: dict[str, Any], new: dict[str, Any], last: dict[str, Any]) -> bool:
    """Whether a run that its ``train.time_limit_min`` stopped trains on: resumed with a larger limit (or none)
    that leaves room for another epoch, and epochs still to go.

    The limit is the run's total training time (across resumes), so re-running the same command leaves a
    time-limited run finished: a sweep trial whose budget is its time limit is never trained twice.
    """
    if not str(last.get("stopped") or "").startswith("time limit") or last.get("epoch", 0) >= new["train"]["epochs"]:
        return False
    old_limit, limit = saved["train"].get("time_limit_min"), new["train"].get("time_limit_min")
    if not limit:
        return True
    return (old_limit is None or limit > old_limit) and limit * 60 > float(last.get("elapsed_s") or 0.0)


def default_run_dir(cfg: dict[str, Any]) -> Path:
    return Path("runs") / f"{cfg['name']}-{config_hash(cfg)}"


def _setup(cfg: RunConfig, rd: RunDir, say: Any) -> _Run:
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(cfg.seed)
    device = resolve_device(t.device)
    atomic_write_text(rd.path / "machine.json", json.dumps(machine_info(device), indent=1))
    data = prepare_data(cfg)
    classes = data.full.classes
    pre = Preprocessing.from_dict(cfg.preprocessing.model_dump())
    model, arch = build_for_training(cfg, classes)
    channels_last = resolve_channels_last(t.channels_last, model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = np.bincount(data.train.labels.numpy(), minlength=len(classes))
    cw_np = class_weights(counts, t.class_weights)
    adjust = None
    if t.logit_adjust:
        prior = np.maximum(counts, 1) / max(1, counts.sum())
        adjust = torch.tensor(t.logit_adjust * np.log(prior), dtype=torch.float32, device=device)
    soft = data.train.soft_labels if (cfg.data.soft_labels or cfg.data.soft_label_file) else None
    if soft is not None and cfg.data.soft_mix < 1.0:  # distillation-style target: part distribution, part label
        onehot = F.one_hot(data.train.labels, len(classes)).float()
        soft = cfg.data.soft_mix * soft.float() + (1.0 - cfg.data.soft_mix) * onehot
    run = _Run(cfg=cfg, rd=rd, data=data, pre=pre, model=model, method=as_method(model), arch=arch, device=device,
               precision=resolve_precision(t.precision, device, model), aug=AugmentConfig.preset(t.augment, **t.augment_overrides),
               cw=torch.tensor(cw_np, dtype=torch.float32, device=device) if cw_np is not None else None,
               adjust=adjust, soft=soft, channels_last=channels_last)
    if t.compile:
        if isinstance(run.method, MethodModule):
            raise ConfigError("train.compile works for plain models only (not with a FER method)")
        run.method = as_method(torch.compile(model))  # type: ignore[arg-type]
    run.method.on_train_start(data.train.labels.clone())
    if t.ema:
        from timm.utils import ModelEmaV3

        # warm-up: decay = min(ema, 1 - (1 + step)^-2/3), so the average does not drag the initial weights and
        # BatchNorm statistics along for thousands of steps (without it, decay 0.998 keeps 26 % of the random
        # init after 3 epochs of FER2013 and the EMA model predicts a single class)
        run.ema = ModelEmaV3(model, decay=t.ema, use_warmup=True)
    run.new_optimizer()
    return run


def _restore(run: _Run, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> RunState:
    """Weights first (they carry method structure such as ESR's active branches), then the optimiser."""
    state = RunState.from_json(meta)
    run.phase = state.phase
    run.model.load_state_dict(prefixed(tensors, "model."))
    run.new_optimizer()
    kernel = [(g.get("fused"), g.get("foreach")) for g in run.opt.param_groups]
    run.opt.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    for g, (fused, foreach) in zip(run.opt.param_groups, kernel, strict=True):
        # load_state_dict also restores the saved groups' kernel flags: keep this run's train.fused_optimizer
        g["fused"], g["foreach"] = fused, foreach
    run.plateau.load_state_dict(state.plateau)
    if run.ema is not None:
        run.ema.module.load_state_dict(prefixed(tensors, "ema."))
    return state


def train(config: dict[str, Any] | str | Path, out_dir: str | Path | None = None, resume: bool = False,
          overrides: list[str] | tuple[str, ...] = (), progress: bool | Literal["lines"] = True,
          log: Any = None) -> Path:
    """Train one model under a config; returns the run directory.

    Args:
        config: YAML path or shipped config name, or a dict (merged over the defaults in :mod:`ferbench.config`).
        out_dir: run directory (default ``runs/<name>-<config hash>``).
        resume: continue from the last finished epoch in ``out_dir``.
        overrides: ``key=value`` strings applied on top of the config.
        progress: a rich progress bar on a terminal, one plain line per epoch when output is redirected;
            ``"lines"``: plain lines through ``log`` even on a terminal; False: silent.
        log: callable taking a string for one-line status messages (default: print).

    Raises:
        FerbenchError / ConfigError: one line, before anything is trained, for a bad config or run folder.
    """
    say = log or print
    cfg_dict = fill_split_defaults(fill_model_defaults(load_config(config, overrides)))
    cfg = typed(cfg_dict)
    for ce in cfg.eval.cross:  # a misspelt dataset fails now, not after the training
        get_spec(ce.data)
    rd = RunDir(Path(out_dir) if out_dir else default_run_dir(cfg_dict))
    for note in rd.recover() if rd.exists() else []:
        say(f"{rd.path}: {note} (left by an interrupted write)")
    saved_state = rd.read_state() if rd.exists() else None
    if saved_state is not None and not resume:
        raise FerbenchError(f"{rd.path} already holds a run; pass --resume to continue it or --out for a new one")
    if saved_state is not None:
        saved = fill_split_defaults(fill_model_defaults(load_config(read_yaml(rd.config))))
        if not _same_experiment(saved, cfg_dict):
            raise FerbenchError(f"{rd.path}: config differs from the run being resumed (only train.epochs, "
                                "train.time_limit_min, train.threads, train.device, train.compile, "
                                "train.fused_optimizer, eval.batch_size, eval.cross may change)")
    finished = saved_state is not None and bool(saved_state[1].get("stopped"))
    extend = finished and _time_limit_raised(saved, cfg_dict, saved_state[1])
    finished = finished and not extend
    if finished:  # a finished run keeps the config it was trained with (its budget is not rewritten)
        cfg_dict = {**saved, "eval": {**saved["eval"], "cross": cfg_dict["eval"].get("cross") or []}}  # scored now
        cfg = typed(cfg_dict)
    else:
        rd.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rd.config, dump_yaml(cfg_dict))
    run = _setup(cfg, rd, say)
    state = RunState(base_lrs=[g["lr"] for g in run.opt.param_groups])
    if saved_state is not None:
        state = _restore(run, *saved_state)
        run.precision = state.precision or "fp32"  # runs from before train.precision trained in fp32
        if extend:
            limit = run.t.time_limit_min
            say(f"resuming {rd.path} after epoch {state.epoch} ({state.stopped}; now "
                f"{f'{limit:g} min in all' if limit else 'no time limit'})")
            state.stopped = None
        elif state.stopped:
            more = ("; to train on, resume with a larger --set train.time_limit_min (the run's total)"
                    if state.stopped.startswith("time limit") and state.epoch < run.t.epochs else "")
            say(f"{rd.path}: training already finished ({state.stopped}); re-evaluating the best checkpoint{more}")
        else:
            say(f"resuming {rd.path} after epoch {state.epoch}")
    state.precision = run.precision
    if run.precision == "bf16" and run.device.type == "cpu" and not cpu_bf16_support()[0]:
        say(f"train.precision=bf16 on a CPU without native bf16 ({cpu_bf16_support()[1]}): expect it to be much "
            "slower than fp32")
    sidecar = {"architecture": run.arch, "classes": run.data.full.classes, "preprocessing": run.pre.to_dict(),
               "protocol": cfg_dict, "dataset": dataset_name(cfg)}
    bar = _Progress(progress, run.t.epochs, state.epoch, say)
    t_start = time.perf_counter() - state.elapsed_s
    try:
        while state.epoch < run.t.epochs and not state.stopped:
            t_epoch = time.perf_counter()
            row = {"epoch": state.epoch + 1, "phase": run.phase,
                   **train_one_epoch(run, state, state.epoch, bar)}
            val_loss, val_acc = validate(run)
            row.update({"val_loss": val_loss, "val_accuracy": val_acc, **run.method.epoch_log()})
            if run.t.scheduler == "plateau":
                run.plateau.step(val_loss)
            state.epoch += 1
            if val_acc > state.best_val_accuracy:
                state.best_val_accuracy, state.best_epoch = val_acc, state.epoch
                save_checkpoint(rd.best, run.eval_model, {**sidecar, "epoch": state.epoch,
                                                          "metrics": {"val_accuracy": val_acc, "val_loss": val_loss}})
            if val_loss < state.best_val_loss:
                state.best_val_loss, state.bad_epochs = val_loss, 0
            else:
                state.bad_epochs += 1
            row["time_s"] = time.perf_counter() - t_epoch
            state.history.append(row)
            state.elapsed_s = time.perf_counter() - t_start
            if stop_or_switch(run, state):
                _switch_phase(run, state)
            _commit(run, state)
            bar.epoch_done(row, f"val acc {val_acc:.4f} (best {state.best_val_accuracy:.4f} @ {state.best_epoch})")
        if not state.stopped:
            state.stopped = f"reached {state.epoch} epochs"
            _commit(run, state)
    finally:
        bar.close()
    if not rd.best.exists():
        raise FerbenchError(f"{rd.path}: no epoch finished, nothing to evaluate")
    results = finalize(rd.path, run.data, cfg_dict)
    say(f"{rd.path}: {state.stopped}; best val accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}")
    test_name = split_names(cfg)[2]
    if test_name in results:
        m = results[test_name]
        say(f"{dataset_name(cfg)}/{test_name} (in-domain, n={m['n']}): accuracy {m['accuracy']:.4f}, "
            f"balanced {m['balanced_accuracy']:.4f}")
    cross_evaluate(rd.path, cfg_dict, say)
    return rd.path


def cross_evaluate(run_dir: Path, cfg: dict[str, Any], say: Any = print) -> dict[str, dict[str, Any]]:
    """Score the run's best checkpoint on every ``eval.cross`` dataset split, beside its own test split.

    As ``ferbench evaluate`` scores another dataset: its samples of classes the model lacks are dropped and
    the decision is among the shared classes; the sidecar's calibration and the run's ``eval.tta_hflip``
    apply. Writes ``eval_<data>_<split>.json`` and the two headline numbers into the sidecar's ``metrics``;
    logs one line each. A dataset that is not on this machine is one logged line, not an error (the trained
    checkpoint and its own evaluation are already written). Returns ``{key: metrics}``.
    """
    from ferbench.data.registry import canonical_dataset_name, domain_relation
    from ferbench.evaluate.crossdata import evaluate_checkpoint

    rd = RunDir(run_dir)
    ev, data = cfg["eval"], cfg["data"]
    out, summary = {}, {}
    for ce in ev.get("cross") or []:
        name, split = canonical_dataset_name(ce["data"]), ce.get("split", "test")
        key = RunDir.cross_key(name, split)
        where = domain_relation(data["name"], name)
        if not is_union(cfg) and where == "in-domain" and split == data.get("test_split"):
            continue  # the run's own test split (e.g. quickstart's CK+48 entry on a CK+48 run): scored already
        try:
            m = evaluate_checkpoint(rd.best, name, split, ce.get("root") or data.get("root"), ev["batch_size"],
                                    bool(ev["tta_hflip"]), cfg["train"].get("device", "auto"))
        except DataError as e:
            say(f"{name}/{split}: not scored ({e})")
            continue
        rd.write_eval(key, m)
        out[key] = m
        summary.update({f"{key}_accuracy": m["accuracy"], f"{key}_balanced_accuracy": m["balanced_accuracy"]})
        shared = f"{len(m['classes'])} shared classes, " if m.get("ignored_model_classes") else ""
        say(f"{name}/{split} ({where}, {shared}n={m['n']}): accuracy {m['accuracy']:.4f}, "
            f"balanced {m['balanced_accuracy']:.4f}")
    if summary:
        update_sidecar(rd.best, metrics={**(read_sidecar(rd.best).get("metrics") or {}), **summary})
    return out


def finalize(run_dir: Path, data: Splits, cfg: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``best`` on val and test, write ``eval_<split>.json``, and record the numbers in ``best.json``."""
    rd = RunDir(run_dir)
    model, meta = load_checkpoint(rd.best)
    pre = preprocessing_of(meta)
    d, ev = cfg["data"], cfg["eval"]
    _, val_name, test_name = split_names(typed(cfg))
    named = [(val_name or "val", data.val)]
    if data.test is not None:
        named.append((test_name or "test", data.test))
    if d.get("indices"):
        named = [("val", data.val)] + ([("test", data.test)] if data.test is not None else [])
    results = {}
    temperature, bias, calibration = 1.0, None, meta.get("calibration")
    if ev.get("calibrate") or ev.get("prior_tau") is not None:
        from ferbench.evaluate.calibration import fit_calibration
        from ferbench.evaluate.predict import predict_view_logits

        z = predict_view_logits(model, data.val.images, pre, ev["batch_size"], ev["tta_hflip"])
        calibration = fit_calibration(z, data.val.labels.numpy(), data.train.labels.numpy(), ev.get("prior_tau"))
        calibration.update({"split": named[0][0], "tta_hflip": bool(ev["tta_hflip"]), "prior_split": "train"})
        temperature, bias = calibration["temperature"], logit_bias_of({"calibration": calibration})
    for split_name, subset in named:
        probs = predict_probs(model, subset.images, pre, ev["batch_size"], ev["tta_hflip"], temperature, bias)
        m = compute_metrics(subset.labels.numpy(), probs, meta["classes"])
        m.update({"dataset": meta.get("dataset"), "split": split_name, "checkpoint": str(rd.best),
                  "epoch": meta["epoch"], "tta_hflip": ev["tta_hflip"], "temperature": temperature,
                  "prior_tau": float((calibration or {}).get("prior_tau") or 0.0)})
        rd.write_eval(split_name, m)
        results[split_name] = m
    summary = {f"{s}_{k}": r[k] for s, r in results.items()
               for k in ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "auc_macro", "ece")}
    extra = {"calibration": calibration} if calibration else {}
    # how the reported figures were computed is how Recognizer runs the checkpoint (h-flip TTA or not)
    extra["inference"] = {**(meta.get("inference") or {}), "tta_hflip": bool(ev["tta_hflip"])}
    update_sidecar(rd.best, metrics={**meta.get("metrics", {}), **summary}, **extra)
    return results
