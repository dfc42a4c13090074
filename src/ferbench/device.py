"""``--device auto|cpu|cuda``: where models run. ``auto`` = the first CUDA GPU when one is present, else CPU."""

from __future__ import annotations

from typing import Any

from ferbench.errors import FerbenchError

DEVICES = ("auto", "cpu", "cuda")


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
    if rec.backend != "torch":
        if name.startswith("cuda"):
            raise FerbenchError(f"--device {name}: {rec.backend} models run on the CPU here; pass a PyTorch "
                                "checkpoint or --device cpu")
        return rec
    rec.classifier.to(resolve_device(name))
    return rec
