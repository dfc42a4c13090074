"""Standard backbones from timm, with an optional seed-000 head.

Each variant is one registered function that fills in a timm name; :class:`TimmClassifier`
does the rest. Weights are never downloaded here (see ``ferbench.models.init``).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ferbench.models.heads import make_head
from ferbench.models.registry import register_model


class TimmClassifier(nn.Module):
    """A timm backbone (pooled features) followed by a ferbench head.

    ``head="linear"`` keeps timm's own classifier (so parameter counts equal timm's).
    """

    def __init__(
        self, timm_name: str, num_classes: int, in_chans: int, head: str = "linear",
        drop_rate: float = 0.0, **timm_kwargs: object,
    ) -> None:
        super().__init__()
        self.timm_name = timm_name
        if head == "linear":
            self.backbone = timm.create_model(
                timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                drop_rate=drop_rate, **timm_kwargs,
            )
            self.head = nn.Identity()
        else:
            self.backbone = timm.create_model(
                timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **timm_kwargs
            )
            self.head = make_head(head, self.backbone.num_features, num_classes, drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _timm(timm_name: str, num_classes: int, in_chans: int, head: str = "linear", **kw: object) -> nn.Module:
    kw.pop("input_size", None)
    return TimmClassifier(timm_name, num_classes, in_chans, head=head, **kw)


@register_model("timm", paper="003", target_layer="backbone.layer3", sizes=(48, 224),
                expected_params={224: 11_180_103})
def resnet18(num_classes: int = 7, in_chans: int = 3, head: str = "linear", **kw: object) -> nn.Module:
    """timm ResNet-18 (ImageNet stem; 2×2 layer4 map at 48 px)."""
    return _timm("resnet18", num_classes, in_chans, head, **kw)
