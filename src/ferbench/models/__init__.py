"""Model zoo: ``create_model(name, ...)``, ``list_models(pattern)``; one file per family.

Adding a model = one function with ``@register_model`` in a family file imported below.
"""

from ferbench.models._offline import ensure_hub_offline

ensure_hub_offline()  # before timm imports huggingface_hub; never overrides the user's own setting

from ferbench.models import fernet, seed002, timm_models  # noqa: E402,F401  (fill the registry)
from ferbench.models.registry import (  # noqa: E402
    count_params,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = ["count_params", "create_model", "list_models", "model_info", "register_model"]

import ferbench.models.esr  # noqa: E402,F401  (zoo family: esr)
import ferbench.models.light  # noqa: E402,F401  (zoo family: light)
import ferbench.models.seed000_custom  # noqa: E402,F401  (zoo family: seed000_custom)
import ferbench.models.seed000_keras  # noqa: E402,F401  (zoo family: seed000_keras)
import ferbench.models.seed001  # noqa: E402,F401  (zoo family: seed001)
import ferbench.models.seed002_extra  # noqa: E402,F401  (zoo family: seed002_extra)
import ferbench.models.seed003  # noqa: E402,F401  (zoo family: seed003)
