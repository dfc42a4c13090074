"""Mixup and CutMix on a batch and its target distributions (timm's batch mode: each sample is mixed with the
sample at the mirrored position, ``x.flip(0)``).

Targets are mixed with the same weight as the pixels, so soft labels (FER+ vote distributions) and class
weights stay meaningful under mixing (see the soft-label rule in :mod:`ferbench.methods.base`).
"""

from __future__ import annotations

import numpy as np
import torch


def mix_batch(x: torch.Tensor, target: torch.Tensor, mixup: float, cutmix: float,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix a batch.

    Args:
        x: ``(B, C, H, W)`` float images.
        target: ``(B, K)`` float distributions.
        mixup: Beta(α, α) mixup α (0 = off).
        cutmix: Beta(α, α) cutmix α (0 = off); with both on, each batch uses one of the two (p = 0.5).
        rng: the epoch's generator (reproducible, resumable).

    Returns:
        ``(mixed x, mixed target, λ)``; ``λ`` is the weight of the unflipped batch (1.0 when nothing was mixed).
    """
    if x.shape[0] < 2 or (mixup <= 0 and cutmix <= 0):
        return x, target, 1.0
    use_cut = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cut else rng.beta(mixup, mixup))
    if use_cut:
        h, w = x.shape[-2:]
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the area actually kept
    else:
        x = x * lam + x.flip(0) * (1.0 - lam)
    return x, target * lam + target.flip(0) * (1.0 - lam), lam
