"""Model zoo: ``create_model(name, ...)``, ``list_models(pattern)``; one file per family.

Adding a model = one file in this package with a builder decorated by ``@register_model``: every module
here is imported when the package is (:func:`~ferbench.models.registry.load_families`), so nothing is
listed by hand.
"""

from ferbench.models._offline import ensure_hub_offline

ensure_hub_offline()  # before the families import timm (and huggingface_hub); never overrides the user's setting

from ferbench.models.registry import (  # noqa: E402
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

load_families()
