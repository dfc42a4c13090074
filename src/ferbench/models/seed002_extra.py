"""Seed 002 (Li et al., FER2013) transfer models and ResNet-18 (docs/protocol.md §4.3–4.4).

* ``resnet18_s002``: Keras ResNet-18 from scratch: convs with biases, 1×1 stride-2 shortcut conv
  *without* BN, GAP → D(C). 11 176 839 params = the Keras total 11 184 647 minus the 7 808 BN moving
  statistics (buffers in PyTorch).
* ``vgg16_s002``: VGG16 conv stack (timm) + the seed's heads: ``head="imagenet"`` (48 px ImageNet and
  224 px VGGFace runs: Flatten → Dr 0.5 → D4096 → Dr 0.5 → D1024 → D(C)) or ``head="nopretrain"``
  (Dr 0.5 → Flatten → BN → [D32-BN-ReLU-Dr0.5]×2 → D32-BN-ReLU → D(C)).
* ``resnet50_s002``: timm ResNet-50 + Flatten → BN → D4096 → BN → ReLU → Dr 0.5 → D1024 → BN → ReLU → D(C).
* ``inceptionv3_s002``: timm Inception-v3 at 75 px + Flatten → Dr → D4096 → Dr → D1024 → Dr → D(C).
"""

from __future__ import annotations

import torch
from torch import nn

from ferbench.errors import ConfigError
from ferbench.models.registry import register_model
from ferbench.models.seed000_keras import create_timm_backbone, feature_shape

FAMILY = "seed002"  # the seed-002 networks, split over two files


class BasicBlockS002(nn.Module):
    """Keras BasicBlock: C3(s)-BN-ReLU-C3-BN (+bias) + (identity | 1×1/s conv, no BN) → ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1),
            nn.BatchNorm2d(cout),
        )
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResNet18S002(nn.Module):
    """Seed-002 ResNet-18: 7×7/2 stem + BN + ReLU + MP(3,2) → 4×2 blocks → GAP → ``head`` D(C)."""

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, 64, 7, 2, 3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for cout, s in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            layers.append(BasicBlockS002(cin, cout, s))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# Keras total 11 184 647 = 11 176 839 params + 7 808 BN moving statistics; it matches a 1-channel input only.
@register_model(paper="002",
    in_chans=1,
    target_layer="features.8",
    sizes=(48,),
    expected_params={48: 11_176_839},
)
def resnet18_s002(num_classes: int = 7, in_chans: int = 1, input_size: int = 48) -> nn.Module:
    """Seed-002 Keras ResNet-18 from scratch, grey input (conv biases, shortcut conv without BN)."""
    return ResNet18S002(num_classes, in_chans)


def _dense(cin: int, cout: int, bn: bool = False, relu: bool = True, drop: float = 0.0) -> list[nn.Module]:
    out: list[nn.Module] = [nn.Linear(cin, cout)]
    if bn:
        out.append(nn.BatchNorm1d(cout))
    if relu:
        out.append(nn.ReLU(inplace=True))
    if drop:
        out.append(nn.Dropout(drop))
    return out


class TimmFlattenClassifier(nn.Module):
    """timm backbone map → ``head`` (starts with Flatten). ``(B, C_in, S, S)`` → ``(B, num_classes)``."""

    def __init__(self, timm_name: str, in_chans: int, input_size: int) -> None:
        super().__init__()
        self.backbone = create_timm_backbone(timm_name, in_chans)
        c, h, w = feature_shape(self.backbone, in_chans, input_size)
        self.num_features = c * h * w
        self.head: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))


@register_model(paper="002", target_layer="backbone.features.23", sizes=(48, 224))
def vgg16_s002(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, head: str = "imagenet"
) -> nn.Module:
    """VGG16 + seed-002 head (``imagenet``: 4096-1024 with dropout; ``nopretrain``: BN 32-32-32)."""
    m = TimmFlattenClassifier("vgg16", in_chans, input_size)
    n = m.num_features
    if head == "imagenet":
        m.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            *_dense(n, 4096, drop=0.5),
            *_dense(4096, 1024),
            nn.Linear(1024, num_classes),
        )
    elif head == "nopretrain":
        m.head = nn.Sequential(
            nn.Dropout(0.5),
            nn.Flatten(),
            nn.BatchNorm1d(n),
            *_dense(n, 32, bn=True, drop=0.5),
            *_dense(32, 32, bn=True, drop=0.5),
            *_dense(32, 32, bn=True),
            nn.Linear(32, num_classes),
        )
    else:
        raise ConfigError(f"unknown vgg16_s002 head {head!r}; choose imagenet or nopretrain")
    return m


@register_model(paper="002", target_layer="backbone.layer3", sizes=(48,))
def resnet50_s002(num_classes: int = 7, in_chans: int = 3, input_size: int = 48) -> nn.Module:
    """ResNet-50 + seed-002 head (Flatten → BN → D4096 → BN-ReLU-Dr → D1024 → BN-ReLU → D(C))."""
    m = TimmFlattenClassifier("resnet50", in_chans, input_size)
    n = m.num_features
    d4096 = nn.Linear(n, 4096)
    d4096.keras_init = "he_uniform"  # type: ignore[assignment]
    m.head = nn.Sequential(
        nn.Flatten(),
        nn.BatchNorm1d(n),
        d4096,
        nn.BatchNorm1d(4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        *_dense(4096, 1024, bn=True),
        nn.Linear(1024, num_classes),
    )
    return m


# Paper quotes 34 397 991 = Keras *total* (incl. BN moving stats, BN without γ); timm: 34 380 775.
@register_model(paper="002",
    input_size=75,
    target_layer="backbone.Mixed_6e",
    sizes=(75,),
    expected_params={75: 34_380_775},
)
def inceptionv3_s002(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 75
) -> nn.Module:
    """Inception-v3 at 75 px + seed-002 head (Flatten → Dr → D4096 → Dr → D1024 → Dr → D(C))."""
    m = TimmFlattenClassifier("inception_v3", in_chans, input_size)
    n = m.num_features
    m.head = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(0.5),
        *_dense(n, 4096, drop=0.5),
        *_dense(4096, 1024, drop=0.5),
        nn.Linear(1024, num_classes),
    )
    return m
