"""Seed 000 Keras-Applications backbones (docs/protocol.md §2.1) as timm models + the standard head.

Every model here is :class:`BackboneClassifier`: a timm backbone used through ``forward_features``
(the un-pooled map), a pool (``"gap"`` or ``"flatten"``) and a ferbench head (``"seed000"`` by default;
``"alt1024"`` is the "Simple" MobileNet head), as docs/protocol.md §1.8 describes. Parameter counts equal
the Keras *trainable* counts of docs/protocol.md §2.17 (see the tests), except where timm's architecture
differs (ResNet50: Keras convs carry biases; InceptionV3: Keras BN has no γ).

``faithful=True`` switches BatchNorm to Keras eps/momentum (1e-3 / 0.01) and re-initialises
kernels Glorot-uniform with zero biases (Keras defaults).
"""

from __future__ import annotations

import timm
import torch
from timm.models.nasnet import NASNetALarge
from torch import nn

from ferbench.errors import ConfigError
from ferbench.models.heads import make_head
from ferbench.models.init import keras_faithful_
from ferbench.models.registry import register_alias, register_model

POOLS = ("gap", "flatten")


def feature_shape(backbone: nn.Module, in_chans: int, input_size: int) -> tuple[int, int, int]:
    """``(C, h, w)`` of ``backbone.forward_features`` for one ``(1, in_chans, S, S)`` input.

    Runs on the meta device (no memory, no compute), so it is cheap even for 224-px VGG.
    """
    from copy import deepcopy

    try:
        meta = deepcopy(backbone).to("meta").eval()
        with torch.no_grad():
            out = meta.forward_features(torch.zeros(1, in_chans, input_size, input_size, device="meta"))
    except RuntimeError as e:
        raise ConfigError(f"input size {input_size} px is too small for this backbone ({e})") from None
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def create_timm_backbone(timm_name: str, in_chans: int, **timm_kwargs: object) -> nn.Module:
    """A timm model without classifier, used through ``forward_features`` (Keras ``include_top=False``).

    timm VGG keeps fc6/fc7 as a 102 M-param ``pre_logits`` ConvMlp: it is built tiny (``mlp_ratio``)
    and then dropped, so only the conv stack remains (and building stays fast).
    """
    if timm_name == "nasnetamobile":
        return NASNetAMobile(num_classes=0, in_chans=in_chans, **timm_kwargs)  # type: ignore[arg-type]
    if timm_name.startswith("vgg"):
        timm_kwargs.setdefault("mlp_ratio", 1 / 4096)
    m = timm.create_model(timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **timm_kwargs)
    if hasattr(m, "pre_logits"):
        m.pre_logits = nn.Identity()
    return m


class NASNetAMobile(NASNetALarge):
    """NASNet-A Mobile (4 @ 1056; Keras ``NASNetMobile``) from timm's NASNet-A cells.

    timm only ships NASNet-A Large (6 normal cells per stage, 4032 features). The mobile network is
    the same cell design with stem 32, 1056 features and 4 normal cells per stage; after a reduction
    cell the first normal cell takes the last pre-reduction cell as its "previous" input (TF-slim
    ``skip_reduction_layer_input=0``, as Keras). Cell names follow ``pretrainedmodels.nasnetamobile``
    (``cell_0..11``), so a converted state dict loads with ``--init file:PATH``. Without classifier:
    4 232 978 parameters = Keras trainable count (+36 738 BN statistics = Keras total 4 269 716).
    """

    def __init__(self, num_classes: int = 0, in_chans: int = 3, **kw: object) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, stem_size=32, num_features=1056, **kw)
        keep = {6: 4, 7: 5, 8: 6, 9: 7, 12: 8, 13: 9, 14: 10, 15: 11}
        cells = {i: self._modules.pop(f"cell_{i}") for i in range(18)}
        order = list(self._modules)
        for old, new in keep.items():
            self._modules[f"cell_{new}"] = cells[old]
        for i in range(4):
            self._modules[f"cell_{i}"] = cells[i]
        # re-establish a readable module order: stem, cells 0-3, red 0, cells 4-7, red 1, cells 8-11, rest
        names = [
            "conv0",
            "cell_stem_0",
            "cell_stem_1",
            *[f"cell_{i}" for i in range(4)],
            "reduction_cell_0",
            *[f"cell_{i}" for i in range(4, 8)],
            "reduction_cell_1",
            *[f"cell_{i}" for i in range(8, 12)],
        ]
        names += [n for n in order if n not in names]
        self._modules = type(self._modules)((n, self._modules[n]) for n in names)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` → ``(B, 1056, ⌈S/32⌉, ⌈S/32⌉)`` (after the final ReLU)."""
        x0 = self.conv0(x)
        s0 = self.cell_stem_0(x0)
        s1 = self.cell_stem_1(x0, s0)
        c0 = self.cell_0(s1, s0)
        c1 = self.cell_1(c0, s1)
        c2 = self.cell_2(c1, c0)
        c3 = self.cell_3(c2, c1)
        r0 = self.reduction_cell_0(c3, c2)
        c4 = self.cell_4(r0, c3)
        c5 = self.cell_5(c4, r0)
        c6 = self.cell_6(c5, c4)
        c7 = self.cell_7(c6, c5)
        r1 = self.reduction_cell_1(c7, c6)
        c8 = self.cell_8(r1, c7)
        c9 = self.cell_9(c8, r1)
        c10 = self.cell_10(c9, c8)
        c11 = self.cell_11(c10, c9)
        return self.act(c11)


class BackboneClassifier(nn.Module):
    """timm backbone → pool → head.

    Input ``(B, in_chans, S, S)`` float; output ``(B, num_classes)`` logits.

    Attributes:
        backbone: the timm model with its classifier removed (``forward_features`` → ``(B, C, h, w)``).
        pool: ``nn.AdaptiveAvgPool2d(1)`` + flatten, or plain ``nn.Flatten``.
        head: the classification layers (found by the fine-tuning policies by this name).
    """

    def __init__(
        self,
        timm_name: str,
        num_classes: int = 7,
        in_chans: int = 3,
        input_size: int = 48,
        head: str = "seed000",
        pool: str = "gap",
        faithful: bool = False,
        drop_rate: float = 0.0,
        **timm_kwargs: object,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        self.timm_name = timm_name
        self.backbone = create_timm_backbone(timm_name, in_chans, **timm_kwargs)
        c, h, w = feature_shape(self.backbone, in_chans, input_size)
        if pool == "gap":
            self.pool: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            n_feat = c
        else:
            self.pool = nn.Flatten()
            n_feat = c * h * w
        self.num_features = n_feat
        self.head = make_head(head, n_feat, num_classes, drop_rate)
        if faithful:
            keras_faithful_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` → backbone map ``(B, C, h, w)``."""
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.forward_features(x)))


def _build(
    timm_name: str,
    num_classes: int,
    in_chans: int,
    input_size: int,
    head: str | None,
    pool: str | None,
    faithful: bool,
    drop_rate: float,
) -> BackboneClassifier:
    return BackboneClassifier(
        timm_name, num_classes, in_chans, input_size, head=head or "seed000", pool=pool or "gap",
        faithful=faithful, drop_rate=drop_rate,
    )


# VGG16 @48: Keras code uses Flatten (1×1 map, so = GAP); @224 GAP is the intended default (docs/protocol.md §1.8).
def _vgg_pool(pool: str | None, input_size: int) -> str:
    return pool or ("flatten" if input_size < 64 else "gap")


_VGG16 = {48: 14_879_815, 224: 14_879_815}
_VGG19 = {48: 20_189_511, 224: 20_189_511}


@register_model(paper="000", target_layer="backbone.features.23", sizes=(48, 224), expected_params=_VGG16)
def vgg16(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """VGG16 conv stack + seed-000 head (seed 000's VGG16-IN / -VF / -SC differ only in their weights)."""
    pool = _vgg_pool(pool, input_size)
    return _build("vgg16", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


# Seed 000's three VGG16 rows are one network with three initialisations (docs/protocol.md §2.1).
register_alias("vgg16_in", "vgg16", description="VGG16 + seed-000 head (ImageNet init in the paper)")
register_alias("vgg16_vf", "vgg16", description="VGG16 + seed-000 head (VGGFace weights in the paper; --init file:PATH)")
register_alias("vgg16_sc", "vgg16", description="VGG16 + seed-000 head from scratch (random, still frozen in phase 1)")


@register_model(
    paper="000", target_layer="backbone.features.29", sizes=(48, 224), expected_params=_VGG19
)
def vgg19(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """VGG19 conv stack + seed-000 head."""
    pool = _vgg_pool(pool, input_size)
    return _build("vgg19", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.blocks.3",
    sizes=(48, 224),
    expected_params={48: 3_503_175, 224: 3_503_175},
)
def mobilenet(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """MobileNet v1 α=1 (timm ``mobilenetv1_100``; Keras uses ReLU6) + seed-000 head."""
    return _build("mobilenetv1_100", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.blocks.3",
    sizes=(48, 224),
    expected_params={48: 5_834_567, 224: 5_834_567},
)
def mobilenet_alt(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """MobileNet v1 + the "Simple"-notebook head GAP → 1024 → 1024 → 512 → C."""
    head = head or "alt1024"
    return _build("mobilenetv1_100", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.blocks.4",
    sizes=(48, 224),
    expected_params={48: 2_585_607, 224: 2_585_607},
)
def mobilenetv2(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """MobileNetV2 α=1 (timm ``mobilenetv2_100``) + seed-000 head (``head="alt1024"``: 5.11 M)."""
    return _build("mobilenetv2_100", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.blocks.3",
    sizes=(48, 224),
    expected_params={48: 6_220_439, 224: 6_220_439},
)
def efficientnetv2_b0(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """EfficientNetV2-B0 (timm ``tf_efficientnetv2_b0``, exact Keras port) + seed-000 head."""
    return _build("tf_efficientnetv2_b0", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.blocks.4",
    sizes=(48,),
    expected_params={48: 4_369_283},
)
def efficientnet_b0(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """EfficientNet-B0 v1 (timm ``tf_efficientnet_b0``; Cons FER/RAF "EfficientNet") + seed-000 head."""
    return _build("tf_efficientnet_b0", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.cell_7",
    sizes=(48, 224),
    expected_params={48: 4_537_369, 224: 4_537_369},
)
def nasnet_mobile(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """NASNet-A Mobile (timm NASNet-A cells, see :class:`NASNetAMobile`) + seed-000 head; no offline weights.

    The seed feeds NASNet's own ``preprocess_input`` ([-1, 1]): use preprocessing mean 0.5, std 0.5.
    """
    return _build("nasnetamobile", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


# ResNet50: Keras convs carry biases (+26 560 params): Keras trainable 24 092 935, timm 24 066 375 (-0.11 %).
@register_model(
    paper="000",
    target_layer="backbone.layer3",
    sizes=(48, 224),
    expected_params={48: 24_092_935, 224: 24_092_935},
)
def resnet50(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """ResNet-50 v1 (timm ``resnet50``; Keras 24.09 M has conv biases) + seed-000 head."""
    return _build("resnet50", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


# Seed 000's ResNet50-IN and ResNet50-VF are this network with ImageNet / VGGFace2 weights; the VGGFace2
# model (keras_vggface, no conv biases) has exactly timm's count and ran at 224 px only (docs/protocol.md §2.1).
register_alias("resnet50_in", "resnet50", description="ResNet-50 + seed-000 head (ImageNet init in the paper)")
register_alias(
    "resnet50_vf", "resnet50", input_size=224, sizes=(224,), expected_params={224: 24_066_375},
    description="ResNet-50 + seed-000 head (VGGFace2 weights in the paper, not in timm); 224 px only",
)


@register_model(
    paper="000",
    target_layer="backbone.layer3",
    sizes=(224,),
    expected_params={224: 26_597_367},
)
def senet50_vf(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 224,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """SE-ResNet-50 (timm ``seresnet50``; VGGFace2 weights not in timm) + seed-000 head; 224 px only."""
    return _build("seresnet50", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.features.denseblock3",
    sizes=(48, 224),
    expected_params={48: 7_250_055, 224: 7_250_055},
)
def densenet121(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """DenseNet-121 (timm ``densenet121``) + seed-000 head."""
    return _build("densenet121", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


@register_model(
    paper="000",
    target_layer="backbone.block11",
    sizes=(224,),
    expected_params={224: 21_365_295},
)
def xception(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 224,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """Xception (timm ``legacy_xception``, exact Keras count) + seed-000 head; Keras min input 71 px."""
    return _build("legacy_xception", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)


# InceptionV3: Keras BatchNorm has scale=False (no γ): Keras trainable 22 326 695, timm 22 343 911 (+0.08 %).
@register_model(
    paper="000",
    target_layer="backbone.Mixed_6e",
    sizes=(224,),
    expected_params={224: 22_326_695},
)
def inceptionv3(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 224,
    head: str | None = None,
    pool: str | None = None,
    faithful: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """Inception-v3 (timm ``inception_v3``; Keras BN has no γ: 22.33 M) + seed-000 head; min input 75 px."""
    return _build("inception_v3", num_classes, in_chans, input_size, head, pool, faithful, drop_rate)
