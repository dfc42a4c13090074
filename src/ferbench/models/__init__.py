"""Model zoo: ``create_model(name, ...)``, ``list_models(pattern)``; one file per family.

Adding a model = one function with ``@register_model`` in a family file imported below.
"""

from ferbench.models import seed002, timm_models  # noqa: F401  (fill the registry)
from ferbench.models.registry import count_params, create_model, list_models, model_info, register_model

__all__ = ["count_params", "create_model", "list_models", "model_info", "register_model"]
