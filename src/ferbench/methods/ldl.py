"""Label-distribution learning: train on soft targets (FER+ vote distributions).

EfficientFace/LDL-style training replaces the one-hot target by a distribution over classes. Here the
distribution is the dataset's ``soft_labels`` (FER+ crowd votes, normalised), delivered by the trainer
as ``batch.target`` (with ``batch.soft`` set) when ``data.soft_labels: true``. Loss: cross-entropy to the distribution
(``loss: ce``) or KL divergence (``loss: kl``; same gradient, zero at a perfect fit).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.base import (
    Batch,
    MethodModule,
    cross_entropy,
    per_sample_cross_entropy,
    register_method,
    sample_weights,
)


def distribution_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "kl",
                      class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Soft-target loss. ``logits``, ``target``: ``(B, C)`` (target rows sum to 1) → scalar.

    ``ce``: the one training cross-entropy (:func:`ferbench.methods.base.cross_entropy`, same weighting and
    smoothing rule); ``kl``: the same minus the target's entropy, ``Σ_c q log(q/p)`` (same gradient, 0 at a
    perfect fit).
    """
    if kind not in ("kl", "ce"):
        raise ConfigError(f"ldl: loss must be 'kl' or 'ce', not {kind!r}")
    if kind == "ce":
        return cross_entropy(logits, target, class_weights, label_smoothing)
    per = per_sample_cross_entropy(logits, target, label_smoothing)
    t = target.float()
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[1]
    per = per + (t * t.clamp_min(1e-12).log()).sum(1)
    w = sample_weights(target, class_weights)
    return (per * w).mean() if w is not None else per.mean()


class LDL(MethodModule):
    """A registry backbone trained on label distributions; ``forward`` is the backbone's own."""

    method_name = "ldl"

    def __init__(self, backbone: nn.Module, num_classes: int, loss: str = "kl") -> None:
        super().__init__()
        if loss not in ("kl", "ce"):
            raise ConfigError(f"ldl: loss must be 'kl' or 'ce', not {loss!r}")
        self.model = backbone
        self.loss = loss

    @property
    def head(self) -> nn.Module:
        for name in ("head", "classifier", "fc"):
            m = getattr(self.model, name, None)
            if isinstance(m, nn.Module):
                return m
        return self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def compute_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        if not batch.soft:
            raise ConfigError("method ldl needs soft labels: set data.soft_labels: true (e.g. ferplus)")
        return distribution_loss(outputs, batch.target, self.loss, batch.class_weights, batch.label_smoothing)


@register_method("ldl")
def build_ldl(backbone: nn.Module, num_classes: int, **opts: Any) -> LDL:
    return LDL(backbone, num_classes, **opts)
