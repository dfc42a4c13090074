"""ferbench: facial expression recognition benchmark, study and deployment toolkit."""

from __future__ import annotations

from typing import Any

from ferbench.version import __version__

__all__ = ["Recognizer", "__version__", "create_model", "list_models", "load_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy: `import ferbench` stays fast; torch/timm load on first use.
    if name in ("create_model", "list_models"):
        from ferbench import models

        return getattr(models, name)
    if name == "load_dataset":
        from ferbench.data import load_dataset

        return load_dataset
    if name == "Recognizer":
        from ferbench.deploy.recognizer import Recognizer

        return Recognizer
    raise AttributeError(name)
