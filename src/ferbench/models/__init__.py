"""Model zoo: ``create_model(name, ...)``, ``list_models(pattern)``; one file per family.

Adding a model = one file in this package with a builder decorated by ``@register_model``: every module
here is imported when the package is (:func:`~ferbench.models.registry.load_families`), so nothing is
listed by hand.
"""

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

load_families()
