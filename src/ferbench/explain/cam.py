"""Attribution maps for a classifier: Grad-CAM family (pytorch-grad-cam) and gradients (captum).

Every method returns one map per image at the model's input resolution, float32 in [0, 1]
(1 = most important). CAM methods hook one convolutional layer: the one declared with the model
in the registry (``model_info(name).target_layer``); when a model declares none (or the declared
path does not run), the last convolution whose output map is larger than 1×1 at the model's
input size is used instead, and :class:`TargetLayer` says so (``declared=False``).

Method wrappers with several members (ensembles: ``model.members``; ESR branches:
``model.branch_logits(x)``) are explained member by member and the maps averaged.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ferbench.errors import FerbenchError

CAM_METHODS = ("gradcam", "gradcam++", "scorecam")
GRADIENT_METHODS = ("saliency", "integrated-gradients")
METHODS = CAM_METHODS + GRADIENT_METHODS


@dataclass(frozen=True)
class TargetLayer:
    """The layer a CAM method hooks.

    Attributes:
        name: dotted module path inside the explained model (``"backbone.layer3"``).
        module: the module itself.
        declared: True when the registry declared it; False when found by the fallback search.
        map_size: ``(H, W)`` of its output map at the model's input size.
    """

    name: str
    module: nn.Module
    declared: bool
    map_size: tuple[int, int]

    def describe(self) -> str:
        how = "declared in the registry" if self.declared else "no layer declared: last conv map > 1×1"
        return f"{self.name} ({self.map_size[0]}×{self.map_size[1]} map; {how})"


class BranchView(nn.Module):
    """One branch of a shared-base wrapper (ESR) as a plain classifier: ``x → branch_logits(x)[index]``.

    The wrapper stays a submodule, so layer paths resolve exactly as in the wrapper.
    """

    def __init__(self, wrapper: nn.Module, index: int) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wrapper.branch_logits(x)[self.index]  # type: ignore[operator]


class MemberView(nn.Module):
    """One ensemble member fed through its own preprocessing: ``x in [0, 1] → member(pre.from_float(x))``."""

    def __init__(self, member: nn.Module, preprocessing: object | None) -> None:
        super().__init__()
        self.member = member
        self.preprocessing = preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocessing is not None:
            x = self.preprocessing.from_float(x)  # type: ignore[attr-defined]
        return self.member(x)


def members_of(model: nn.Module) -> list[nn.Module]:
    """The classifiers whose maps are averaged: ensemble members, ESR branches, or ``[model]``.

    Duck-typed, so a method file needs no import of this module:

    * an ensemble exposes ``members`` (modules mapping inputs → ``(B, K)`` logits) and optionally
      ``preprocessings`` (one :class:`~ferbench.data.preprocess.Preprocessing` per member, applied with
      ``from_float`` to the ensemble's [0, 1] input), as :class:`ferbench.models.ensemble.EnsembleModel`;
    * a shared-base wrapper exposes ``branch_logits(x) -> (A, B, K)`` and ``n_active`` (A), as
      :class:`ferbench.methods.esr.ESR`.

    Voting wrappers have no useful gradient as a whole (argmax), hence the per-member maps.
    """
    members = getattr(model, "members", None)
    if isinstance(members, nn.ModuleList) and len(members) > 0:
        pres = getattr(model, "preprocessings", None)
        if pres is None or len(pres) != len(members):
            pres = [None] * len(members)
        return [MemberView(m, p) for m, p in zip(members, pres, strict=True)]
    if callable(getattr(model, "branch_logits", None)) and getattr(model, "n_active", None) is not None:
        return [BranchView(model, i) for i in range(int(model.n_active))]  # type: ignore[arg-type]
    return [model]


def _declared_layer(model: nn.Module) -> str | None:
    """Dotted path of the registry-declared target layer of ``model`` or of a registry model inside it."""
    for prefix, mod in model.named_modules():
        info = getattr(mod, "ferbench_info", None)
        if info is not None and getattr(info, "target_layer", ""):
            return f"{prefix}.{info.target_layer}" if prefix else info.target_layer
    return None


@dataclass(frozen=True)
class _Probe:
    shape: tuple[int, ...]
    reaches_output: bool | None  # None: the output has no gradient at all (e.g. a vote), so unknown


def _probe(model: nn.Module, modules: dict[str, nn.Module], input_size: int, in_chans: int) -> dict[str, _Probe]:
    """Run one seeded random ``(1, in_chans, S, S)`` input through ``model`` (eval mode) and report, per
    module that ran (in execution order), its output shape and whether the output's gradient reaches it.

    The gradient check matters for wrappers: an ESR branch view runs every branch, but only its own
    branch's layers influence its logits.
    """
    outs: dict[str, torch.Tensor] = {}
    handles = []
    for name, mod in modules.items():
        def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
            if isinstance(out, torch.Tensor) and name not in outs:
                outs[name] = out
        handles.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.zeros(())).device
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_chans, input_size, input_size, generator=g).to(device)
    try:
        with torch.enable_grad():
            y = model(x)
            names = [n for n, t in outs.items() if t.requires_grad]
            reach: dict[str, bool | None] = {n: None for n in outs}
            if isinstance(y, torch.Tensor) and y.requires_grad:
                reach = {n: False for n in outs}
                if names:
                    try:
                        grads = torch.autograd.grad(y.float().square().sum(), [outs[n] for n in names],
                                                    allow_unused=True)
                        reach.update({n: gr is not None and bool(gr.abs().sum() > 0)
                                      for n, gr in zip(names, grads, strict=True)})
                    except RuntimeError:  # e.g. in-place ops on a hooked output: reachability unknown
                        reach = {n: None for n in outs}
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: _Probe(tuple(t.shape), reach[n]) for n, t in outs.items()}


def resolve_target_layer(model: nn.Module, input_size: int, in_chans: int,
                         name: str | None = None) -> TargetLayer:
    """The layer Grad-CAM hooks in ``model`` for inputs ``(B, in_chans, input_size, input_size)``.

    Order: ``name`` if given (a dotted path; unknown → one-line error), else the registry's
    declaration for the model, else the last ``nn.Conv2d`` (in execution order) whose output map is
    larger than 1×1 and influences the model's output.
    """
    if name:
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise FerbenchError(f"target layer {name!r} not found in {type(model).__name__}") from None
        probe = _probe(model, {name: mod}, input_size, in_chans).get(name)
        if probe is None or len(probe.shape) != 4:
            raise FerbenchError(f"target layer {name!r} does not produce a (B, C, H, W) map")
        return TargetLayer(name, mod, True, (probe.shape[2], probe.shape[3]))
    declared = _declared_layer(model)
    if declared:
        try:
            mod = model.get_submodule(declared)
        except AttributeError:
            mod = None
        if mod is not None:
            probe = _probe(model, {declared: mod}, input_size, in_chans).get(declared)
            if probe is not None and len(probe.shape) == 4 and probe.reaches_output is not False:
                return TargetLayer(declared, mod, True, (probe.shape[2], probe.shape[3]))
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    probes = _probe(model, convs, input_size, in_chans)
    big = [n for n, p in probes.items()
           if len(p.shape) == 4 and p.shape[2] * p.shape[3] > 1 and p.reaches_output is not False]
    if not big:
        raise FerbenchError(f"{type(model).__name__}: no convolutional layer with a map larger than 1×1 at "
                            f"{input_size} px; use --method saliency")
    last = big[-1]
    return TargetLayer(last, convs[last], False, (probes[last].shape[2], probes[last].shape[3]))


def _without_inplace(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose activations are not in-place (hooks and autograd need the originals)."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False  # type: ignore[assignment]
    return model


def _normalise(maps: np.ndarray, q: float = 99.0) -> np.ndarray:
    """``(B, H, W)`` non-negative maps → [0, 1] per image, clipped at the ``q``-th percentile
    (gradient maps are spiky; one pixel must not wash out the rest)."""
    top = np.percentile(maps.reshape(len(maps), -1), q, axis=1).reshape(-1, 1, 1)
    return np.clip(maps / np.maximum(top, 1e-12), 0.0, 1.0).astype(np.float32)


def _cam_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, method: str, layer: TargetLayer,
              batch_size: int) -> np.ndarray:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}[method]
    out = []
    with cls(model=model, target_layers=[layer.module]) as cam:
        if method == "scorecam":
            cam.batch_size = batch_size  # masked copies per forward pass
        for i in range(0, len(x), batch_size):
            tgt = [ClassifierOutputTarget(int(t)) for t in targets[i:i + batch_size]]
            # scorecam draws a tqdm bar per image; the CLI shows its own progress
            with contextlib.redirect_stderr(io.StringIO()):
                out.append(cam(input_tensor=x[i:i + batch_size], targets=tgt))
    return np.concatenate(out).astype(np.float32)


def _gradient_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, method: str,
                   baseline: torch.Tensor | None, batch_size: int, n_steps: int) -> np.ndarray:
    try:
        from captum.attr import IntegratedGradients, Saliency
    except ImportError:
        raise FerbenchError(f"--method {method} needs captum: pip install captum") from None

    out = []
    for i in range(0, len(x), batch_size):
        xb, tb = x[i:i + batch_size].clone().requires_grad_(True), targets[i:i + batch_size]
        if method == "saliency":  # Simonyan et al.: max |∂y_c/∂x| over channels
            a = Saliency(model).attribute(xb, target=tb, abs=True).amax(1)
        else:  # Sundararajan et al.: |Σ_channels IG|
            base = torch.zeros_like(xb) if baseline is None else baseline.expand_as(xb).contiguous()
            a = IntegratedGradients(model).attribute(
                xb, baselines=base, target=tb, n_steps=n_steps, internal_batch_size=batch_size * 8
            ).sum(1).abs()
        out.append(a.detach().float().cpu().numpy())
    return _normalise(np.concatenate(out))


def attribution_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | Sequence[int],
                     method: str = "gradcam", target_layer: str | None = None,
                     baseline: torch.Tensor | None = None, batch_size: int = 32,
                     n_steps: int = 32) -> tuple[np.ndarray, list[TargetLayer]]:
    """Explain ``targets`` for preprocessed inputs ``x``.

    Args:
        model: classifier mapping ``(B, C, S, S)`` float → ``(B, K)`` logits (a method wrapper with
            members is explained per member, see :func:`members_of`). Not modified.
        x: float32 ``(B, C, S, S)``, already normalised (``Preprocessing.__call__`` output).
        targets: int64 ``(B,)`` class index to explain per image.
        method: one of :data:`METHODS`.
        target_layer: dotted layer path overriding the registry declaration (CAM methods only).
        baseline: ``(1, C, S, S)`` input used as the integrated-gradients baseline (default zeros,
            i.e. the normalisation mean; callers pass a black image).
        batch_size: images per backward pass.
        n_steps: integrated-gradients path steps.

    Returns:
        ``(maps, layers)``: float32 ``(B, S, S)`` in [0, 1] (mean over members) and, for CAM
        methods, the :class:`TargetLayer` used per member (empty for gradient methods).
    """
    if method not in METHODS:
        raise FerbenchError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")
    if x.ndim != 4:
        raise FerbenchError(f"explain: expected a (B, C, H, W) input, got shape {tuple(x.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1)
    if len(targets) != len(x):
        raise FerbenchError(f"explain: {len(targets)} targets for {len(x)} images")
    work = _without_inplace(model)
    device = next(work.parameters(), torch.zeros(())).device
    x, targets = x.float().contiguous().to(device), targets.to(device)
    if baseline is not None:
        baseline = baseline.to(device)
    maps, layers = [], []
    for member in members_of(work):
        if method in CAM_METHODS:
            layer = resolve_target_layer(member, x.shape[-1], x.shape[1], target_layer)
            layers.append(layer)
            maps.append(_cam_maps(member, x, targets, method, layer, batch_size))
        else:
            maps.append(_gradient_maps(member, x, targets, method, baseline, batch_size, n_steps))
    return np.mean(maps, axis=0).astype(np.float32), layers
