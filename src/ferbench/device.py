"""``--device auto|cpu|cuda``: where models run. ``auto`` = the first CUDA GPU when one is present, else CPU."""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

from ferbench.errors import FerbenchError

DEVICES = ("auto", "cpu", "cuda")
# /proc/cpuinfo flags of x86 instructions that multiply-accumulate u8 x s8 in 32 bits (onnxruntime's fast,
# exact int8 kernels), and of native bf16 arithmetic (train.precision: auto)
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_MATRIX_FLAGS = ("amx_int8",)  # int8 tile multiply: the classifier's forward well under a millisecond
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first ``flags`` line of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_int8_dot() -> bool:
    """Whether int8 inference is cheap here: an x86 CPU with VNNI / AMX-INT8, or a CPU that is not x86.

    An x86 CPU without them (AVX2 only, AVX-512 without VNNI) runs onnxruntime's exact int8 kernels no faster
    than fp32 (measured on a 2-core AVX2 EPYC, 2026-12-05: the shipped classifier's TTA pair 13.5 ms int8 vs
    12.8 ms fp32, ``benchmarks/int8_kernels.py``). x86 without a readable ``/proc/cpuinfo`` counts as cheap.
    """
    return _unless_x86_without(INT8_DOT_FLAGS)


def cpu_int8_matrix() -> bool:
    """Whether one thread runs the shipped int8 classifier fast enough that a second one does not pay.

    True on an x86 CPU with AMX-INT8 tiles, on a CPU that is not x86, and on x86 without a readable
    ``/proc/cpuinfo``. VNNI alone still multiplies in vector registers: on a 2-core AMD EPYC with
    ``avx512_vnni`` (2026-12-07) the int8 forward took 1.7 ms at batch 1 on one thread, and a second classifier
    thread made the astronaut frame 7-9 % faster end to end (``benchmarks/classifier_threads.py``); on an Intel
    Xeon with AMX it made it slower (2026-12-03, ``benchmarks/results/deploy.md``).
    """
    return _unless_x86_without(INT8_MATRIX_FLAGS)


def _unless_x86_without(names: tuple[str, ...]) -> bool:
    """False only on an x86 CPU whose readable ``/proc/cpuinfo`` flags hold none of ``names``."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    flags = cpu_flags()
    return not flags or any(f in flags for f in names)


def check_device_name(name: str) -> str:
    """Validate a device spelling without importing torch (for cheap CLI checks); returns it lower-cased.

    Accepts ``auto``, ``cpu``, ``cuda`` and ``cuda:N``.
    """
    n = str(name).strip().lower()
    if n in DEVICES or (n.startswith("cuda:") and n[5:].isdigit()):
        return n
    raise FerbenchError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")


def resolve_device(name: str | None = "auto") -> Any:
    """``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"`` → ``torch.device``.

    ``auto`` picks ``cuda`` when ``torch.cuda.is_available()``; asking for ``cuda`` on a machine
    without a usable GPU is a one-line :class:`FerbenchError`.
    """
    import torch

    n = check_device_name(name or "auto")
    if n == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if n.startswith("cuda") and not torch.cuda.is_available():
        raise FerbenchError(f"--device {n}: no CUDA GPU is available here (torch {torch.__version__}); "
                            "use --device cpu or auto")
    return torch.device(n)


def module_device(model: Any) -> Any:
    """The device of ``model``'s first parameter or buffer (CPU for a parameter-less module)."""
    import torch

    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def recognizer_to(rec: Any, device: str) -> Any:
    """Move a loaded :class:`~ferbench.deploy.recognizer.Recognizer`'s PyTorch classifier to ``device``.

    ``auto`` keeps ONNX / TFLite models on the CPU (their only provider here); asking for ``cuda``
    with one of them is a one-line error.
    """
    name = check_device_name(device)
    if getattr(rec.classifier, "torch_model", None) is not None and resolve_device(name).type == "cuda":
        rec.use_torch()  # a checkpoint running on its cached ONNX copy: back to PyTorch for the GPU
    if rec.backend != "torch":
        if name.startswith("cuda"):
            raise FerbenchError(f"--device {name}: {rec.backend} models run on the CPU here; pass a PyTorch "
                                "checkpoint or --device cpu")
        return rec
    rec.classifier.to(resolve_device(name))
    return rec


def pin_torch_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` when it differs (PyTorch has one process-wide pool); ``None`` leaves it."""
    if n is None:
        return
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def machine_info(device: Any = None) -> dict[str, Any]:
    """Where a run ran: OS, Python, CPU model and cores, RAM, torch / ferbench versions, device (+ GPU name).

    Written to ``RUN_DIR/machine.json`` by the trainer and shown in reports, beside wall times.
    """
    import os
    import platform
    import sys

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        ram_gb: float | None = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        ram_gb = None
    info: dict[str, Any] = {"os": platform.platform(), "python": platform.python_version(), "cpu": cpu,
                            "cpu_count": os.cpu_count(), "ram_gb": ram_gb}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device is not None:
            info["device"] = str(device)
            if str(device).startswith("cuda"):
                info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    from ferbench.version import __version__

    info["ferbench"] = __version__
    return info
