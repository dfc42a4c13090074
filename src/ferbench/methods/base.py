"""The trainer ↔ method contract, in one place: the :class:`Batch` a method sees, the hooks it may implement
(:class:`Method`), and the one cross-entropy every method and plain model is trained with.

The trainer (:mod:`ferbench.train.loop`) only talks to a :class:`Method`. A FER method (ESR, SCN, DACL, DAN, LDL)
is a :class:`MethodModule` — an ``nn.Module`` wrapping a backbone and overriding some hooks; a plain registry
model is adapted by :func:`as_method` (:class:`Supervised`, which is not a module, so the saved state dict is the
model's own). ``model(x)`` always returns ``(B, C)`` scores, so evaluation, deployment and export never need to
know that a method was involved.

The soft-label rule (one rule for hard labels, FER+ vote distributions, mixup/cutmix and label smoothing):

* ``batch.target`` is a ``(B, C)`` distribution: one-hot labels, or the dataset's label distributions, mixed by
  mixup/cutmix when those are on;
* the per-sample class weight is the target's expectation of the class weights, ``w_i = Σ_c target_ic · w_c``
  (for a one-hot target: Keras' ``w[y_i]``);
* label smoothing ``ε`` then blends the target with the uniform distribution, ``(1 − ε)·target + ε / C``;
* the loss is ``mean_i w_i · (−Σ_c t_ic · log softmax(z_i + a)_c)``, with ``a = τ · log prior`` when
  logit adjustment is on (Menon et al. 2021) and 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn


def per_sample_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                             logit_adjustment: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C)`` logits, ``(B, C)`` float target distribution → ``(B,)`` float32 cross-entropies."""
    z = logits.float()
    if logit_adjustment is not None:
        z = z + logit_adjustment.to(z.device, z.dtype)
    t = target.to(z.device, z.dtype)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[1]
    return -(t * F.log_softmax(z, dim=1)).sum(1)


def sample_weights(target: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor | None:
    """Per-sample weights ``Σ_c target_ic · w_c``: ``(B, C)``, ``(C,)`` → ``(B,)``, or ``None`` without weights."""
    if class_weights is None:
        return None
    return target.float() @ class_weights.to(target.device, torch.float32)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None,
                  label_smoothing: float = 0.0, logit_adjustment: torch.Tensor | None = None) -> torch.Tensor:
    """The one training cross-entropy (rule in the module docstring).

    Args:
        logits: ``(B, C)`` float (any dtype; computed in float32).
        target: ``(B,)`` int64 class indices or ``(B, C)`` float distributions (rows sum to 1).
        class_weights: ``(C,)`` float or ``None``.
        label_smoothing: ``ε`` in ``[0, 1)``.
        logit_adjustment: ``(C,)`` additive logit offsets (``τ · log prior``) or ``None``.

    Returns:
        scalar float32 loss (Keras semantics: weighted mean over the batch, divided by ``B``).
    """
    if not target.dtype.is_floating_point:
        target = F.one_hot(target, logits.shape[1]).float()
    ce = per_sample_cross_entropy(logits, target, label_smoothing, logit_adjustment)
    w = sample_weights(target, class_weights)
    return (ce * w).mean() if w is not None else ce.mean()


@dataclass
class Batch:
    """What a method sees for one training step.

    Attributes:
        x: ``(B, C_in, S, S)`` float model input (preprocessed, augmented, possibly mixed).
        y: ``(B,)`` int64 hard labels (of the unmixed samples).
        target: ``(B, C)`` float training target before label smoothing (see the module docstring), or ``None``
            for one-hot ``y``.
        index: ``(B,)`` int64 positions of the samples in the training set.
        epoch: 0-based epoch.
        class_weights: ``(C,)`` float or ``None``.
        label_smoothing: ``ε`` of the run.
        logit_adjustment: ``(C,)`` float offsets or ``None``.
        soft: whether ``target`` is a distribution (soft labels or mixing) rather than one-hot ``y``.
    """

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None = None
    index: torch.Tensor | None = None
    epoch: int = 0
    class_weights: torch.Tensor | None = None
    label_smoothing: float = 0.0
    logit_adjustment: torch.Tensor | None = None
    soft: bool = False

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = torch.arange(len(self.y))

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The run's loss on ``logits`` ``(B, C)``. ``labels`` ``(B,)`` replaces the target by their one-hot
        (a method that relabels samples, e.g. SCN); otherwise ``self.target`` (or one-hot ``y``) is used."""
        target = labels if labels is not None else (self.target if self.target is not None else self.y)
        return cross_entropy(logits, target, self.class_weights, self.label_smoothing, self.logit_adjustment)


@runtime_checkable
class Method(Protocol):
    """The hooks the trainer calls. ``module`` is the ``nn.Module`` that is trained and saved."""

    module: nn.Module

    def forward_train(self, x: torch.Tensor) -> Any:
        """Training forward; its output goes to :meth:`compute_loss` and :meth:`train_logits`."""

    def compute_loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        """Scalar loss of one step."""

    def train_logits(self, outputs: Any) -> torch.Tensor:
        """``(B, C)`` scores of ``outputs`` for the running training accuracy."""

    def on_train_start(self, train_labels: torch.Tensor) -> None:
        """Called once with the ``(N,)`` training labels before the first epoch."""

    def on_epoch_start(self, epoch: int) -> bool:
        """Called before each epoch; ``True`` when the trainable parameters changed (rebuild the optimiser)."""

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups at base learning rate ``lr``."""

    def epoch_log(self) -> dict[str, float]:
        """Extra numbers for the epoch's metrics row."""


class MethodModule(nn.Module):
    """Base class of FER methods: default hooks = plain supervised training of ``forward``'s logits."""

    method_name = "method"

    @property
    def module(self) -> nn.Module:  # the module trained and saved is the method itself
        return self

    def forward_train(self, x: torch.Tensor) -> Any:
        return self(x)

    def compute_loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        return batch.cross_entropy(self.train_logits(outputs))

    def train_logits(self, outputs: Any) -> torch.Tensor:
        return outputs[0] if isinstance(outputs, (tuple, list)) else outputs

    def on_train_start(self, train_labels: torch.Tensor) -> None:
        return None

    def on_epoch_start(self, epoch: int) -> bool:
        return False

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def epoch_log(self) -> dict[str, float]:
        return {}


class Supervised:
    """A plain registry model as a :class:`Method`: ``forward`` logits, the one cross-entropy, no extra state."""

    def __init__(self, model: nn.Module) -> None:
        self.module = model

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def compute_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return batch.cross_entropy(outputs)

    def train_logits(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs

    def on_train_start(self, train_labels: torch.Tensor) -> None:
        return None

    def on_epoch_start(self, epoch: int) -> bool:
        return False

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.module.parameters() if p.requires_grad]}]

    def epoch_log(self) -> dict[str, float]:
        return {}


METHODS: dict[str, Callable[..., nn.Module]] = {}


def register_method(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a method builder ``fn(backbone, num_classes, **opts) -> MethodModule`` under ``name``.

    Adding a method is one file in ``ferbench/methods/`` with a decorated builder: the package imports every
    module in it, so nothing else has to be edited.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in METHODS and METHODS[name] is not fn:
            raise ValueError(f"method {name!r} registered twice")
        METHODS[name] = fn
        return fn

    return deco


def as_method(model: nn.Module) -> Method:
    """``model`` itself when it is a :class:`MethodModule`, else :class:`Supervised` around it."""
    return model if isinstance(model, MethodModule) else Supervised(model)  # type: ignore[return-value]
