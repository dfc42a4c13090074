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


@register_model(family="seed004", paper="004", sizes=(48, 112))
def vit_tiny_fer(num_classes: int = 7, in_chans: int = 3, input_size: int = 48, patch_size: int = 0,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1) -> nn.Module:
    """timm ViT-Tiny (depth 12, width 192, 3 heads) with 144 tokens: patch 4 at 48 px, 8 at 96 (``S // 12``).

    The seed-004 survey's transformer baseline, from scratch (ImageNet / face pre-training cannot be loaded
    here). ``patch_size`` 0 = ``input_size // 12``. No CAM layer is declared (its maps are token sequences).
    """
    p = patch_size or max(1, input_size // 12)
    if input_size % p:
        raise ConfigError(f"vit_tiny_fer: input size {input_size} is not a multiple of patch_size {p}")
    return TimmClassifier("vit_tiny_patch16_224", num_classes, in_chans, img_size=input_size, patch_size=p,
                          drop_rate=drop_rate, drop_path_rate=drop_path_rate)


@register_model(family="seed004", paper="004", target_layer="backbone.stages.3", sizes=(112, 48))
def mobilevit_xxs(num_classes: int = 7, in_chans: int = 3, input_size: int = 112, drop_rate: float = 0.0) -> nn.Module:
    """timm MobileViT-XXS (1.0 M params: conv stem + MobileViT transformer blocks), 112 px by default."""
    return TimmClassifier("mobilevit_xxs", num_classes, in_chans, drop_rate=drop_rate)
