"""ferbench's own compact CNNs for fast CPU training at 48 px (quickstart and the shipped default).

A VGG-style stack of 3×3 conv-BN-ReLU pairs with max-pooling, global average pooling and a linear head:
the cheapest family that reaches useful FER2013 accuracy within minutes on two CPU cores.
"""

from __future__ import annotations

import torch
from torch import nn

from ferbench.models.registry import register_model


class FerVGG(nn.Module):
    """``len(widths)`` stages of ``convs_per_stage`` × (conv3×3-BN-ReLU) + MaxPool(2), then GAP → dropout → linear."""

    def __init__(self, widths: tuple[int, ...], num_classes: int = 7, in_chans: int = 1, convs_per_stage: int = 2,
                 drop_rate: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            stage: list[nn.Module] = []
            for _ in range(convs_per_stage):
                stage += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            stage.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*stage))
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(c, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` → ``(B, widths[-1], S/16, S/16)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(target_layer="features.2")
def fer_vgg_s(num_classes: int = 7, in_chans: int = 1, drop_rate: float = 0.3) -> nn.Module:
    """Compact VGG 16-32-64-128 (0.29 M params): the quickstart model."""
    return FerVGG((16, 32, 64, 128), num_classes, in_chans, drop_rate=drop_rate)


@register_model(target_layer="features.2")
def fer_vgg_m(num_classes: int = 7, in_chans: int = 1, drop_rate: float = 0.3) -> nn.Module:
    """Compact VGG 32-64-128-256 (1.18 M params)."""
    return FerVGG((32, 64, 128, 256), num_classes, in_chans, drop_rate=drop_rate)


@register_model(target_layer="features.2")
def fer_vgg_l(num_classes: int = 7, in_chans: int = 1, drop_rate: float = 0.4) -> nn.Module:
    """Compact VGG 48-96-192-384 (2.6 M params)."""
    return FerVGG((48, 96, 192, 384), num_classes, in_chans, drop_rate=drop_rate)
