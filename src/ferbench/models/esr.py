"""ESR networks — Ensembles with Shared Representations (Siqueira et al. 2020; docs/protocol.md §3.2).

A shared base feeds N branches. All branches are built at construction; the ``active`` buffer counts those in
use, so growing the ensemble never changes the state-dict keys. Prediction is the branches' majority vote (ties
→ lowest class index) or, with ``predict="mean"``, the averaged branch probabilities. How an ESR is *trained*
(sum of branch losses, one branch added every few epochs) is the ``esr`` method, :mod:`ferbench.methods.esr`.

Registered: the paper's ``esr_9`` / ``esr_4`` (96×96×3 input, 8 classes → 20 349 384 / 9 252 384 parameters)
and ``esr_4_lab``, the official small grey CK+ network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import ConfigError
from ferbench.models.registry import register_model


def _cbr(cin: int, cout: int, k: int, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=padding), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def esr_base(in_chans: int = 3) -> nn.Sequential:
    """Shared base: ``(B, in_chans, 96, 96)`` → ``(B, 128, 20, 20)``; 374 784 params for RGB."""
    return nn.Sequential(*_cbr(in_chans, 64, 5), *_cbr(64, 128, 3), nn.MaxPool2d(2),
                         *_cbr(128, 128, 3), *_cbr(128, 128, 3), nn.MaxPool2d(2))


class ESRBranch(nn.Module):
    """One ESR branch: ``(B, 128, h, w)`` → ``(B, C)`` logits; 2 219 400 params for C = 8."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(128, 128, 3), *_cbr(128, 256, 3), nn.MaxPool2d(2),
                                  *_cbr(256, 256, 3), *_cbr(256, 512, 3, padding=1),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def esr_lab_base(in_chans: int = 1) -> nn.Sequential:
    """Official CK+ ESR base (small, grey): C5 →32, C3 →64, MP, C3 →64, MP; ``(B, 1, 48, 48)`` → ``(B, 64, 9, 9)``."""
    return nn.Sequential(*_cbr(in_chans, 32, 5), *_cbr(32, 64, 3), nn.MaxPool2d(2), *_cbr(64, 64, 3), nn.MaxPool2d(2))


class ESRLabBranch(nn.Module):
    """Official CK+ ESR branch: C3 64→64, MP, C3 64→64, GAP, FC 64→C."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(64, 64, 3), nn.MaxPool2d(2), *_cbr(64, 64, 3), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def vote_counts(branch_logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Votes per class: ``(A, B, C)`` branch logits → ``(B, C)`` float counts of branch argmaxes."""
    pred = branch_logits.argmax(-1)  # (A, B)
    return F.one_hot(pred, num_classes).sum(0).to(branch_logits.dtype)


def majority_vote(branch_logits: torch.Tensor) -> torch.Tensor:
    """``(A, B, C)`` → ``(B,)`` int64 majority class; ties go to the lowest class index."""
    counts = vote_counts(branch_logits, branch_logits.shape[-1])
    # argmax returns the first maximal index, i.e. the lowest class among tied ones.
    return counts.argmax(-1)


class ESRNet(nn.Module):
    """Ensemble with shared representations, as a network: a shared base feeding N branches, combined by vote.

    Args:
        base: shared module, ``(B, C_in, S, S)`` → ``(B, D, h, w)``.
        branches: ``n_branches`` modules, each ``(B, D, h, w)`` → ``(B, C)`` logits.
        num_classes: C.
        predict: ``"vote"`` (majority vote, scores = log vote shares) or ``"mean"`` (log of mean softmax).
        active: branches in use (all by default); training with :class:`ferbench.methods.esr.ESR` grows it.
    """

    def __init__(self, base: nn.Module, branches: list[nn.Module], num_classes: int, predict: str = "vote",
                 active: int | None = None) -> None:
        super().__init__()
        if predict not in ("vote", "mean"):
            raise ConfigError(f"esr: predict must be 'vote' or 'mean', not {predict!r}")
        n = len(branches)
        active = n if active is None else int(active)
        if not 1 <= active <= n:
            raise ConfigError(f"esr: active branches must be in 1..{n}, not {active}")
        self.base = base
        self.branches = nn.ModuleList(branches)
        self.num_classes = num_classes
        self.predict = predict
        self.register_buffer("active", torch.tensor(active, dtype=torch.int64))

    @property
    def head(self) -> nn.ModuleList:
        """Classification layers (fine-tuning policies look for ``head``)."""
        return self.branches

    @property
    def n_active(self) -> int:
        return int(self.active.item())

    def branch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` → ``(A, B, C)`` logits of the ``A`` active branches."""
        f = self.base(x)
        return torch.stack([b(f) for b in self.branches[: self.n_active]])

    def combine(self, branch_logits: torch.Tensor) -> torch.Tensor:
        """``(A, B, C)`` → ``(B, C)`` scores whose softmax is the vote share (``vote``) or mean probability."""
        if self.predict == "mean":
            return branch_logits.softmax(-1).mean(0).clamp_min(1e-12).log()
        counts = vote_counts(branch_logits, self.num_classes)
        eps = 1e-3  # keeps log finite for classes without votes; order (and ties) unchanged
        return ((counts + eps) / (counts.sum(-1, keepdim=True) + eps * self.num_classes)).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.branch_logits(x))

    @torch.no_grad()
    def uncertainty(self, x: torch.Tensor) -> torch.Tensor:
        """Branch disagreement ``1 − (votes for the winning class)/A`` ∈ [0, 1 − 1/A]: ``(B,)`` float."""
        logits = self.branch_logits(x)
        counts = vote_counts(logits, self.num_classes)
        return 1.0 - counts.max(-1).values / logits.shape[0]



def _check_esr_size(input_size: int) -> None:
    base = ((input_size - 6) // 2 - 4) // 2
    if (base - 4) // 2 - 2 < 1:
        raise ConfigError(f"esr: input size {input_size} px is too small (the valid convolutions need ≥ 54 px; "
                          "set preprocessing.size: 96)")


def _esr(n: int, num_classes: int, in_chans: int, input_size: int, predict: str, active: int | None) -> ESRNet:
    _check_esr_size(input_size)
    branches = [ESRBranch(num_classes) for _ in range(n)]
    return ESRNet(esr_base(in_chans), branches, num_classes, predict=predict, active=active)


@register_model(default_method="esr", paper="001", target_layer="base", sizes=(96,))
def esr_9(
    num_classes: int = 8, in_chans: int = 3, input_size: int = 96, predict: str = "vote", active: int | None = None
) -> nn.Module:
    """ESR-9 (in-the-wild): shared base + 9 branches; 20 349 384 params at 96 px, 8 classes."""
    return _esr(9, num_classes, in_chans, input_size, predict, active)


@register_model(default_method="esr", paper="001", target_layer="base", sizes=(96,))
def esr_4(
    num_classes: int = 8, in_chans: int = 3, input_size: int = 96, predict: str = "vote", active: int | None = None
) -> nn.Module:
    """ESR-4 (in-the-lab, CK+): shared base + 4 branches; 9 252 384 params at 96 px, 8 classes."""
    return _esr(4, num_classes, in_chans, input_size, predict, active)


@register_model(default_method="esr", paper="001", target_layer="base", sizes=(48, 96))
def esr_4_lab(
    num_classes: int = 8, in_chans: int = 1, input_size: int = 48, predict: str = "vote", active: int | None = None
) -> nn.Module:
    """ESR-4, the official small grey CK+ network (docs/protocol.md §3.2; BN after each conv, valid padding)."""
    if ((input_size - 6) // 2 - 2) // 2 < 8:
        raise ConfigError(f"esr_4_lab: input size {input_size} px is too small (needs ≥ 42 px)")
    branches = [ESRLabBranch(num_classes) for _ in range(4)]
    return ESRNet(esr_lab_base(in_chans), branches, num_classes, predict=predict, active=active)
