"""Model cost: parameters, GFLOPs (``torch.utils.flop_counter``) and CPU batch-1 latency.

FLOPs are counted on the *meta* device (shapes only: no memory, no compute), so even 224-px VGG
costs nothing to count. ``FlopCounterMode`` counts 2 FLOPs per multiply-add (conv, linear, matmul,
attention); elementwise ops (BN, activations, pooling) are not counted, as in fvcore/ptflops.
Latency is wall-clock on the CPU, batch 1, ``torch.set_num_threads(threads)``, median of ``runs``
forward passes after ``warmup`` passes, in eval mode under ``torch.inference_mode``, on real FER2013 test faces
(never noise: the figure is one a user sees).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ferbench.errors import FerbenchError
from ferbench.models.registry import count_params, create_model, model_info


@dataclass
class ModelCost:
    """One row of the cost table (``None`` = not applicable / could not be built at that size)."""

    name: str
    family: str
    paper: str
    input_size: int
    params: int | None
    params_224: int | None
    gflops_48: float | None
    gflops_224: float | None
    latency_ms_48: float | None = None
    notes: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = "; ".join(self.notes)
        d["aliases"] = " ".join(self.aliases)
        return d


def build_meta(name: str, input_size: int, **kwargs: Any) -> nn.Module:
    """Build a registry model on the meta device (no memory), in eval mode."""
    with torch.device("meta"):
        model = create_model(name, input_size=input_size, **kwargs)
    return model.eval()


def flops(model: nn.Module, in_chans: int, input_size: int) -> int:
    """FLOPs (2 × multiply-adds) of one forward pass on a ``(1, in_chans, S, S)`` input.

    ``model`` may live on the meta device (then nothing is computed) or on the CPU.
    """
    device = next(iter(model.parameters())).device
    x = torch.zeros(1, in_chans, input_size, input_size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=4)
def _fer2013_test_faces(data_root: str | None, n: int) -> torch.Tensor:
    from ferbench.data import load_dataset, split_name

    return load_dataset("fer2013", data_root).split(split_name("fer2013", "test")).images[:n]


def real_faces(in_chans: int, input_size: int, *, n: int = 64, data_root: str | Path | None = None) -> torch.Tensor:
    """The first ``n`` FER2013 PrivateTest faces as model input ``(n, in_chans, input_size, input_size)``.

    Grey faces in [0, 1], replicated to ``in_chans`` and resized (bilinear): latency is timed on real faces,
    never on noise. Raises :class:`ferbench.errors.DataError` (naming the data root to pass) when FER2013 is
    not found.
    """
    from ferbench.data.preprocess import Preprocessing

    faces = _fer2013_test_faces(None if data_root is None else str(data_root), n)  # (n, 48, 48, 1) uint8
    pre = Preprocessing(size=input_size, channels=in_chans, interpolation="bilinear", mean=[0.0], std=[1.0])
    return pre(faces)


def latency_ms(
    model: nn.Module, in_chans: int, input_size: int, *, inputs: torch.Tensor | None = None,
    threads: int = 2, runs: int = 50, warmup: int = 10, data_root: str | Path | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Median CPU latency (ms) of batch-1 inference with ``threads`` intra-op threads.

    ``inputs``: real model inputs ``(M, in_chans, input_size, input_size)``, fed one per forward in turn;
    default :func:`real_faces` (FER2013 PrivateTest, found through ``data_root``). With ``preprocess`` they
    are raw inputs (e.g. uint8 faces ``(M, H, W, C)``) and ``preprocess`` (batch → model input) is timed with
    each forward.
    """
    if inputs is None:
        inputs = real_faces(in_chans, input_size, data_root=data_root)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval()
        times = []
        with torch.inference_mode():
            for i in range(warmup + runs):
                x = inputs[i % len(inputs)].unsqueeze(0)  # (1, C, S, S), or one raw input with preprocess
                t0 = time.perf_counter()
                model(x if preprocess is None else preprocess(x))
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(old)
    return statistics.median(times)


def _try_meta(name: str, size: int) -> tuple[int | None, int | None, str | None]:
    """``(params, flops, error)`` of ``name`` built at ``size`` on the meta device."""
    info = model_info(name)
    try:
        try:
            m = build_meta(name, size)
            return count_params(m), flops(m, info.in_chans, size), None
        except RuntimeError as e:  # data-dependent code (e.g. ESR's .item()) cannot run on meta: count on CPU
            if "meta" not in str(e):
                raise
            m = create_model(name, input_size=size).eval()
            return count_params(m), flops(m, info.in_chans, size), None
    except (RuntimeError, ValueError, FerbenchError) as e:
        return None, None, f"{size}px: {str(e).splitlines()[0][:80]}"


def model_cost(name: str, *, measure: bool = False, threads: int = 2, runs: int = 50,
               data_root: str | Path | None = None) -> ModelCost:
    """Cost row of one registry model: params (default size and 224), GFLOPs at 48/224, latency at 48.

    ``measure`` times the latency on real FER2013 faces (:func:`real_faces`, found through ``data_root``).
    """
    info = model_info(name)
    notes: list[str] = []
    p48, f48, err48 = _try_meta(name, 48)
    p224, f224, err224 = _try_meta(name, 224)
    for err in (err48, err224):
        if err:
            notes.append(err)
    if 48 not in info.sizes and f48 is not None:
        notes.append("48px not in spec")
    params = (
        count_params(build_meta(name, info.input_size))
        if info.input_size not in (48, 224)
        else (p48 if info.input_size == 48 else p224)
    )
    row = ModelCost(
        name=name,
        family=info.family,
        paper=info.paper,
        input_size=info.input_size,
        params=params,
        params_224=p224,
        gflops_48=None if f48 is None else f48 / 1e9,
        gflops_224=None if f224 is None else f224 / 1e9,
        notes=notes,
        aliases=list(info.aliases),
    )
    if measure and f48 is not None:
        model = create_model(name, input_size=48)
        row.latency_ms_48 = latency_ms(model, info.in_chans, 48, threads=threads, runs=runs, data_root=data_root)
    return row


def layer_summary(
    name: str, input_size: int | None = None, depth: int = 2, **kwargs: Any
) -> list[dict[str, Any]]:
    """Per-module rows ``{"layer", "type", "output", "params"}`` down to ``depth`` levels (meta device)."""
    info = model_info(name)
    size = input_size or info.input_size
    model = build_meta(name, size, **kwargs)
    rows: list[dict[str, Any]] = []
    hooks = []

    def hook(path: str, mod: nn.Module):
        def fn(_m: nn.Module, _i: Any, out: Any) -> None:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            rows.append(
                {"layer": path, "type": type(mod).__name__, "output": shape, "params": count_params(mod)}
            )

        return fn

    for path, mod in model.named_modules():
        if path and path.count(".") < depth:
            hooks.append(mod.register_forward_hook(hook(path, mod)))
    try:
        with torch.no_grad():
            model(torch.zeros(1, info.in_chans, size, size, device="meta"))
    except RuntimeError as e:
        raise FerbenchError(f"{name} cannot run at {size} px ({str(e).splitlines()[0][:100]})") from None
    finally:
        for h in hooks:
            h.remove()
    order = {p: i for i, (p, _) in enumerate(model.named_modules())}
    rows.sort(key=lambda r: order.get(r["layer"], 0))
    seen: set[str] = set()
    unique = []
    for r in rows:  # a module called twice (shared) is listed once
        if r["layer"] not in seen:
            seen.add(r["layer"])
            unique.append(r)
    return unique
