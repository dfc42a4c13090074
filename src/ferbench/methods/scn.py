"""SCN — Self-Cure Network (Wang et al. 2020; docs/protocol.md §3.3).

Pooled backbone feature f → classifier ``fc(f)`` and importance ``α = σ(att(f))``; output logits
``α·fc(f)``. Loss = CE(α·logits, stored label) + rank regularisation
``max(0, δ1 − (mean α_high − mean α_low))`` with the top ``⌊β·B⌋`` of the batch as the high group.
From ``relabel_epoch`` on, a sample whose ``max p − p[label] > δ2`` (p = softmax of the weighted
logits) has its stored training label overwritten by ``argmax p`` — for every sample
(``relabel="all"``, the official code) or only the low-importance group (``"low"``, the paper).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.base import Batch, MethodModule, register_method
from ferbench.methods.common import backbone_features


def rank_regularization(alpha: torch.Tensor, beta: float = 0.7, margin: float = 0.15
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """RR loss and the low-group mask.

    Args:
        alpha: ``(B,)`` importance weights in (0, 1).
        beta: share of the batch in the high-importance group (``⌊β·B⌋`` samples, at least 1).
        margin: δ1.

    Returns:
        ``(loss scalar, low (B,) bool mask)``; with fewer than 2 samples the loss is 0.
    """
    b = alpha.shape[0]
    k = min(max(int(beta * b), 1), b - 1) if b > 1 else b
    order = torch.argsort(alpha, descending=True)
    low = torch.ones(b, dtype=torch.bool, device=alpha.device)
    low[order[:k]] = False
    if b < 2:
        return alpha.sum() * 0.0, low
    diff = alpha[order[:k]].mean() - alpha[order[k:]].mean()
    return torch.clamp(margin - diff, min=0.0), low


def relabel(probs: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
            mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """New labels where ``max p − p[label] > margin`` (and ``mask``).

    Args:
        probs: ``(B, C)`` softmax probabilities.
        labels: ``(B,)`` int64 current labels.
        margin: δ2.
        mask: ``(B,)`` bool, samples allowed to change (None = all).

    Returns:
        ``(new_labels (B,) int64, changed (B,) bool)``.
    """
    pmax, amax = probs.max(1)
    pgt = probs.gather(1, labels[:, None]).squeeze(1)
    change = (pmax - pgt) > margin
    if mask is not None:
        change &= mask
    return torch.where(change, amax, labels), change


class SCN(MethodModule):
    """Self-Cure Network on a registry backbone.

    Args:
        backbone: registry model with a feature map (ResNet-18 default).
        num_classes: C.
        beta: high-group share (0.7). margin_1: δ1 (0.15). margin_2: δ2 (0.2).
        relabel_epoch: first (0-based) epoch that relabels (10). relabel: ``"all"`` | ``"low"``.
        drop_rate: dropout on the pooled feature (official 0).
    """

    method_name = "scn"

    def __init__(self, backbone: nn.Module, num_classes: int, beta: float = 0.7, margin_1: float = 0.15,
                 margin_2: float = 0.2, relabel_epoch: int = 10, relabel: str = "all",
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if relabel not in ("all", "low"):
            raise ConfigError(f"scn: relabel must be 'all' or 'low', not {relabel!r}")
        self.trunk = backbone_features(backbone)
        d = self.trunk.num_features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate))
        # the classification layers live under `head` (fine-tuning policies train `head`)
        self.head = nn.ModuleDict({"fc": nn.Linear(d, num_classes),
                                   "attention": nn.Sequential(nn.Linear(d, 1), nn.Sigmoid())})
        self.beta, self.margin_1, self.margin_2 = float(beta), float(margin_1), float(margin_2)
        self.relabel_epoch, self.relabel_mode = int(relabel_epoch), relabel
        # training labels (may be overwritten); not persistent: checkpoints stay dataset-independent
        self.register_buffer("labels", torch.zeros(0, dtype=torch.int64), persistent=False)
        self.register_buffer("orig_labels", torch.zeros(0, dtype=torch.int64), persistent=False)
        self._relabelled_epoch = 0
        self._alpha_sum = 0.0
        self._alpha_n = 0

    @property
    def fc(self) -> nn.Module:
        """Classifier ``(B, D)`` → ``(B, C)``."""
        return self.head["fc"]

    @property
    def attention(self) -> nn.Module:
        """Importance ``(B, D)`` → ``(B, 1)`` in (0, 1)."""
        return self.head["attention"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` → pooled ``(B, D)``."""
        return self.pool(self.trunk(x))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weighted logits α·fc(f) (B, C), alpha (B,))``."""
        f = self.features(x)
        alpha = self.attention(f).squeeze(1)
        return alpha[:, None] * self.fc(f), alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)[0]

    def on_train_start(self, train_labels: torch.Tensor) -> None:
        lab = torch.as_tensor(train_labels, dtype=torch.int64).to(self.fc.weight.device)
        self.labels = lab.clone()
        self.orig_labels = lab.clone()

    def on_epoch_start(self, epoch: int) -> bool:
        self._relabelled_epoch, self._alpha_sum, self._alpha_n = 0, 0.0, 0
        return False

    def compute_loss(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        """CE on the stored (possibly relabelled) labels + RR; relabels in place from ``relabel_epoch``."""
        logits, alpha = outputs
        index = batch.index
        y = batch.y
        have_store = index is not None and self.labels.numel() > 0
        if have_store:
            y = self.labels[index.to(self.labels.device)].to(logits.device)
        rr, low = rank_regularization(alpha, self.beta, self.margin_1)
        # relabelled hard labels replace the target; soft targets (label distributions, mixing) are kept as is
        loss = batch.cross_entropy(logits, labels=y if have_store and not batch.soft else None) + rr
        epoch = batch.epoch
        if self.training:
            self._alpha_sum += float(alpha.detach().sum())
            self._alpha_n += int(alpha.shape[0])
        if self.training and have_store and epoch >= self.relabel_epoch:
            with torch.no_grad():
                mask = low if self.relabel_mode == "low" else None
                new, changed = relabel(logits.softmax(1), y, self.margin_2, mask)
                if changed.any():
                    self.labels[index[changed].to(self.labels.device)] = new[changed].to(self.labels.device)
                    self._relabelled_epoch += int(changed.sum())
        return loss

    def epoch_log(self) -> dict[str, float]:
        differ = int((self.labels != self.orig_labels).sum()) if self.labels.numel() else 0
        return {"scn_relabelled": float(self._relabelled_epoch), "scn_labels_changed": float(differ),
                "scn_alpha_mean": self._alpha_sum / max(self._alpha_n, 1)}


@register_method("scn")
def build_scn(backbone: nn.Module, num_classes: int, **opts: Any) -> SCN:
    return SCN(backbone, num_classes, **opts)
