"""Small helpers shared by CLI commands."""

from __future__ import annotations

from pathlib import Path

from ferbench.errors import FerbenchError


def checkpoint_ref(ref: str | Path) -> str | Path:
    """A model reference for commands that need PyTorch weights (``evaluate``): shipped names (``default``),
    run directories, ``.safetensors`` files and ensemble JSONs pass through to the loader (which resolves
    the shipped names); an ONNX / TFLite export is a one-line error."""
    if Path(ref).suffix in (".onnx", ".tflite"):
        raise FerbenchError(f"{ref}: this command needs a PyTorch checkpoint (a run dir, a .safetensors or "
                            "'default'), not an export")
    if not Path(ref).exists():  # a shipped name, or a typo: refused here, before torch loads
        from ferbench.persist.checkpoint import resolve_checkpoint

        resolve_checkpoint(ref)
    return ref
