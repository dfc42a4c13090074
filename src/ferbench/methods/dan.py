"""DAN — Distract your Attention Network (Wen et al. 2021; surveyed in seed 004).

* Feature clustering network: the backbone map, trained with the **affinity loss** (squared distance of
  each pooled feature to its class center, divided by the centers' total variance — pulls classes
  together and pushes centers apart).
* Multi-head cross attention: ``num_heads`` heads, each a spatial unit (1×1 reduction, then 3×3 + 1×3 +
  3×1 convolutions summed, ReLU, summed over channels → spatial map that re-weights F) followed by a
  channel unit (GAP → FC D/16 → BN → ReLU → FC D → sigmoid) → ``(B, D)``.
* Attention fusion: heads ``(B, H, D)`` → log-softmax over heads → sum → FC → BN1d → logits. The
  **partition loss** ``log(1 + H / mean_d var_h)`` pushes heads onto different regions.
Total loss = CE + ``w_affinity``·L_af + ``w_partition``·L_pt (both 1 in the official code).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.methods.base import Batch, MethodModule, register_method
from ferbench.methods.common import backbone_features


def affinity_loss(feat: torch.Tensor, y: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """DAN's affinity loss. ``feat``: ``(B, D)``; ``y``: ``(B,)`` int64; ``centers``: ``(C, D)`` → scalar.

    ``L = Σ_i ‖f_i − c_{y_i}‖² / (B · Σ_d var_c(centers))`` (distances clamped to [1e-12, 1e12] as upstream).
    """
    dist = (feat - centers.index_select(0, y)).pow(2).sum(1)
    return dist.clamp(1e-12, 1e12).sum() / (feat.shape[0] * centers.var(dim=0).sum())


def partition_loss(heads: torch.Tensor) -> torch.Tensor:
    """``heads``: ``(B, H, D)`` → ``log(1 + H / mean(var over heads))``; 0 for a single head."""
    h = heads.shape[1]
    if h < 2:
        return heads.sum() * 0.0
    return torch.log1p(h / heads.var(dim=1).mean())


class SpatialAttention(nn.Module):
    """``(B, D, h, w)`` → ``(B, D, h, w)``: F scaled by a learned single-channel spatial map."""

    def __init__(self, d: int) -> None:
        super().__init__()
        mid = max(d // 2, 8)
        self.conv1x1 = nn.Sequential(nn.Conv2d(d, mid, 1), nn.BatchNorm2d(mid))
        self.conv3x3 = nn.Sequential(nn.Conv2d(mid, d, 3, padding=1), nn.BatchNorm2d(d))
        self.conv1x3 = nn.Sequential(nn.Conv2d(mid, d, (1, 3), padding=(0, 1)), nn.BatchNorm2d(d))
        self.conv3x1 = nn.Sequential(nn.Conv2d(mid, d, (3, 1), padding=(1, 0)), nn.BatchNorm2d(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(x)
        y = F.relu(self.conv3x3(y) + self.conv1x3(y) + self.conv3x1(y))
        return x * y.sum(dim=1, keepdim=True)


class ChannelAttention(nn.Module):
    """``(B, D, h, w)`` → ``(B, D)``: pooled feature scaled by a squeeze-excitation style gate."""

    def __init__(self, d: int) -> None:
        super().__init__()
        mid = max(d // 16, 8)
        self.gate = nn.Sequential(nn.Linear(d, mid), nn.BatchNorm1d(mid), nn.ReLU(inplace=True),
                                  nn.Linear(mid, d), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        return s * self.gate(s)


class CrossAttentionHead(nn.Module):
    """One DAN head: spatial then channel attention, ``(B, D, h, w)`` → ``(B, D)``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.spatial = SpatialAttention(d)
        self.channel = ChannelAttention(d)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.spatial(x))


class DAN(MethodModule):
    """DAN on a registry backbone.

    Args:
        backbone: registry model with a ``(B, D, h, w)`` feature map.
        num_classes: C.
        num_heads: cross-attention heads (4).
        w_affinity, w_partition: loss weights (1, 1).
    """

    method_name = "dan"

    def __init__(self, backbone: nn.Module, num_classes: int, num_heads: int = 4, w_affinity: float = 1.0,
                 w_partition: float = 1.0) -> None:
        super().__init__()
        self.trunk = backbone_features(backbone)
        d = self.trunk.num_features
        # attention heads + fusion classifier live under `head` (fine-tuning policies train `head`)
        self.head = nn.ModuleDict({"heads": nn.ModuleList([CrossAttentionHead(d) for _ in range(num_heads)]),
                                   "fc": nn.Linear(d, num_classes), "bn": nn.BatchNorm1d(num_classes)})
        self.centers = nn.Parameter(torch.randn(num_classes, d))
        self.w_affinity, self.w_partition = float(w_affinity), float(w_partition)
        self._log = {"dan_affinity": 0.0, "dan_partition": 0.0}
        self._n = 0

    @property
    def heads(self) -> nn.ModuleList:
        """The cross-attention heads, each ``(B, D, h, w)`` → ``(B, D)``."""
        return self.head["heads"]

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits (B, C), pooled feature (B, D), heads (B, H, D))``."""
        fmap = self.trunk(x)
        heads = torch.stack([h(fmap) for h in self.heads], dim=1)
        fused = F.log_softmax(heads, dim=1) if heads.shape[1] > 1 else heads
        logits = self.head["bn"](self.head["fc"](fused.sum(dim=1)))
        return logits, fmap.mean(dim=(2, 3)), heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)[0]

    def on_epoch_start(self, epoch: int) -> bool:
        self._log = {"dan_affinity": 0.0, "dan_partition": 0.0}
        self._n = 0
        return False

    def compute_loss(self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        logits, feat, heads = outputs
        y = batch.y
        af = affinity_loss(feat, y, self.centers)
        pt = partition_loss(heads)
        if self.training:
            self._log["dan_affinity"] += float(af.detach())
            self._log["dan_partition"] += float(pt.detach())
            self._n += 1
        ce = batch.cross_entropy(logits)
        return ce + self.w_affinity * af + self.w_partition * pt

    def epoch_log(self) -> dict[str, float]:
        return {k: v / max(self._n, 1) for k, v in self._log.items()}


@register_method("dan")
def build_dan(backbone: nn.Module, num_classes: int, **opts: Any) -> DAN:
    return DAN(backbone, num_classes, **opts)
