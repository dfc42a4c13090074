"""ESR — Ensembles with Shared Representations (Siqueira et al. 2020; docs/protocol.md §3.2).

A shared base feeds N branches. All branches are built at construction; the ``active`` buffer
counts those in use, so growing the ensemble never changes the state-dict keys. Training loss is
the sum of the active branches' cross-entropies; prediction is the branches' majority vote (ties →
lowest class index) or, with ``predict="mean"``, the averaged branch probabilities.

Two forms:
* the paper's own architecture, registered as ``esr_9`` / ``esr_4`` (96×96×3 input, 8 classes →
  20 349 384 / 9 252 384 parameters);
* ``build_method("esr", backbone)``: the same ensemble logic over any registry backbone's feature map
  (shared base = backbone trunk, branch = conv-BN-ReLU → GAP → FC).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.common import MethodModule, backbone_features, batch_get, class_weighted_ce
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


class FeatureBranch(nn.Module):
    """Generic branch on a backbone map: conv3×3 D→width, BN, ReLU, GAP, FC → ``(B, C)``."""

    def __init__(self, in_features: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(in_features, width, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_classes)

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


class ESR(MethodModule):
    """Ensemble with shared representations.

    Args:
        base: shared module, ``(B, C_in, S, S)`` → ``(B, D, h, w)``.
        branches: ``n_branches`` modules, each ``(B, D, h, w)`` → ``(B, C)`` logits.
        num_classes: C.
        predict: ``"vote"`` (majority vote, scores = log vote shares) or ``"mean"`` (log of mean softmax).
        start_branches: branches active at the start of training (default: 1 with a growing schedule, as
            the official code, else all N).
        epochs_per_branch: add one branch every this many epochs (0 = never grow).
        old_lr_factor: LR multiplier for the base and earlier branches after growing (official 0.1;
            seed 001's variant uses 1.0).
    """

    method_name = "esr"

    def __init__(self, base: nn.Module, branches: list[nn.Module], num_classes: int, predict: str = "vote",
                 start_branches: int | None = None, epochs_per_branch: int = 0, old_lr_factor: float = 0.1) -> None:
        super().__init__()
        if predict not in ("vote", "mean"):
            raise ConfigError(f"esr: predict must be 'vote' or 'mean', not {predict!r}")
        n = len(branches)
        if start_branches is None:  # grow from one branch when there is a schedule, else use all
            start_branches = 1 if epochs_per_branch > 0 else n
        if not 1 <= start_branches <= n:
            raise ConfigError(f"esr: start_branches must be in 1..{n}, not {start_branches}")
        self.base = base
        self.branches = nn.ModuleList(branches)
        self.num_classes = num_classes
        self.predict = predict
        self.epochs_per_branch = int(epochs_per_branch)
        self.start_branches = int(start_branches)
        self.old_lr_factor = float(old_lr_factor)
        self.register_buffer("active", torch.tensor(int(start_branches), dtype=torch.int64))
        self._grown_at: list[int] = []

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

    # ---- trainer hooks ---------------------------------------------------------------------------------
    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ensemble scores (B, C) — detached, for logging; branch logits (A, B, C))``."""
        branch = self.branch_logits(x)
        return self.combine(branch.detach()), branch

    def compute_loss(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: Any) -> torch.Tensor:
        """Σ over active branches of CE (soft targets when the batch has them)."""
        cw, soft = batch_get(batch, "class_weights"), batch_get(batch, "soft")
        return sum(class_weighted_ce(o, batch.y, cw, soft) for o in outputs[1])  # type: ignore[return-value]

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


def _check_esr_size(input_size: int) -> None:
    base = ((input_size - 6) // 2 - 4) // 2
    if (base - 4) // 2 - 2 < 1:
        raise ConfigError(f"esr: input size {input_size} px is too small (the valid convolutions need ≥ 54 px; "
                          "set preprocessing.size: 96)")


def _esr(n: int, num_classes: int, in_chans: int, input_size: int, **kw: Any) -> ESR:
    _check_esr_size(input_size)
    return ESR(esr_base(in_chans), [ESRBranch(num_classes) for _ in range(n)], num_classes, **kw)


@register_model("esr", paper="001", input_size=96, in_chans=3, target_layer="base", sizes=(96,))
def esr_9(num_classes: int = 8, in_chans: int = 3, input_size: int = 96, **kw: Any) -> nn.Module:
    """ESR-9 (in-the-wild): shared base + 9 branches; 20 349 384 params at 96 px, 8 classes."""
    return _esr(9, num_classes, in_chans, input_size, **kw)


@register_model("esr", paper="001", input_size=96, in_chans=3, target_layer="base", sizes=(96,))
def esr_4(num_classes: int = 8, in_chans: int = 3, input_size: int = 96, **kw: Any) -> nn.Module:
    """ESR-4 (in-the-lab, CK+): shared base + 4 branches; 9 252 384 params at 96 px, 8 classes."""
    return _esr(4, num_classes, in_chans, input_size, **kw)


@register_model("esr", paper="001", input_size=48, in_chans=1, target_layer="base", sizes=(48, 96))
def esr_4_lab(num_classes: int = 8, in_chans: int = 1, input_size: int = 48, **kw: Any) -> nn.Module:
    """ESR-4, the official small grey CK+ network (docs/protocol.md §3.2; BN after each conv and valid padding assumed)."""
    if ((input_size - 6) // 2 - 2) // 2 < 8:
        raise ConfigError(f"esr_4_lab: input size {input_size} px is too small (needs ≥ 42 px)")
    return ESR(esr_lab_base(in_chans), [ESRLabBranch(num_classes) for _ in range(4)], num_classes, **kw)


def build_esr(backbone: nn.Module, num_classes: int, n_branches: int | None = None,
              branch_width: int | None = None, **opts: Any) -> ESR:
    """ESR over a registry backbone (``n_branches`` default 4, ``branch_width`` 256); an ``esr_*`` model passed
    in keeps its own branches and is only reconfigured with ``opts``."""
    if isinstance(backbone, ESR):
        fixed = {"n_branches": n_branches, "branch_width": branch_width}
        unknown = {k for k, v in fixed.items() if v is not None} | (
            set(opts) - {"predict", "start_branches", "epochs_per_branch", "old_lr_factor"})
        if unknown:
            raise ConfigError(f"esr: unknown option {sorted(unknown)[0]!r}")
        if opts.get("predict", "vote") not in ("vote", "mean"):
            raise ConfigError(f"esr: predict must be 'vote' or 'mean', not {opts['predict']!r}")
        backbone.predict = opts.get("predict", backbone.predict)
        backbone.epochs_per_branch = int(opts.get("epochs_per_branch", backbone.epochs_per_branch))
        backbone.old_lr_factor = float(opts.get("old_lr_factor", backbone.old_lr_factor))
        n = len(backbone.branches)
        start = opts.get("start_branches")
        start = int(start) if start is not None else (1 if backbone.epochs_per_branch > 0 else n)
        if not 1 <= start <= n:
            raise ConfigError(f"esr: start_branches must be in 1..{n}, not {start}")
        backbone.start_branches = start
        backbone.active.fill_(start)
        return backbone
    trunk = backbone_features(backbone)
    branches = [FeatureBranch(trunk.num_features, num_classes, branch_width or 256) for _ in range(n_branches or 4)]
    return ESR(trunk, branches, num_classes, **opts)
