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


@register_model("seed004", paper="004", sizes=(48, 112))
def vit_tiny_fer(num_classes: int = 7, in_chans: int = 3, input_size: int = 48, patch_size: int | None = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1, **kw: object) -> nn.Module:
    """timm ViT-Tiny (depth 12, width 192, 3 heads) with 144 tokens: patch 4 at 48 px, 8 at 96, ``S/12`` else.

    The seed-004 survey's transformer baseline, from scratch (ImageNet/face pre-training cannot be loaded here).
    No CAM layer is declared (its maps are token sequences, not feature maps).
    """
    if kw:
        from ferbench.errors import ConfigError

        raise ConfigError(f"model 'vit_tiny_fer' does not take option(s) {', '.join(sorted(kw))}")
    p = patch_size or max(1, input_size // 12)
    return TimmClassifier("vit_tiny_patch16_224", num_classes, in_chans, img_size=input_size, patch_size=p,
                          drop_rate=drop_rate, drop_path_rate=drop_path_rate)


@register_model("seed004", paper="004", target_layer="backbone.stages.3", sizes=(112, 48))
def mobilevit_xxs(num_classes: int = 7, in_chans: int = 3, input_size: int = 112, drop_rate: float = 0.0,
                  **kw: object) -> nn.Module:
    """timm MobileViT-XXS (1.3 M params; conv stem + MobileViT transformer blocks), 112 px by default."""
    if kw:
        from ferbench.errors import ConfigError

        raise ConfigError(f"model 'mobilevit_xxs' does not take option(s) {', '.join(sorted(kw))}")
    return TimmClassifier("mobilevit_xxs", num_classes, in_chans, drop_rate=drop_rate)
