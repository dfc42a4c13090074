"""Fine-tuning policies: which parameters train in which phase.

``full``: everything. ``head-only``: only the classifier head. ``two-phase`` (docs/protocol.md §1.7): phase 1 trains
the head on a frozen backbone (frozen BatchNorm in inference mode), phase 2 unfreezes everything with a
fresh optimiser and its own LR. ``last-stage`` (seed 003): the last backbone stage + head (ResNet ``layer4``).
"""

from __future__ import annotations

from torch import nn

from ferbench.errors import ConfigError

POLICIES = ("full", "head-only", "two-phase", "last-stage")
_HEAD_NAMES = ("head", "classifier", "fc")
_LAST_STAGE = ("layer4", "stages.3", "blocks.6", "features.denseblock4", "features.norm5")


def head_module_names(model: nn.Module) -> list[str]:
    """Dotted names of the classifier modules (``head``/``classifier``/``fc``; timm's for wrappers)."""
    names = []
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _HEAD_NAMES and not isinstance(mod, nn.Identity) and sum(1 for _ in mod.parameters()):
            if not any(name.startswith(n + ".") for n in names):
                names.append(name)
    if not names:
        raise ConfigError(f"{type(model).__name__}: no head/classifier/fc module found for a head policy")
    # the outermost real head wins: a wrapper's `head` over its backbone's `fc`
    outer = [n for n in names if n.count(".") == min(x.count(".") for x in names)]
    return outer


def trainable_mask(model: nn.Module, policy: str, phase: int = 1) -> dict[str, bool]:
    """``{param_name: trainable}`` for ``policy`` in ``phase`` (1 or 2)."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    names = [n for n, _ in model.named_parameters()]
    if policy == "full" or (policy == "two-phase" and phase == 2):
        return dict.fromkeys(names, True)
    heads = head_module_names(model)
    in_head = {n: any(n.startswith(h + ".") for h in heads) for n in names}
    if policy in ("head-only", "two-phase"):
        return in_head
    last = [n for n in names if any(f".{s}." in f".{n}" for s in _LAST_STAGE)]
    if not last:
        raise ConfigError(f"{type(model).__name__}: policy last-stage needs a layer4/stages.3-like module")
    return {n: in_head[n] or n in last for n in names}


def apply_policy(model: nn.Module, policy: str, phase: int = 1) -> int:
    """Set ``requires_grad`` per the policy; frozen BatchNorms stay in eval mode. Returns #trainable params."""
    mask = trainable_mask(model, policy, phase)
    for n, p in model.named_parameters():
        p.requires_grad_(mask[n])
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def set_train_mode(model: nn.Module) -> None:
    """``model.train()`` but BatchNorms whose parameters are all frozen run in inference mode (Keras)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters(recurse=False))
            if ps and not any(p.requires_grad for p in ps):
                m.eval()
