"""Learning-rate schedules and epoch sizes (per-step schedules; ReduceLROnPlateau is stepped per epoch)."""

from __future__ import annotations

import math

import torch

from ferbench.config import TrainConfig


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


def lr_factor(t: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier on the base LR at ``step`` for the per-step schedules (plateau is handled per epoch)."""
    warm = t.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return (step + 1) / warm
    if t.scheduler == "cosine":
        p = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    if t.scheduler == "onecycle":  # linear warm-up 30 % then cosine to 0, as torch's OneCycleLR
        up = int(0.3 * total_steps)
        if step < up:
            return 0.04 + 0.96 * step / max(1, up)
        return 0.5 * (1 + math.cos(math.pi * (step - up) / max(1, total_steps - up)))
    if t.scheduler == "step":
        return t.step.gamma ** ((step // steps_per_epoch) // t.step.step_size)
    return 1.0


def per_step(t: TrainConfig) -> bool:
    """Whether the LR is set every step (per-step schedules or a warm-up)."""
    return t.scheduler in ("cosine", "onecycle", "step") or t.warmup_epochs > 0


def make_plateau(opt: torch.optim.Optimizer, t: TrainConfig) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Keras ``ReduceLROnPlateau(val_loss)`` as configured."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=t.plateau.factor, patience=t.plateau.patience, min_lr=t.plateau.min_lr,
        threshold=1e-4, threshold_mode="abs")
