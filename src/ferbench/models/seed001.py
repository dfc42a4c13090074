"""Seed 001 backbone (protocol.md §3): the ResNet-18 of SCN/DACL (ESR's base/branches: methods/esr.py).

Only the networks live here; the methods (ESR growing/voting, SCN attention + relabelling, DACL
attention + sparse center loss) are in ``ferbench.methods`` and wrap these.

* ``resnet18_s001``: timm ResNet-18 (torchvision architecture, ImageNet stem). ``forward_features``
  gives the layer4 map ``(B, 512, h, w)`` (DACL's F; 3×3 at 96 px, 7×7 at 224), ``pooled`` the
  512-d GAP feature (SCN/DACL f), ``fc`` the classifier.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ferbench.models.registry import register_model
from ferbench.models.seed000_keras import reject_options


class ResNet18Features(nn.Module):
    """timm ResNet-18 with explicit feature / pooled-feature / classifier access.

    ``forward(x)``: ``(B, C_in, S, S)`` → ``(B, num_classes)`` logits.
    """

    num_features = 512

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            "resnet18.tv_in1k", pretrained=False, num_classes=0, in_chans=in_chans
        )
        self.fc = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Layer4 map ``(B, 512, h, w)``."""
        return self.backbone.forward_features(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """GAP feature ``(B, 512)``."""
        return self.forward_features(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))


@register_model(
    "seed001",
    paper="001",
    input_size=96,
    target_layer="backbone.layer3",
    sizes=(48, 96, 224),
    expected_params={96: 11_180_103},
)
def resnet18_s001(num_classes: int = 8, in_chans: int = 3, input_size: int = 48, **kw: object) -> nn.Module:
    """ResNet-18 backbone of SCN / DACL (GAP 512 → fc); 96 px in seed 001."""
    reject_options("resnet18_s001", kw)
    return ResNet18Features(num_classes, in_chans)
