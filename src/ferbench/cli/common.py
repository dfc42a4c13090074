"""Small helpers shared by CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def check_config_names(cfg: dict[str, Any], where: str = "", data_files: bool = False) -> None:
    """Refuse a resolved config whose model or dataset does not exist, before torch loads.

    The model name is checked against the shipped zoo table (:func:`ferbench.models.table.check_model_name`:
    right in a CLI process, where no user code registered models of its own), the dataset name or union
    against the data registry, and with ``data_files`` also that the dataset's files are under the config's
    data root. ``where`` prefixes the message (e.g. a sweep trial's key and label).

    Raises:
        FerbenchError: one line naming the unknown model or dataset, or the dataset files not found.
    """
    from ferbench.data.registry import check_dataset_files, check_dataset_names
    from ferbench.models.table import check_model_name

    try:
        check_model_name(cfg["model"]["name"])
        check_dataset_names(cfg["data"]["name"])
        if data_files:
            check_dataset_files(cfg["data"]["name"], cfg["data"].get("root"))
    except FerbenchError as e:
        raise FerbenchError(f"{where}{e}") from None
