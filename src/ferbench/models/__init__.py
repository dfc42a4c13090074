"""Model zoo: ``create_model(name, ...)``, ``list_models(pattern)``; one file per family.

Adding a model = one file in this package with a builder decorated by ``@register_model``: every module
here is imported the first time the registry is used (:func:`~ferbench.models.registry.load_families`), so
nothing is listed by hand. Importing the package itself loads neither torch nor the families (the names
below resolve on first access), so torch-free parts such as :mod:`ferbench.models.table` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferbench.models._offline import ensure_hub_offline

ensure_hub_offline()  # before any family imports timm (and huggingface_hub); never overrides the user's setting

if TYPE_CHECKING:
    from ferbench.models.registry import (
        count_params,
        create_model,
        list_models,
        load_families,
        model_info,
        register_alias,
        register_model,
    )

__all__ = ["count_params", "create_model", "list_models", "load_families", "model_info", "register_alias",
           "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ferbench.models import registry

        registry.load_families()
        return getattr(registry, name)
    raise AttributeError(f"module 'ferbench.models' has no attribute {name!r}")
