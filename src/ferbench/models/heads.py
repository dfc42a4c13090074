"""Classifier heads that can sit on any pooled backbone feature."""

from __future__ import annotations

from torch import nn

from ferbench.errors import FerbenchError

HEADS = ("linear", "seed000", "alt1024")


def make_head(kind: str, in_features: int, num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """Build a classifier head mapping ``(B, in_features)`` → ``(B, num_classes)``.

    ``seed000`` is seed 000's head (docs/protocol.md §1.8): Dense 256 ReLU → Dropout 0.2 → Dense 128 ReLU → Dense C.
    ``alt1024`` is the "Simple" MobileNet head: 1024 → 1024 → 512 → C, ReLU, no dropout.
    ``linear`` is a single (optionally dropped-out) linear layer.
    """
    if kind == "linear":
        layers: list[nn.Module] = [nn.Dropout(drop_rate)] if drop_rate else []
        return nn.Sequential(*layers, nn.Linear(in_features, num_classes))
    if kind == "seed000":
        return nn.Sequential(
            nn.Linear(in_features, 256), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
        )
    if kind == "alt1024":
        return nn.Sequential(
            nn.Linear(in_features, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes),
        )
    raise FerbenchError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
