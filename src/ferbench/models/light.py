"""Modern light models a deployer would try (timm), at 48 and 112 px.

Each is the plain timm model with its own classifier (``classifier`` for MobileNetV3 /
EfficientNet-Lite / GhostNet, ``head`` for ConvNeXt), so ``--init imagenet`` loads timm weights
directly when they are in the local Hugging Face cache.
"""

from __future__ import annotations

import timm
from torch import nn

from ferbench.models.registry import register_model


def _light(timm_name: str, num_classes: int, in_chans: int, drop_rate: float) -> nn.Module:
    return timm.create_model(
        timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate
    )


@register_model(target_layer="blocks.3", sizes=(48, 112))
def mobilenetv3_small(
    num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0
) -> nn.Module:
    """MobileNetV3-Small 1.0 (timm ``mobilenetv3_small_100``)."""
    return _light("mobilenetv3_small_100", num_classes, in_chans, drop_rate)


@register_model(target_layer="blocks.4", sizes=(48, 112))
def mobilenetv3_large(
    num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0
) -> nn.Module:
    """MobileNetV3-Large 1.0 (timm ``mobilenetv3_large_100``)."""
    return _light("mobilenetv3_large_100", num_classes, in_chans, drop_rate)


@register_model(target_layer="blocks.4", sizes=(48, 112))
def efficientnet_lite0(
    num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0
) -> nn.Module:
    """EfficientNet-Lite0 (timm ``efficientnet_lite0``: ReLU6, no SE; quantisation-friendly)."""
    return _light("efficientnet_lite0", num_classes, in_chans, drop_rate)


@register_model(target_layer="blocks.6", sizes=(48, 112))
def ghostnet_100(
    num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0
) -> nn.Module:
    """GhostNet 1.0 (timm ``ghostnet_100``)."""
    return _light("ghostnet_100", num_classes, in_chans, drop_rate)


@register_model(target_layer="stages.2", sizes=(48, 112))
def convnext_atto(
    num_classes: int = 7, in_chans: int = 3, drop_rate: float = 0.0
) -> nn.Module:
    """ConvNeXt-Atto (timm ``convnext_atto``, 3.7 M params)."""
    return _light("convnext_atto", num_classes, in_chans, drop_rate)
