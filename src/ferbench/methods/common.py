"""Shared pieces of the FER-specific methods: backbone feature access, losses, the hook base class.

A method is an ``nn.Module`` that wraps a registry backbone and implements the trainer's optional
hooks (``forward_train``, ``compute_loss``, ``on_train_start``, ``on_epoch_start``, ``param_groups``,
``epoch_log``). Plain ``model(x)`` always returns ``(B, C)`` scores, so evaluation, deployment and
export never need to know that a method is involved.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import ConfigError


class FeatureTrunk(nn.Module):
    """The convolutional trunk of a registry backbone: ``(B, C_in, S, S)`` → ``(B, D, h, w)`` float.

    Attributes:
        net: the wrapped timm model (its classifier removed).
        num_features: ``D``, channels of the feature map.
    """

    def __init__(self, net: nn.Module, num_features: int) -> None:
        super().__init__()
        self.net = net
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net.forward_features(x)
        if f.ndim != 4:
            raise ConfigError(f"backbone {type(self.net).__name__} gives {f.ndim}-d features; "
                              "FER methods need a convolutional (B, D, h, w) feature map")
        return f


def backbone_features(model: nn.Module) -> FeatureTrunk:
    """The feature extractor of a registry backbone, with its classifier dropped.

    Handles :class:`ferbench.models.timm_models.TimmClassifier` (uses ``model.backbone.forward_features``
    and ``model.backbone.num_features``) and any module with ``forward_features`` + integer ``num_features``
    (timm's convention). A timm classifier is reset to identity, so the method's own heads are the only
    classification layers (parameter counts stay honest).

    Raises:
        ConfigError: for a model that exposes no feature extractor.
    """
    from ferbench.models.timm_models import TimmClassifier

    if isinstance(model, TimmClassifier):
        net = model.backbone
        if hasattr(net, "reset_classifier"):
            net.reset_classifier(0)
        return FeatureTrunk(net, net.num_features)
    if isinstance(model, FeatureTrunk):
        return model
    if hasattr(model, "forward_features") and isinstance(getattr(model, "num_features", None), int):
        if hasattr(model, "reset_classifier"):  # a bare timm model
            model.reset_classifier(0)
        return FeatureTrunk(model, model.num_features)
    name = getattr(getattr(model, "ferbench_info", None), "name", type(model).__name__)
    raise ConfigError(f"model {name!r} exposes no feature extractor; FER methods need a timm backbone "
                      "(e.g. model.name: resnet18)")


def class_weighted_ce(logits: torch.Tensor, y: torch.Tensor, class_weights: torch.Tensor | None = None,
                      soft: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy, Keras-style class weighting (``mean_i w[y_i]·CE_i``, docs/protocol.md §1.5).

    Args:
        logits: ``(B, C)`` float.
        y: ``(B,)`` int64 hard labels (used for the weights and when ``soft`` is None).
        class_weights: ``(C,)`` float or None.
        soft: ``(B, C)`` float target distributions (rows sum to 1) or None.

    Returns:
        scalar loss.
    """
    logp = F.log_softmax(logits, dim=1)
    ce = -(soft * logp).sum(1) if soft is not None else F.nll_loss(logp, y, reduction="none")
    if class_weights is not None:
        ce = ce * class_weights.to(ce.device, ce.dtype)[y]
    return ce.mean()


def batch_get(batch: Any, name: str) -> Any:
    """``batch.name`` or ``None`` (the trainer's batch object may omit optional fields)."""
    return getattr(batch, name, None)


class MethodModule(nn.Module):
    """Base class: default hooks = plain supervised training of ``forward``'s logits."""

    method_name = "method"

    def forward_train(self, x: torch.Tensor) -> Any:
        return self(x)

    def compute_loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        return class_weighted_ce(outputs, batch.y, batch_get(batch, "class_weights"))

    def on_train_start(self, train_labels: torch.Tensor) -> None:
        return None

    def on_epoch_start(self, epoch: int) -> bool:
        return False

    def epoch_log(self) -> dict[str, float]:
        return {}
