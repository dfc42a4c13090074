"""Figures: sample grids, confusion matrices, learning curves.

matplotlib's object API (``Figure`` + ``savefig``), never pyplot, so importing this module changes no global
backend and works headless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ferbench.data.dataset import FerDataset


def subplots(*args: Any, figsize: tuple[float, float], **kw: Any) -> tuple[Figure, Any]:
    """``pyplot.subplots`` without pyplot: a standalone ``Figure`` and its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kw)


def sample_grid(ds: FerDataset, out: Path, per_class: int = 8, seed: int = 0) -> Path:
    """One row per class of ``per_class`` random images; writes a PNG."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    fig, axes = subplots(ds.num_classes, per_class, figsize=(per_class * 1.1, ds.num_classes * 1.2),
                             squeeze=False)
    for ci, cname in enumerate(ds.classes):
        idx = np.flatnonzero(labels == ci)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j in range(per_class):
            ax = axes[ci, j]
            ax.axis("off")
            if j < len(pick):
                img = ds.images[pick[j]].numpy()
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        axes[ci, 0].text(-0.1, 0.5, f"{cname} ({len(idx)})", transform=axes[ci, 0].transAxes, ha="right",
                         va="center", fontsize=9)
    fig.suptitle(ds.name)
    fig.subplots_adjust(left=0.18, wspace=0.05, hspace=0.05)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def confusion_figure(cm_norm: list[list[float]], classes: list[str], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows = true class) as a PNG heatmap with values."""
    cm = np.asarray(cm_norm)
    fig, ax = subplots(figsize=(1 + 0.7 * len(classes), 0.8 + 0.6 * len(classes)))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def learning_curves(history: list[dict[str, Any]], out: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    ep = [r["epoch"] for r in history]
    fig, (a, b) = subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [r["train_loss"] for r in history], label="train")
    a.plot(ep, [r["val_loss"] for r in history], label="val")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(ep, [r["train_accuracy"] for r in history], label="train")
    b.plot(ep, [r["val_accuracy"] for r in history], label="val")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
