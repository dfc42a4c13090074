"""Label-distribution learning: train on soft targets (FER+ vote distributions).

EfficientFace/LDL-style training replaces the one-hot target by a distribution over classes. Here the
distribution is the dataset's ``soft_labels`` (FER+ crowd votes, normalised), delivered by the trainer
as ``batch.soft`` when ``data.soft_labels: true``. Loss: cross-entropy to the distribution
(``loss: ce``) or KL divergence (``loss: kl``; same gradient, zero at a perfect fit).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.common import MethodModule, batch_get


def distribution_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "kl",
                      class_weights: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-target loss. ``logits``, ``target``: ``(B, C)`` (target rows sum to 1) → scalar.

    ``kl``: ``Σ_c q log(q/p)`` per sample; ``ce``: ``−Σ_c q log p``. Optional Keras-style class weights
    ``w[y_i]`` per sample (``y`` = hard labels).
    """
    logp = F.log_softmax(logits, dim=1)
    if kind == "ce":
        per = -(target * logp).sum(1)
    elif kind == "kl":
        per = F.kl_div(logp, target, reduction="none").sum(1)
    else:
        raise ConfigError(f"ldl: loss must be 'kl' or 'ce', not {kind!r}")
    if class_weights is not None and y is not None:
        per = per * class_weights.to(per.device, per.dtype)[y]
    return per.mean()


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

    def compute_loss(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        soft = batch_get(batch, "soft")
        if soft is None:
            raise ConfigError("method ldl needs soft labels: set data.soft_labels: true (e.g. ferplus)")
        return distribution_loss(outputs, soft, self.loss, batch_get(batch, "class_weights"), batch.y)


def build_ldl(backbone: nn.Module, num_classes: int, **opts: Any) -> LDL:
    return LDL(backbone, num_classes, **opts)
