"""Explanations: Grad-CAM, Grad-CAM++, Score-CAM (pytorch-grad-cam), saliency and integrated gradients
(captum); per-face panels and per-class mean maps.

    from ferbench.explain import load_model, explain_images, save_panel
    model, meta = load_model("runs/resnet18")
    expl = explain_images(model, meta, faces_uint8, method="gradcam")   # maps (N, S, S) in [0, 1]
    save_panel(expl, 0, "face0.png")

CAM layers are declared with each model in the registry (``model_info(name).target_layer``).
"""

from ferbench.explain.cam import (
           CAM_METHODS,
           METHODS,
           TargetLayer,
           attribution_maps,
           members_of,
           resolve_target_layer,
)
from ferbench.explain.explainer import Explanation, Face, explain_images, load_model, parse_target, read_faces
from ferbench.explain.per_class import ClassMaps, class_maps, per_class_figure
from ferbench.explain.plot import overlay, save_class_maps, save_panel

__all__ = ["CAM_METHODS", "METHODS", "ClassMaps", "Explanation", "Face", "TargetLayer", "attribution_maps",
           "class_maps", "explain_images", "load_model", "members_of", "overlay", "parse_target",
           "per_class_figure", "read_faces", "resolve_target_layer", "save_class_maps", "save_panel"]
