"""ESR training — Ensembles with Shared Representations (Siqueira et al. 2020; docs/protocol.md §3.2).

The network (:class:`ferbench.models.esr.ESRNet`) lives in the model zoo; this method trains it: the loss is the
sum of the active branches' cross-entropies, and with ``epochs_per_branch`` the ensemble grows by one branch every
that many epochs (the official code's schedule), the base and older branches then training at
``lr · old_lr_factor``. ``build_method("esr", backbone)`` also builds the same ensemble over any registry
backbone's feature map (shared base = backbone trunk, branch = conv-BN-ReLU → GAP → FC).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.base import Batch, MethodModule, register_method
from ferbench.methods.common import backbone_features
from ferbench.models.esr import ESRNet, _cbr, majority_vote, vote_counts

__all__ = ["ESR", "ESRNet", "FeatureBranch", "build_esr", "majority_vote", "vote_counts"]


class FeatureBranch(nn.Module):
    """Generic branch on a backbone map: conv3×3 D→width, BN, ReLU, GAP, FC → ``(B, C)``."""

    def __init__(self, in_features: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(in_features, width, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


class ESR(ESRNet, MethodModule):
    """An :class:`ESRNet` with the trainer hooks (same modules and state-dict keys as the network).

    Args:
        base, branches, num_classes, predict: as :class:`ESRNet`.
        start_branches: branches active at the start of training (default: 1 with a growing schedule, as
            the official code, else all N).
        epochs_per_branch: add one branch every this many epochs (0 = never grow).
        old_lr_factor: LR multiplier for the base and earlier branches after growing (official 0.1;
            seed 001's variant uses 1.0).
    """

    method_name = "esr"

    def __init__(self, base: nn.Module, branches: list[nn.Module], num_classes: int, predict: str = "vote",
                 start_branches: int | None = None, epochs_per_branch: int = 0, old_lr_factor: float = 0.1) -> None:
        n = len(branches)
        if start_branches is None:  # grow from one branch when there is a schedule, else use all
            start_branches = 1 if epochs_per_branch > 0 else n
        if not 1 <= int(start_branches) <= n:
            raise ConfigError(f"esr: start_branches must be in 1..{n}, not {start_branches}")
        super().__init__(base, branches, num_classes, predict=predict, active=int(start_branches))
        self.epochs_per_branch = int(epochs_per_branch)
        self.start_branches = int(start_branches)
        self.old_lr_factor = float(old_lr_factor)
        self._grown_at: list[int] = []

    # ---- trainer hooks ---------------------------------------------------------------------------------
    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ensemble scores (B, C) — detached, for logging; branch logits (A, B, C))``."""
        branch = self.branch_logits(x)
        return self.combine(branch.detach()), branch

    def compute_loss(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Σ over active branches of CE (soft targets when the batch has them)."""
        return sum(batch.cross_entropy(o) for o in outputs[1])  # type: ignore[return-value]

    def on_epoch_start(self, epoch: int) -> bool:
        """Add a branch every ``epochs_per_branch`` epochs; True when one was added (rebuild optimiser)."""
        if (self.epochs_per_branch > 0 and epoch > 0 and epoch % self.epochs_per_branch == 0
                and self.n_active < len(self.branches)):
            self.active.fill_(self.n_active + 1)
            self._grown_at.append(epoch)
            return True
        return False

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Newest branch at ``lr``; base and older branches at ``lr·old_lr_factor`` once the ensemble has grown
        (before any growth, or without a growing schedule, everything trains at ``lr``)."""
        a = self.n_active
        new = list(self.branches[a - 1].parameters())
        old = list(self.base.parameters()) + [p for b in self.branches[: a - 1] for p in b.parameters()]
        factor = self.old_lr_factor if (self.epochs_per_branch > 0 and a > self.start_branches) else 1.0
        groups = [{"params": new, "lr": lr}]
        if old:
            groups.append({"params": old, "lr": lr * factor})
        return groups

    def epoch_log(self) -> dict[str, float]:
        return {"esr_active_branches": float(self.n_active)}




_ESR_OPTS = {"predict", "start_branches", "epochs_per_branch", "old_lr_factor"}


@register_method("esr")
def build_esr(backbone: nn.Module, num_classes: int, n_branches: int | None = None,
              branch_width: int | None = None, **opts: Any) -> ESR:
    """ESR over a registry backbone (``n_branches`` default 4, ``branch_width`` 256); an ``esr_*`` network passed
    in keeps its own base and branches (same state-dict keys) and gets the training options ``opts``."""
    if isinstance(backbone, ESRNet):
        fixed = {"n_branches": n_branches, "branch_width": branch_width}
        unknown = {k for k, v in fixed.items() if v is not None} | (set(opts) - _ESR_OPTS)
        if unknown:
            raise ConfigError(f"esr: unknown option {sorted(unknown)[0]!r}")
        opts.setdefault("predict", backbone.predict)
        esr = ESR(backbone.base, list(backbone.branches), backbone.num_classes, **opts)
        return esr
    trunk = backbone_features(backbone)
    branches = [FeatureBranch(trunk.num_features, num_classes, branch_width or 256) for _ in range(n_branches or 4)]
    return ESR(trunk, branches, num_classes, **opts)
