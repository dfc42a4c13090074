"""Seed 000 custom networks, written from docs/protocol.md §2.2–2.16 (all trained from scratch).

Every model maps ``(B, in_chans, S, S)`` float → ``(B, num_classes)`` logits and exposes its final
classification layers as ``head``. Dense-layer widths after a Flatten are sized from ``input_size``
(a dry run on the meta device), so the 224-px variants of docs/protocol.md §2.17 build from the same code.
``faithful=True`` applies Keras BN eps/momentum and Keras initialisers (Glorot-uniform, or the
layer's own ``kernel_initializer`` where the notebooks set one).
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ferbench.models.init import keras_faithful_, relu_init_
from ferbench.models.registry import register_model
from ferbench.models.seed000_keras import create_timm_backbone


# --------------------------------------------------------------------------------------------- helpers
def conv(
    cin: int,
    cout: int,
    k: int,
    stride: int = 1,
    same: bool = True,
    bias: bool = True,
    keras_init: str | None = None,
) -> nn.Conv2d:
    """k×k conv; ``same`` = Keras "same" (symmetric pad k//2; equal output size for odd k), else "valid"."""
    c = nn.Conv2d(cin, cout, k, stride, padding=k // 2 if same else 0, bias=bias)
    if keras_init:
        c.keras_init = keras_init  # type: ignore[assignment]
    return c


def relu() -> nn.ReLU:
    return nn.ReLU(inplace=True)


def flat_features(features: nn.Module, in_chans: int, input_size: int) -> int:
    """Length of ``Flatten(features(x))`` for one ``(1, in_chans, S, S)`` input (meta device, no compute)."""
    from copy import deepcopy

    meta = deepcopy(features).to("meta").eval()
    with torch.no_grad():
        out = meta(torch.zeros(1, in_chans, input_size, input_size, device="meta"))
    return int(out[0].numel())


def _finish(model: nn.Module, faithful: bool, deep_relu: bool = False) -> nn.Module:
    """Keras initialisers when ``faithful``; else PyTorch's defaults, or :func:`relu_init_` for the ``deep_relu``
    nets (many convolutions without BN: from PyTorch's defaults their logits ignore the input, docs/protocol.md §0.2)."""
    if faithful:
        return keras_faithful_(model)
    if deep_relu:
        relu_init_(model)
        model.init_scheme = "relu_init"  # read by benchmarks/init_signal.py
    return model


class FeaturesHead(nn.Module):
    """``features`` (conv stack) → ``head`` (pool/flatten + dense layers). The common custom-net shape."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ---------------------------------------------------------------------------- docs/protocol.md §2.2
class ResNet18DD(nn.Module):
    """timm ResNet-18 trunk with a CIFAR stem at 48 px (3×3/1, no max-pool) or the ImageNet stem at 224,
    then GAP → Dr 0.2 → D1024 ReLU → Dr 0.5 → D(C).
    """

    def __init__(self, num_classes: int, in_chans: int, input_size: int, stem: str = "auto") -> None:
        super().__init__()
        self.backbone = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=in_chans)
        cifar = stem == "cifar" or (stem == "auto" and input_size < 112)
        if cifar:
            self.backbone.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.backbone.maxpool = nn.Identity()
        self.head = nn.Sequential(
            nn.Dropout(0.2), nn.Linear(512, 1024), relu(), nn.Dropout(0.5), nn.Linear(1024, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@register_model(paper="000",
    target_layer="backbone.layer3",
    sizes=(48, 224),
    expected_params={48: 11_701_319, 224: 11_708_999},
)
def resnet18_dd(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    stem: str = "auto",
    faithful: bool = False,
) -> nn.Module:
    """ResNet18 + Dropout + Dense (CIFAR stem below 112 px, ImageNet stem at 224)."""
    return _finish(ResNet18DD(num_classes, in_chans, input_size, stem), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.3
class RepVGGRepoBlock(nn.Module):
    """C3(s,nb)-BN-ReLU-C3(nb)-BN + (identity | 1×1/s conv nb, no BN); no activation after the sum."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(cin, cout, 3, stride, bias=False),
            nn.BatchNorm2d(cout),
            relu(),
            conv(cout, cout, 3, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = nn.Identity() if stride == 1 and cin == cout else conv(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


class HalfStopGrad(nn.Module):
    """Identity forward; gradient flows only through the first half of the channels (repo quirk)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[1] // 2
        return torch.cat([x[:, :h], x[:, h:].detach()], dim=1)


_REPVGG_REPO = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (512, 2)] + [(512, 1)] * 4


def _repvgg_repo(num_classes: int, in_chans: int, partial_stop_grad: bool) -> nn.Module:
    layers: list[nn.Module] = [conv(in_chans, 64, 3, 2), nn.BatchNorm2d(64), relu()]
    cin = 64
    for i, (cout, s) in enumerate(_REPVGG_REPO):
        if i and partial_stop_grad:
            layers.append(HalfStopGrad())
        layers.append(RepVGGRepoBlock(cin, cout, s))
        cin = cout
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
    return FeaturesHead(nn.Sequential(*layers), head)


@register_model(paper="000",
    target_layer="features.9",
    sizes=(48, 224),
    expected_params={48: 26_439_303, 224: 26_439_303},
)
def repvgg_repo(
    num_classes: int = 7,
    in_chans: int = 3,
    input_size: int = 48,
    partial_stop_grad: bool = False,
    faithful: bool = False,
) -> nn.Module:
    """The repo's "create_repvgg_a0" (plain 2-conv residual blocks, not real RepVGG); 26.4 M params."""
    return _finish(_repvgg_repo(num_classes, in_chans, partial_stop_grad), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.4
class RepoInception(nn.Module):
    """Inception module read in the repo's order f=[a,b,c,d,e,g]: 1×1(a)→3×3(b) | 1×1(c)→5×5(d) |
    MP3/1→1×1(e) | 1×1(g); concat → b+d+e+g channels. ReLU after every conv, no BN."""

    def __init__(self, cin: int, f: list[int]) -> None:
        super().__init__()
        a, b, c, d, e, g = f
        self.t1 = nn.Sequential(conv(cin, a, 1), relu(), conv(a, b, 3), relu())
        self.t2 = nn.Sequential(conv(cin, c, 1), relu(), conv(c, d, 5), relu())
        self.t3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(cin, e, 1), relu())
        self.t4 = nn.Sequential(conv(cin, g, 1), relu())
        self.out_chans = b + d + e + g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.t1(x), self.t2(x), self.t3(x), self.t4(x)], dim=1)


_GOOGLENET_F = [
    [64, 96, 128, 16, 32, 32],
    [128, 128, 192, 32, 96, 64],
    [192, 96, 208, 16, 48, 64],
    [160, 112, 224, 24, 64, 64],
    [128, 128, 256, 24, 64, 64],
    [112, 144, 288, 32, 64, 64],
    [256, 160, 320, 32, 128, 128],
    [256, 160, 320, 32, 128, 128],
    [384, 192, 384, 48, 128, 128],
]


def _googlenet_repo(num_classes: int, in_chans: int, input_size: int) -> nn.Module:
    small = input_size < 112
    if small:
        layers: list[nn.Module] = [conv(in_chans, 64, 3), relu(), nn.MaxPool2d(2, 2, ceil_mode=True)]
        pool_after = {1, 3, 6}
    else:
        layers = [conv(in_chans, 64, 7, 2), relu(), nn.MaxPool2d(3, 2, 1)]
        pool_after = {1, 6}
    layers += [
        conv(64, 64, 1),
        relu(),
        conv(64, 192, 3),
        relu(),
        nn.MaxPool2d(2, 2, ceil_mode=True) if small else nn.MaxPool2d(3, 2, 1),
    ]
    cin = 192
    for i, f in enumerate(_GOOGLENET_F):
        m = RepoInception(cin, f)
        layers.append(m)
        cin = m.out_chans
        if i in pool_after:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True) if small else nn.MaxPool2d(3, 2, 1))
    pool = nn.AdaptiveAvgPool2d(1) if small else nn.AvgPool2d(7, 1)
    head = nn.Sequential(pool, nn.Flatten(), nn.Dropout(0.4), nn.Linear(cin, num_classes))
    return FeaturesHead(nn.Sequential(*layers), head)


@register_model(paper="000",
    target_layer="features.12",
    sizes=(48, 224),
    expected_params={48: 5_909_319, 224: 5_916_999},
)
def googlenet_repo(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """The repo's GoogLeNet (non-standard module order, no BN/aux heads); 3×3 stem below 112 px; He init
    unless ``faithful`` (57 convolutions without BN)."""
    return _finish(_googlenet_repo(num_classes, in_chans, input_size), faithful, deep_relu=True)


# ---------------------------------------------------------------------------- docs/protocol.md §2.5
@register_model(paper="000",
    target_layer="features.23",
    sizes=(48, 224),
    expected_params={48: 33_625_927, 224: 134_289_223},
)
def vggnet(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """VGG16 conv stack (timm ``vgg16`` features) → Flatten → D4096 → D4096 → D(C), no dropout."""
    features = create_timm_backbone("vgg16", in_chans).features
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 4096), relu(), nn.Linear(4096, 4096), relu(), nn.Linear(4096, num_classes)
    )
    return _finish(FeaturesHead(features, head), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.6
@register_model(paper="000", target_layer="features.4", sizes=(48,), expected_params={48: 21_611_079}
)
def alexnet(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Seed-000 AlexNet (BN after pools, GAP) → D4096 → Dr → D4096 → Dr → D(C)."""
    features = nn.Sequential(
        conv(in_chans, 96, 11, 4, same=False),
        relu(),
        nn.MaxPool2d(3, 2),
        nn.BatchNorm2d(96),
        conv(96, 256, 5),
        relu(),
        nn.MaxPool2d(3, 2),
        nn.BatchNorm2d(256),
        conv(256, 384, 3),
        relu(),
        conv(384, 384, 3),
        relu(),
        conv(384, 256, 3),
        relu(),
        nn.MaxPool2d(3, 2, 1),
        nn.BatchNorm2d(256),
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, 4096),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )
    return _finish(FeaturesHead(features, head), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.7
@register_model(paper="000", target_layer="features.3", sizes=(48,), expected_params={48: 21_589_127}
)
def zf_net(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """ZF-Net (7×7/2 valid stem, U(±0.05) init in faithful mode) → D4096 → Dr → D4096 → Dr → D(C)."""
    features = nn.Sequential(
        conv(in_chans, 96, 7, 2, same=False, keras_init="uniform"),
        relu(),
        nn.MaxPool2d(2),
        conv(96, 256, 5, 2),
        relu(),
        nn.MaxPool2d(2),
        conv(256, 384, 3),
        relu(),
        conv(384, 384, 3),
        relu(),
        conv(384, 256, 3),
        relu(),
        nn.MaxPool2d(2),
    )
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(n, 4096),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )
    return _finish(FeaturesHead(features, head), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.8
@register_model(paper="000", target_layer="features.17", sizes=(48,), expected_params={48: 18_328_455}
)
def mnist_net(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """MNIST_NET: 11 "same" convs (3×3 / 1×1) with 3 max-pools → Flatten → D1024 → D1024 → D(C); He init
    unless ``faithful`` (no BN)."""
    spec: list[tuple[int, int] | str] = [
        (96, 3),
        (128, 3),
        (128, 1),
        "M",
        (256, 3),
        (256, 1),
        "M",
        (512, 3),
        (512, 3),
        (256, 1),
        "M",
        (512, 3),
        (512, 3),
        (256, 1),
    ]
    layers: list[nn.Module] = []
    cin = in_chans
    for s in spec:
        if s == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        cout, k = s  # type: ignore[misc]
        layers += [conv(cin, cout, k, keras_init="uniform" if not layers else None), relu()]
        cin = cout
    features = nn.Sequential(*layers)
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(n, 1024),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(1024, 1024),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )
    return _finish(FeaturesHead(features, head), faithful, deep_relu=True)


# ---------------------------------------------------------------------------- docs/protocol.md §2.9
@register_model(paper="000", target_layer="features.0", sizes=(48,), expected_params={48: 169_271}
)
def lenet5(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """LeNet-5: C5 6 → MP → C5 16 → MP → Flatten → D120 → D84 → D(C)."""
    features = nn.Sequential(
        conv(in_chans, 6, 5, same=False),
        relu(),
        nn.MaxPool2d(2),
        conv(6, 16, 5, same=False),
        relu(),
        nn.MaxPool2d(2),
    )
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 120), relu(), nn.Linear(120, 84), relu(), nn.Linear(84, num_classes)
    )
    return _finish(FeaturesHead(features, head), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.10–2.12
def _seq_trunk(in_chans: int) -> list[nn.Module]:
    return [
        conv(in_chans, 32, 3),
        relu(),
        conv(32, 64, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        conv(64, 128, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        conv(128, 128, 3, same=False),
        relu(),
        nn.Dropout(0.25),
    ]


@register_model(paper="000",
    target_layer="features.9",
    sizes=(48, 224),
    expected_params={48: 1_364_679, 224: 1_364_679},
)
def seq3conv(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Sequential 3Conv ("Model 9"): 5 convs, ReLU→BN on the 512 conv, GAP → D1024 → Dr → D(C)."""
    features = nn.Sequential(
        *_seq_trunk(in_chans),
        conv(128, 512, 3),
        relu(),
        nn.BatchNorm2d(512),
        nn.MaxPool2d(2),
        nn.Dropout(0.2),
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 1024),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )
    return _finish(FeaturesHead(features, head), faithful)


@register_model(paper="000", target_layer="features.9", sizes=(48,), expected_params={48: 2_839_751}
)
def seq4conv(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Sequential 4Conv ("Model 10"): 7 convs, one pool after the 256s, Flatten → D1024 → Dr → D(C)."""
    features = nn.Sequential(
        *_seq_trunk(in_chans),
        conv(128, 256, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        conv(256, 256, 3, same=False),
        relu(),
        nn.Dropout(0.25),
        conv(256, 512, 3),
        relu(),
        nn.BatchNorm2d(512),
        nn.Dropout(0.2),
    )
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 1024), relu(), nn.Dropout(0.5), nn.Linear(1024, num_classes)
    )
    return _finish(FeaturesHead(features, head), faithful)


@register_model(paper="000",
    target_layer="features.5",
    sizes=(48, 224),
    expected_params={48: 2_489_671, 224: 88_997_191},
)
def seq_simple(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Sequential Simple: 4 valid convs, 3 pools → Flatten → D512 → Dr 0.2 → D(C)."""
    features = nn.Sequential(
        conv(in_chans, 32, 3, same=False),
        relu(),
        conv(32, 64, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        nn.Dropout(0.1),
        conv(64, 128, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        nn.Dropout(0.1),
        conv(128, 256, 3, same=False),
        relu(),
        nn.MaxPool2d(2),
        nn.Dropout(0.1),
    )
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 512), relu(), nn.Dropout(0.2), nn.Linear(512, num_classes)
    )
    return _finish(FeaturesHead(features, head), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.13
def _ens_sub(in_chans: int, widths: tuple[int, int, int], num_classes: int) -> FeaturesHead:
    layers: list[nn.Module] = []
    cin = in_chans
    for w in widths:
        layers += [
            conv(cin, w, 3),
            nn.BatchNorm2d(w),
            relu(),
            conv(w, w, 3),
            nn.BatchNorm2d(w),
            relu(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        ]
        cin = w
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(cin, 512),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )
    return FeaturesHead(nn.Sequential(*layers), head)


class Ensemble3(nn.Module):
    """Three sub-CNNs (``branches.i.features`` → ``branches.i.head``) on the same input.

    ``forward`` returns ``log(mean softmax)`` (B, C): softmax of it is the averaged probability and
    cross-entropy on it is the Keras loss (CE on the mean).
    """

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [
                _ens_sub(in_chans, (32, 64, 128), num_classes),
                _ens_sub(in_chans, (32, 64, 128), num_classes),
                _ens_sub(in_chans, (64, 128, 256), num_classes),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(b(x), dim=1) for b in self.branches]).mean(0)
        return torch.log(probs.clamp_min(1e-12))


@register_model(paper="000",
    target_layer="branches.2.features.16",
    sizes=(48, 224),
    expected_params={48: 1_997_461, 224: 1_997_461},
)
def ensemble3(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Seed-000 "Ensemble": one network of 3 sub-CNNs whose softmaxes are averaged."""
    return _finish(Ensemble3(num_classes, in_chans), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.14
class Modular(nn.Module):
    """Local (3×3) and global (5×5) sub-networks → concat(256 + 256) → ``head`` D(C)."""

    def __init__(self, num_classes: int, in_chans: int, input_size: int) -> None:
        super().__init__()
        self.local = self._branch(in_chans, 3, input_size)
        self.globl = self._branch(in_chans, 5, input_size)
        self.head = nn.Linear(512, num_classes)

    @staticmethod
    def _branch(in_chans: int, k: int, input_size: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        cin = in_chans
        for w in (32, 64, 128):
            layers += [conv(cin, w, k), relu(), nn.MaxPool2d(2)]
            cin = w
        n = flat_features(nn.Sequential(*layers), in_chans, input_size)
        return nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(n, 512),
            relu(),
            nn.Dropout(0.5),
            nn.Linear(512, 256),
            relu(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.local(x), self.globl(x)], dim=1))


@register_model(paper="000",
    target_layer="local.6",
    sizes=(48, 224),
    expected_params={48: 5_337_735, 224: 103_379_591},
)
def modular(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """Modular NN ("MNN"): local 3×3 + global 5×5 conv branches, concatenated."""
    return _finish(Modular(num_classes, in_chans, input_size), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.15
class KerasMHA(nn.Module):
    """Keras ``MultiHeadAttention(num_heads, key_dim)`` self-attention: Q/K/V project E→h·d, output h·d→E.

    ``nn.MultiheadAttention`` cannot express key_dim ≠ E/h, hence this small module.
    Input/output ``(B, T, E)``.
    """

    def __init__(self, embed: int, num_heads: int = 4, key_dim: int = 32) -> None:
        super().__init__()
        self.h, self.d = num_heads, key_dim
        self.q = nn.Linear(embed, num_heads * key_dim)
        self.k = nn.Linear(embed, num_heads * key_dim)
        self.v = nn.Linear(embed, num_heads * key_dim)
        self.out = nn.Linear(num_heads * key_dim, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.h, self.d).transpose(1, 2) for p in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, t, self.h * self.d))


class SMMB(nn.Module):
    """Single-model multi-branch: shared convs → (A: conv + dense 64) ‖ (B: convs + MHA over spatial tokens
    → LayerNorm → token-wise D128 → Flatten) → concat → ``head`` D(C)."""

    def __init__(self, num_classes: int, in_chans: int, input_size: int) -> None:
        super().__init__()
        self.shared = nn.Sequential(
            conv(in_chans, 32, 3), relu(), conv(32, 64, 3), relu(), conv(64, 64, 3), relu()
        )
        a_conv = nn.Sequential(nn.MaxPool2d(2), conv(64, 128, 3), relu())
        na = flat_features(a_conv, 64, input_size)
        self.branch_a = nn.Sequential(a_conv, nn.Flatten(), nn.Linear(na, 64), relu())
        self.branch_b = nn.Sequential(
            conv(64, 128, 3), relu(), nn.MaxPool2d(2), conv(128, 256, 3), relu(), nn.MaxPool2d(2)
        )
        self.attn = KerasMHA(256, 4, 32)
        self.norm = nn.LayerNorm(256, eps=1e-3)
        self.token_fc = nn.Sequential(nn.Linear(256, 128), relu(), nn.Dropout(0.5))
        tokens = (input_size // 4) ** 2
        self.head = nn.Linear(64 + tokens * 128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shared(x)
        a = self.branch_a(s)
        t = self.branch_b(s).flatten(2).transpose(1, 2)  # (B, T, 256)
        t = self.token_fc(self.norm(self.attn(t))).flatten(1)
        return self.head(torch.cat([a, t], dim=1))


@register_model(paper="000", target_layer="branch_b.3", sizes=(48,), expected_params={48: 5_512_455}
)
def smmb(
    num_classes: int = 7, in_chans: int = 3, input_size: int = 48, faithful: bool = False
) -> nn.Module:
    """SMMB: shared convs, a dense branch and a self-attention branch (custom Keras-style MHA)."""
    return _finish(SMMB(num_classes, in_chans, input_size), faithful)


# ---------------------------------------------------------------------------- docs/protocol.md §2.16
@register_model(paper="000",
    in_chans=1,
    target_layer="features.21",
    sizes=(48, 224),
    expected_params={48: 7_050_439, 224: 93_557_959},
)
def mediapipe_vggnet(
    num_classes: int = 7,
    in_chans: int = 1,
    input_size: int = 48,
    faithful: bool = False,
    rescale: bool = False,
) -> nn.Module:
    """The plain grey CNN of "Mediapipe + VGGNet" (MediaPipe only finds faces at inference; not needed here).

    4 blocks [conv-ReLU-BN ×2, MP, Dr] (first conv valid, He-normal in faithful mode) → Flatten → D1024 → Dr
    → D256 → D(C). ``rescale=True`` multiplies the input by 1/255 (Keras ``Rescaling``) for raw 0–255 input.
    """
    layers: list[nn.Module] = [_Rescale()] if rescale else []
    cin = in_chans
    for i, (w, p) in enumerate(((64, 0.5), (128, 0.4), (256, 0.5), (512, 0.4))):
        layers += [
            conv(cin, w, 3, same=i > 0, keras_init="he_normal"),
            relu(),
            nn.BatchNorm2d(w),
            conv(w, w, 3, keras_init="he_normal"),
            relu(),
            nn.BatchNorm2d(w),
            nn.MaxPool2d(2),
            nn.Dropout(p),
        ]
        cin = w
    features = nn.Sequential(*layers)
    n = flat_features(features, in_chans, input_size)
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(n, 1024),
        relu(),
        nn.Dropout(0.5),
        nn.Linear(1024, 256),
        relu(),
        nn.Linear(256, num_classes),
    )
    return _finish(FeaturesHead(features, head), faithful)


class _Rescale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / 255.0)
