"""Mixed precision and memory format for CPU training: ``train.precision`` and ``train.channels_last``.

``precision: auto | fp32 | bf16``. ``bf16`` autocasts the *forward* only (``torch.autocast("cpu",
torch.bfloat16)``): the weights stay fp32 (the optimiser updates fp32 master weights, checkpoints are fp32),
the outputs are cast back to fp32 before the loss, and the backward runs each op in the dtype its forward used.
``auto`` picks bf16 only where the CPU has bf16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in
``/proc/cpuinfo`` *and* oneDNN reporting bf16 support); elsewhere bf16 convolutions fall back to
``aten::_slow_conv2d_*`` (im2col reference kernels), measured 1.2-2.8x slower per step than fp32 on an AVX2-only EPYC
(benchmarks/results/bf16_cpu.md), so ``auto`` is fp32 there.

``channels_last: auto | true | false``: NHWC weights and inputs (oneDNN's native layout, no reorders per
convolution). ``auto`` = on for models with 2-D convolutions, off for models without (ViT token models).

The trainer resolves ``train.precision`` with :func:`resolve_precision` and ``train.channels_last`` with
:func:`resolve_channels_last`, records the result in ``last.json`` so a resumed run keeps it, autocasts the
forward and casts its outputs back with :func:`to_fp32`. The same steps, as benchmarks/train_throughput.py
takes them::

    plan = resolve_plan(t["precision"], t["channels_last"], model)
    model = plan.prepare_model(model)
    x = plan.prepare_input(x)
    with plan.autocast():
        out = model(x)
    loss = loss_fn(plan.to_fp32(out), y)
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ferbench.device import BF16_FLAGS, cpu_flags
from ferbench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def cpu_bf16_support() -> tuple[bool, str]:
    """``(supported, reason)``: whether this CPU runs bf16 matmuls/convolutions natively.

    Needs a bf16 instruction set (``avx512_bf16`` / ``amx_bf16``) and oneDNN's own check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``); without both, autocast bf16 takes slow reference
    kernels. ``reason`` names what was found, e.g. ``"no avx512_bf16/amx_bf16 (cpu capability AVX2)"``.
    """
    flags = cpu_flags()
    have = [f for f in BF16_FLAGS if f in flags]
    cap = torch.backends.cpu.get_cpu_capability()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    if have and onednn:
        return True, f"{'/'.join(have)} (cpu capability {cap})"
    if not have:
        return False, f"no avx512_bf16/amx_bf16 (cpu capability {cap})"
    return False, f"{'/'.join(have)} present but oneDNN reports no bf16 support (cpu capability {cap})"


def depthwise_share(model: nn.Module) -> float:
    """Fraction of ``model``'s 2-D convolutions that are depthwise (``groups == in_channels > 1``); 0 without convs."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return 0.0
    return sum(1 for m in convs if m.groups > 1 and m.groups == m.in_channels) / len(convs)


DEPTHWISE_FP32_SHARE = 0.15


def resolve_precision(value: str, device: torch.device | None = None, model: nn.Module | None = None) -> str:
    """``auto | fp32 | bf16`` → ``fp32`` or ``bf16``. ``auto``: bf16 on a CUDA ``device`` that supports it, and
    on CPUs where :func:`cpu_bf16_support`; fp32 elsewhere. On the CPU, ``auto`` also stays fp32 for a
    ``model`` whose convolutions are at least 15 % depthwise (MobileNet, MobileNetV2, EfficientFace, and also
    EfficientNet-B0 / V2-B0, MobileNetV3, MobileViT at 17-24 %): oneDNN's bf16 depthwise kernels lose to fp32
    channels_last there (measured 0.38-0.83x, benchmarks/results/bf16_cpu.md), while dense convolutions gain
    1.4-2.9x."""
    v = str(value).lower()
    if v not in PRECISIONS:
        raise ConfigError(f"train.precision={value!r}: choose auto, fp32 or bf16")
    if v != "auto":
        return v
    if device is not None and device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if model is not None and depthwise_share(model) >= DEPTHWISE_FP32_SHARE:
        return "fp32"
    return "bf16" if cpu_bf16_support()[0] else "fp32"


def has_conv2d(model: nn.Module) -> bool:
    """True when ``model`` contains a 2-D convolution (channels_last only changes those)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def resolve_channels_last(value: Any, model: nn.Module) -> bool:
    """``auto | true | false`` (YAML booleans or strings) → bool; ``auto`` = the model has 2-D convolutions."""
    if isinstance(value, bool):
        return value
    v = str(value).lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0", "none"):
        return False
    if v == "auto":
        return has_conv2d(model)
    raise ConfigError(f"train.channels_last={value!r}: choose auto, true or false")


def to_fp32(out: Any) -> Any:
    """Cast every floating tensor in ``out`` (a tensor, or tuples/lists/dicts of them) to float32."""
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() and out.dtype != torch.float32 else out
    if isinstance(out, tuple):
        return tuple(to_fp32(o) for o in out)
    if isinstance(out, list):
        return [to_fp32(o) for o in out]
    if isinstance(out, dict):
        return {k: to_fp32(v) for k, v in out.items()}
    return out


def fused_ok(groups: list[dict[str, Any]]) -> bool | None:
    """``True`` when every parameter is a CPU float32 tensor: torch's fused CPU Adam/AdamW/SGD kernel then
    updates each tensor in one pass instead of ~10 elementwise ops (the same update to 1 ulp; measured 4.6x
    faster AdamW step on timm resnet18's 11.2 M parameters, benchmarks/results/bf16_cpu.md). ``None``
    (torch's default implementation) otherwise. Opt-in (``train.fused_optimizer``): a run resumed with it
    does not reproduce the uninterrupted run bit for bit (tests/test_train.py's resume check fails)."""
    params = [p for g in groups for p in g["params"]]
    if params and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params):
        return True
    return None


@dataclass(frozen=True)
class PrecisionPlan:
    """A resolved precision + memory format: what the trainer does around each forward."""

    precision: str = "fp32"        # fp32 | bf16
    channels_last: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast("cpu", bfloat16)`` for bf16, a no-op context for fp32."""
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Weights to channels_last when on (in place; parameters stay fp32)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float → the same values in the plan's memory format (fp32; autocast casts)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    to_fp32 = staticmethod(to_fp32)

    def describe(self) -> str:
        return f"{self.precision}{' channels_last' if self.channels_last else ''}"


def resolve_plan(precision: str, channels_last: Any, model: nn.Module) -> PrecisionPlan:
    """The :class:`PrecisionPlan` of a run's ``train.precision`` / ``train.channels_last`` for ``model``."""
    return PrecisionPlan(resolve_precision(precision, model=model), resolve_channels_last(channels_last, model))

