"""Figures: one panel per face (view, overlay, top-3 classes) and the per-class attention grid.

Uses matplotlib's object API (``Figure`` + ``savefig``), never pyplot, so no GUI backend or global
figure state is involved; overlays use pytorch-grad-cam's ``show_cam_on_image``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ferbench.persist.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from ferbench.explain.explainer import ClassMaps, Explanation

METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM",
                 "saliency": "saliency", "integrated-gradients": "integrated gradients"}


def overlay(view: np.ndarray, heat: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """``view`` float ``(S, S, 3)`` in [0, 1] + ``heat`` float ``(S, S)`` in [0, 1] → uint8 RGB ``(S, S, 3)`` (jet)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(np.clip(view, 0, 1).astype(np.float32), np.clip(heat, 0, 1).astype(np.float32),
                             use_rgb=True, image_weight=image_weight)


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_panel(expl: Explanation, i: int, path: str | Path, k: int = 3) -> Path:
    """Write face ``i`` of ``expl`` as a PNG: the model's view, the map overlaid, the top-``k`` classes."""
    fig = Figure(figsize=(8.0, 2.7), layout="constrained")
    ax_face, ax_map, ax_bar = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax_face.imshow(expl.views[i])
    ax_face.set_title("input (model view)", fontsize=9)
    ax_map.imshow(overlay(expl.views[i], expl.maps[i]))
    what = expl.classes[int(expl.targets[i])]
    ax_map.set_title(f"{METHOD_TITLES.get(expl.method, expl.method)}: {what}", fontsize=9)
    for ax in (ax_face, ax_map):
        ax.set_xticks([])
        ax.set_yticks([])
    top = expl.top(i, k)
    names = [n for n, _ in top][::-1]
    vals = [p for _, p in top][::-1]
    bars = ax_bar.barh(names, vals, color=["#d62728" if n == what else "#1f77b4" for n in names])
    ax_bar.bar_label(bars, labels=[f"{v:.0%}" for v in vals], fontsize=8, padding=2)
    ax_bar.set_xlim(0, 1.15)
    ax_bar.set_title(f"top-{len(top)} classes (red: explained)", fontsize=9)
    ax_bar.tick_params(labelsize=8)
    fig.suptitle(Path(expl.sources[i]).name if "#" not in expl.sources[i] else expl.sources[i].split("/")[-1],
                 fontsize=9)
    return _save(fig, Path(path))


def save_class_maps(cm: ClassMaps, path: str | Path) -> Path:
    """Write the per-class figure: mean face (top row) and mean map over it (bottom row) per class."""
    k = len(cm.classes)
    fig = Figure(figsize=(1.6 * k + 0.6, 3.9), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False)
    for j, name in enumerate(cm.classes):
        top, bottom = axes[0, j], axes[1, j]
        if cm.counts[j]:
            top.imshow(cm.views[j])
            bottom.imshow(overlay(cm.views[j], cm.maps[j] / max(float(cm.maps[j].max()), 1e-12)))
        else:
            for ax in (top, bottom):
                ax.text(0.5, 0.5, "none\ncorrect", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        top.set_title(f"{name}: n={cm.counts[j]}\n({cm.correct[j]}/{cm.totals[j]} correct)", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("mean face", fontsize=8)
    axes[1, 0].set_ylabel(f"mean {METHOD_TITLES.get(cm.method, cm.method)}", fontsize=8)
    fig.suptitle(f"Where each expression lives: {cm.model_name} on {cm.dataset}/{cm.split} "
                 f"(mean over n correctly classified images per class)", fontsize=9)
    return _save(fig, Path(path))
