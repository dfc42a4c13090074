"""Small helpers shared by CLI commands: shipped model names."""

from __future__ import annotations

from pathlib import Path

from ferbench.errors import FerbenchError

#: Models shipped inside the package (``ferbench/weights/NAME.safetensors``); kept in sync with
#: :data:`ferbench.deploy.recognizer.SHIPPED` (tests/test_cli_conventions.py checks it).
SHIPPED_NAMES = ("default", "default-ferplus")


def checkpoint_ref(ref: str | Path) -> str | Path:
    """A model reference as ``evaluate``/``explain`` take it: shipped names become their checkpoint path.

    ``"default"`` → ``…/ferbench/weights/default.safetensors``; anything else is returned unchanged
    (run directories, ``.safetensors`` files and ensemble JSONs are resolved by the loader).
    """
    if str(ref) in SHIPPED_NAMES:
        from ferbench.deploy.recognizer import resolve_model_ref

        return resolve_model_ref(str(ref))[1]
    if Path(ref).suffix in (".onnx", ".tflite"):
        raise FerbenchError(f"{ref}: this command needs a PyTorch checkpoint (a run dir, a .safetensors or "
                            "'default'), not an export")
    return ref
