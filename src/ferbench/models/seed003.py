"""Seed 003 (Sheng & Lau, docs/protocol.md §5): torchvision-architecture ResNet-18/34/50, ``fc`` replaced.

These are plain timm ResNets (same architecture and, with ``--init imagenet``, the torchvision ``tv_in1k``
weights). The classifier is ``fc`` and the last stage ``layer4``: the seed's "freeze all but layer4" is the
``last-stage`` fine-tuning policy (layer4 + fc trainable). The ResNet-18 is the zoo's ``resnet18`` network;
``resnet18_s003`` is its paper name (an alias presetting the torchvision weights). Checkpoints saved when
``resnet18_s003`` was a bare timm ResNet load unchanged (their keys gain the ``backbone.`` prefix).
"""

from __future__ import annotations

import timm
from torch import nn

from ferbench.models.registry import register_alias, register_model

register_alias(
    "resnet18_s003",
    "resnet18",
    paper="003",
    sizes=(48, 224),
    description="ResNet-18 (torchvision arch and weights), fc → Linear(512, C); last stage = layer4",
    preset={"imagenet_tag": "tv_in1k"},
    legacy_keys=(("", "backbone."),),
)


def _tv_resnet(arch: str, num_classes: int, in_chans: int, drop_rate: float = 0.0) -> nn.Module:
    return timm.create_model(
        f"{arch}.tv_in1k", pretrained=False, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate
    )


@register_model(
    paper="003", target_layer="layer3", sizes=(48, 224), expected_params={48: 21_288_263, 224: 21_288_263}
)
def resnet34_s003(num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0) -> nn.Module:
    """ResNet-34 (torchvision arch), ``fc`` → Linear(512, C); last stage = layer4."""
    return _tv_resnet("resnet34", num_classes, in_chans, drop_rate)


@register_model(
    paper="003", target_layer="layer3", sizes=(48, 224), expected_params={48: 23_522_375, 224: 23_522_375}
)
def resnet50_s003(num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0) -> nn.Module:
    """ResNet-50 (torchvision arch), ``fc`` → Linear(2048, C); last stage = layer4."""
    return _tv_resnet("resnet50", num_classes, in_chans, drop_rate)
