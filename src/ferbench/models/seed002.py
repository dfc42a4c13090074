"""Seed 002 (Li et al., FER2013): the shallow CNN of the 70.24 % ensemble (docs/protocol.md §4.2)."""

from __future__ import annotations

import torch
from torch import nn

from ferbench.models.registry import register_model


def _block(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Dropout(0.25),
    )


class ShallowCNN(nn.Module):
    """4 conv blocks (64, 128@5×5, 512, 512) → Flatten → 256 → 512 → classes."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_chans, 64, 3), _block(64, 128, 5), _block(128, 512, 3), _block(512, 512, 3)
        )
        side = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * side * side, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.25),
            nn.Linear(256, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.25),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(paper="002", target_layer="features.2.0", expected_params={48: 4_474_759})
def shallow_cnn_s002(num_classes: int = 7, in_chans: int = 1, input_size: int = 48) -> nn.Module:
    """Seed 002 shallow CNN (4.47 M params at 48×48×1)."""
    return ShallowCNN(num_classes, in_chans, input_size)
