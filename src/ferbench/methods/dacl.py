"""DACL — Deep Attentive Center Loss (Farzaneh & Qi 2021; docs/protocol.md §3.4).

Backbone map F → pooled feature f (``(B, D)``) → classifier. An attention network on F produces
per-dimension weights A ∈ (0, 1)^D. Sparse center loss
``L_SC = 1/(2B) Σ_i Σ_d A_id (f_id − c_{y_i,d})²`` with the official custom gradients
(∂/∂f = A⊙(f−c)/B, ∂/∂A = (f−c)²/(2B)) and centers moved by their own update
``c_j ← c_j + α Σ_{i:y_i=j} A_i⊙(f_i−c_j)/(1+n_j)`` (not by the model optimiser — the seed-001 bug).
Total loss = CE + λ·L_SC (λ 0.01, α 0.5).

The official attention MLP takes flatten(F) = 512·7·7 = 25 088 inputs at 224 px; here F is first
average-pooled to ``attn_grid×attn_grid`` (3 → 512·3·3 = 4 608 inputs, the 96-px size; set 7 for 224 px).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.methods.base import Batch, MethodModule, register_method
from ferbench.methods.common import backbone_features


class SparseCenterLossFn(torch.autograd.Function):
    """``L = 1/(2B) Σ A (f − C[y])²`` with DACL's gradients for f and A (none for the centers)."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, a: torch.Tensor, centers: torch.Tensor,  # type: ignore[override]
                y: torch.Tensor) -> torch.Tensor:
        diff = f - centers.index_select(0, y)
        ctx.save_for_backward(diff, a)
        return (a * diff.pow(2)).sum() / (2.0 * f.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        diff, a = ctx.saved_tensors
        b = diff.shape[0]
        return grad * a * diff / b, grad * diff.pow(2) / (2.0 * b), None, None


def sparse_center_loss(f: torch.Tensor, a: torch.Tensor, centers: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sparse center loss (scalar). ``f``, ``a``: ``(B, D)`` float; ``centers``: ``(C, D)``; ``y``: ``(B,)`` int64."""
    return SparseCenterLossFn.apply(f, a, centers, y)


@torch.no_grad()
def center_delta(f: torch.Tensor, a: torch.Tensor, centers: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Δc_j = Σ_{i:y_i=j} A_i⊙(f_i − c_j) / (1 + n_j)``: ``(C, D)`` (zero rows for absent classes)."""
    diff = a * (f - centers.index_select(0, y))
    num = torch.zeros_like(centers).index_add_(0, y, diff)
    n = torch.bincount(y, minlength=centers.shape[0]).to(centers.dtype)
    return num / (1.0 + n)[:, None]


class DACL(MethodModule):
    """DACL on a registry backbone.

    Args:
        backbone: registry model with a ``(B, D, h, w)`` feature map.
        num_classes: C.
        lamb: λ, weight of the sparse center loss (0.01).
        alpha: center update rate α (0.5).
        attn_grid: side of the pooled map the attention MLP sees (3 ↔ 96 px ResNet-18; 7 ↔ 224 px).
        hidden: widths of the attention MLP (official 3584, 512, 64).
    """

    method_name = "dacl"

    def __init__(self, backbone: nn.Module, num_classes: int, lamb: float = 0.01, alpha: float = 0.5,
                 attn_grid: int = 3, hidden: tuple[int, int, int] | list[int] = (3584, 512, 64)) -> None:
        super().__init__()
        self.trunk = backbone_features(backbone)
        d = self.trunk.num_features
        self.num_classes, self.lamb, self.alpha = num_classes, float(lamb), float(alpha)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        h1, h2, h3 = hidden
        self.attn_pool = nn.Sequential(nn.AdaptiveAvgPool2d(attn_grid), nn.Flatten())
        attention = nn.Sequential(
            nn.Linear(d * attn_grid * attn_grid, h1), nn.BatchNorm1d(h1), nn.ReLU(inplace=True),
            nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(inplace=True),
            nn.Linear(h2, h3), nn.BatchNorm1d(h3), nn.Tanh(),
            nn.Linear(h3, 2 * d),
        )
        for m in attention:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # the classification layers live under `head` (fine-tuning policies train `head`)
        self.head = nn.ModuleDict({"fc": nn.Linear(d, num_classes), "attention": attention})
        self.register_buffer("centers", nn.init.kaiming_normal_(torch.empty(num_classes, d)))
        self._sc_sum, self._sc_n = 0.0, 0

    @property
    def fc(self) -> nn.Module:
        """Classifier ``(B, D)`` → ``(B, C)``."""
        return self.head["fc"]

    @property
    def attention(self) -> nn.Module:
        """Attention MLP ``(B, D·g·g)`` → ``(B, 2D)``."""
        return self.head["attention"]

    def attention_weights(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` → A ``(B, D)`` in (0, 1): softmax over a pair per dimension, second component."""
        z = self.attention(self.attn_pool(fmap)).view(fmap.shape[0], -1, 2)
        return z.softmax(-1)[..., 1]

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits (B, C), f (B, D), A (B, D))``."""
        fmap = self.trunk(x)
        f = self.pool(fmap)
        return self.fc(f), f, self.attention_weights(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.trunk(x)))

    def on_epoch_start(self, epoch: int) -> bool:
        self._sc_sum, self._sc_n = 0.0, 0
        return False

    def compute_loss(self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        """CE + λ·L_SC; in training mode also moves the centers (own update, rate α)."""
        logits, f, a = outputs
        y = batch.y
        centers = self.centers.to(f.dtype)
        sc = sparse_center_loss(f, a, centers, y)
        if self.training:
            self.centers.add_(self.alpha * center_delta(f.detach(), a.detach(), centers, y).to(self.centers.dtype))
            self._sc_sum += float(sc.detach())
            self._sc_n += 1
        ce = batch.cross_entropy(logits)
        return ce + self.lamb * sc

    def epoch_log(self) -> dict[str, float]:
        return {"dacl_center_loss": self._sc_sum / max(self._sc_n, 1)}


@register_method("dacl")
def build_dacl(backbone: nn.Module, num_classes: int, **opts: Any) -> DACL:
    return DACL(backbone, num_classes, **opts)
