"""Export formats and their cheap checks (no torch import: the CLI runs these before loading anything)."""

from __future__ import annotations

import importlib.util

from ferbench.errors import FerbenchError

FORMATS = ("onnx", "onnx-int8", "tflite")
SUFFIX = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "tflite": ".tflite"}
TFLITE_HINT = ("tflite export needs litert-torch, an optional extra that is not installed "
               "(pip install 'ferbench[tflite]' — it changes pydantic/jax versions, so a separate venv is safer)")
TFLITE_MODULES = ("litert_torch", "ai_edge_torch")


def check_format(fmt: str) -> None:
    """One-line error for an unknown format, or for ``tflite`` when no converter package is installed."""
    if fmt not in FORMATS:
        raise FerbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "tflite" and not any(importlib.util.find_spec(m) for m in TFLITE_MODULES):
        raise FerbenchError(TFLITE_HINT)
