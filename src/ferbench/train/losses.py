"""Class weighting and the Keras-equivalent weighted cross-entropy (docs/protocol.md §1.5)."""

from __future__ import annotations

import numpy as np
import torch

from ferbench.errors import ConfigError
from ferbench.methods.base import cross_entropy


def class_weights(counts: np.ndarray | list[int], scheme: str) -> np.ndarray | None:
    """Per-class loss weights from training counts ``(C,)``.

    ``simple``: ``max_k n_k / n_c`` (most frequent class → 1); ``conservative``: the same capped at 3;
    ``none``: ``None``. Classes with no samples get weight 0.
    """
    if scheme in (None, "none"):
        return None
    n = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore"):
        w = np.where(n > 0, n.max() / n, 0.0)
    if scheme == "simple":
        return w
    if scheme == "conservative":
        return np.minimum(w, 3.0)
    raise ConfigError(f"unknown class_weights {scheme!r}; choose none, simple or conservative")


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Keras ``fit(class_weight=...)`` semantics: ``mean_i(w_i · CE_i)`` over the batch.

    The one training cross-entropy, :func:`ferbench.methods.base.cross_entropy` (its docstring states the
    soft-label rule). ``target``: ``(B,)`` int64 class indices or ``(B, C)`` float distributions.

    Note: PyTorch's ``CrossEntropyLoss(weight=w)`` divides by ``Σ w[y_i]`` instead; Keras divides by ``B``.
    """
    return cross_entropy(logits, target, weights, label_smoothing)
