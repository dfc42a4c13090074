"""Backbone feature access shared by the FER methods (the hook contract itself is :mod:`ferbench.methods.base`)."""

from __future__ import annotations

import torch
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
