"""Standard backbones from timm, with an optional seed-000 head.

Each variant is one registered function that fills in a timm name; :class:`TimmClassifier`
does the rest. Weights are never downloaded here (see ``ferbench.models.init``).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ferbench.errors import ConfigError
from ferbench.models.heads import make_head
from ferbench.models.registry import register_model

FAMILY = "timm"


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


@register_model(
    target_layer="backbone.layer3", sizes=(48, 224), expected_params={48: 11_180_103, 224: 11_180_103}
)
def resnet18(
    num_classes: int = 7,
    in_chans: int = 3,
    head: str = "linear",
    drop_rate: float = 0.0,
    imagenet_tag: str = "a1_in1k",
) -> nn.Module:
    """ResNet-18 (torchvision architecture, ImageNet stem; 2×2 layer4 map at 48 px).

    ``imagenet_tag`` picks the timm ImageNet weights ``--init imagenet`` loads (``a1_in1k``: timm's recipe;
    ``tv_in1k``: torchvision's, the papers' choice). Seeds 001 and 003 call this network ``resnet18_s001`` /
    ``resnet18_s003`` (aliases declared in their files).
    """
    tags = sorted(n.split(".", 1)[1] for n in timm.list_pretrained("resnet18.*"))
    if imagenet_tag not in tags:
        raise ConfigError(f"resnet18: unknown imagenet_tag {imagenet_tag!r}; choose one of {', '.join(tags)}")
    return TimmClassifier(f"resnet18.{imagenet_tag}", num_classes, in_chans, head=head, drop_rate=drop_rate)
