"""Seed 004 (survey) family: EfficientFace (Zhao et al., AAAI 2021), from scratch.

EfficientFace = a ShuffleNet-V2 1.0 trunk (torchvision's ``InvertedResidual`` blocks, stages [4, 8, 4],
widths [29, 116, 232, 464, 1024]; the stem has 29 channels, not ShuffleNet's 24) plus two additions at the
stage-2 resolution:

* a **local-feature extractor**: the stem map (after the max-pool) is cut into its four quadrants, each goes
  through its own depthwise 3×3/2 → BN → ReLU → depthwise 3×3 → BN → ReLU (29 → 116 channels, 4 per group),
  and the four results are tiled back into one map the size of stage 2's output;
* a **channel-spatial modulator** on stage 2's output: a channel gate (global average → FC reduce ×16 → BN →
  ReLU → FC) times a spatial gate (1×1 reduce ×16 → BN → ReLU → two dilated (4) 3×3 convs with BN + ReLU →
  1×1 to one map), ``x * sigmoid(channel * spatial)``.

``stage2(x) * gate + local(x)`` then runs through stages 3–4, a 1×1 conv to 1024, global average, ``fc``.
The paper's label-distribution training (LDG from a teacher) is a training method, not part of the network;
ferbench trains the network with the study's loss.

At 224 px (the paper's input) stage 2 is 28×28; at 48 px the stem reduces 4× to 12×12 and stage 2 is 6×6.
``stem_pool=False`` drops the stem max-pool so that a 48-px input gets the 12×12 stage-2 map a 96-px input has
(4× the compute, same parameters).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.shufflenetv2 import InvertedResidual

from ferbench.errors import ConfigError
from ferbench.models.registry import register_model


def _dw_block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class LocalFeatureExtractor(nn.Module):
    """Four quadrant branches ``(B, cin, H, W)`` → ``(B, cout, ceil(H/2), ceil(W/2))`` (H, W even)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*_dw_block(cin, cout, 2), *_dw_block(cout, cout, 1)) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        quads = (x[..., :h, :w], x[..., h:, :w], x[..., :h, w:], x[..., h:, w:])
        tl, bl, tr, br = (b(q) for b, q in zip(self.branches, quads, strict=True))
        return torch.cat([torch.cat([tl, bl], dim=2), torch.cat([tr, br], dim=2)], dim=3)


class ChannelSpatialModulator(nn.Module):
    """``x * sigmoid(channel_gate(x) * spatial_gate(x))``; ``(B, C, H, W)`` → same shape."""

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4) -> None:
        super().__init__()
        r = channels // reduction
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, r),
                                     nn.BatchNorm1d(r), nn.ReLU(inplace=True), nn.Linear(r, channels))
        layers: list[nn.Module] = [nn.Conv2d(channels, r, 1), nn.BatchNorm2d(r), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(r, r, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(r),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(r, 1, 1))
        self.spatial = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channel(x)[:, :, None, None]          # (B, C, 1, 1)
        s = self.spatial(x)                            # (B, 1, H, W)
        return x * torch.sigmoid(c * s)


class EfficientFace(nn.Module):
    """EfficientFace: ``(B, in_chans, S, S)`` float → ``(B, num_classes)`` logits (S a multiple of 16)."""

    def __init__(self, num_classes: int = 7, in_chans: int = 3, repeats: tuple[int, int, int] = (4, 8, 4),
                 widths: tuple[int, int, int, int, int] = (29, 116, 232, 464, 1024), stem_pool: bool = True,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_pool else nn.Identity()
        cin = widths[0]
        for i, (n, cout) in enumerate(zip(repeats, widths[1:4], strict=True)):
            blocks = [InvertedResidual(cin, cout, 2)] + [InvertedResidual(cout, cout, 1) for _ in range(n - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*blocks))
            cin = cout
        self.local = LocalFeatureExtractor(widths[0], widths[1])
        self.modulator = ChannelSpatialModulator(widths[1])
        self.conv5 = nn.Sequential(nn.Conv2d(cin, widths[4], 1, bias=False), nn.BatchNorm2d(widths[4]),
                                   nn.ReLU(inplace=True))
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(widths[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.modulator(self.stage2(x)) + self.local(x)
        x = self.conv5(self.stage4(self.stage3(x)))
        return self.fc(self.drop(x.mean((2, 3))))


@register_model(paper="004", target_layer="stage3", sizes=(48, 112, 224))
def efficientface(num_classes: int = 7, in_chans: int = 3, input_size: int = 48, stem_pool: bool = True,
                  drop_rate: float = 0.0) -> nn.Module:
    """EfficientFace (local-feature extractor + channel-spatial modulator on ShuffleNet-V2), from scratch."""
    if input_size % (16 if stem_pool else 8):
        raise ConfigError(f"efficientface: input size {input_size} must be a multiple of {16 if stem_pool else 8} "
                          "(the local-feature extractor tiles four quadrants onto the stage-2 map)")
    return EfficientFace(num_classes, in_chans, stem_pool=stem_pool, drop_rate=drop_rate)
