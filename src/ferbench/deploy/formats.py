"""Model file formats and their cheap checks: export formats, and what a ``--model`` reference names (no torch
import: the CLI runs these before loading anything)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ferbench.errors import FerbenchError
from ferbench.persist.checkpoint import WEIGHTS_DIR

FORMATS = ("onnx", "onnx-int8", "tflite")
SUFFIX = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "tflite": ".tflite"}
TFLITE_HINT = ("tflite export needs litert-torch, an optional extra that is not installed "
               "(pip install 'ferbench[tflite]' — it changes pydantic/jax versions, so a separate venv is safer)")
TFLITE_MODULES = ("litert_torch", "ai_edge_torch")
SHIPPED = ("default", "default-ferplus")  # models shipped inside the package (ferbench/weights/NAME.safetensors)


def check_format(fmt: str) -> None:
    """One-line error for an unknown format, or for ``tflite`` when no converter package is installed."""
    if fmt not in FORMATS:
        raise FerbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "tflite" and not any(importlib.util.find_spec(m) for m in TFLITE_MODULES):
        raise FerbenchError(TFLITE_HINT)


def resolve_model_ref(ref: str | Path) -> tuple[str, Path]:
    """``"default"`` | run dir | ``.safetensors`` | ``.json`` | ``.onnx`` | ``.tflite`` → ``(kind, path)``.

    ``kind`` is ``"torch"`` (a checkpoint or run dir), ``"onnx"`` or ``"tflite"``.

    Raises:
        FerbenchError: one line naming ``ref`` when nothing usable is there.
    """
    if str(ref) in SHIPPED:
        ckpt = WEIGHTS_DIR / f"{ref}.safetensors"
        if not ckpt.exists() or not ckpt.with_suffix(".json").exists():
            raise FerbenchError(f"the {ref!r} model is not shipped in this build (no ferbench/weights/{ckpt.name}); "
                                "pass a run dir, a .safetensors checkpoint or a .onnx file with --model")
        return "torch", ckpt
    p = Path(ref)
    if p.suffix in (".onnx", ".tflite"):
        kind = p.suffix[1:]
        if not p.is_file():
            raise FerbenchError(f"{p}: no such {kind.upper()} file")
        if not p.with_suffix(".json").is_file():
            raise FerbenchError(f"{p}: sidecar {p.with_suffix('.json').name} missing (written by ferbench export)")
        return kind, p
    if not p.exists():
        raise FerbenchError(f"{ref}: no such model (expected 'default', a run dir, a .safetensors or a .onnx file)")
    return "torch", p
