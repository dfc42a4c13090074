"""Keep the Hugging Face hub offline while ferbench builds models (nothing is downloaded at run time)."""

from __future__ import annotations

import os
import sys


def ensure_hub_offline() -> None:
    """Set ``HF_HUB_OFFLINE=1`` unless the user chose a value (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``).

    Called just before timm (which imports ``huggingface_hub``) is loaded, and before ImageNet weights
    are looked up: ``huggingface_hub`` reads the variable when it is imported, so an already imported hub
    gets its module constant set too. ``import ferbench`` itself changes no environment variable.
    """
    if "HF_HUB_OFFLINE" in os.environ or "TRANSFORMERS_OFFLINE" in os.environ:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
