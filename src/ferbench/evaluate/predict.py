"""Batched inference on uint8 tensors through the checkpoint's preprocessing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ferbench.data.preprocess import Preprocessing
from ferbench.evaluate.calibration import calibrated_probs

View = Callable[[torch.Tensor], torch.Tensor]


def identity_view(x: torch.Tensor) -> torch.Tensor:
    """The preprocessed batch itself."""
    return x


def hflip_view(x: torch.Tensor) -> torch.Tensor:
    """The mirror image of a preprocessed batch ``(B, C, H, W)``."""
    return x.flip(-1)


@torch.inference_mode()
def predict_view_logits(model: nn.Module, images: torch.Tensor, preprocessing: Preprocessing, batch_size: int = 512,
                        tta_hflip: bool = False, views: Sequence[View] | None = None) -> np.ndarray:
    """Scores of each view: float32 ``(V, N, num_classes)``.

    ``views`` are functions of a preprocessed batch ``(B, C, H, W)`` that return a batch of the same shape;
    by default the image alone (``V = 1``), or the image and its mirror with ``tta_hflip`` (``V = 2``);
    given ``views``, ``tta_hflip`` is not used.
    """
    from ferbench.device import module_device

    if views is None:
        views = (identity_view, hflip_view) if tta_hflip else (identity_view,)
    dev = module_device(model)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = preprocessing(images[i:i + batch_size].to(dev))
        out.append(torch.stack([model(view(x)).float() for view in views]).cpu())
    model.train(was_training)
    if not out:
        return np.zeros((len(views), 0, 0), dtype=np.float32)
    return torch.cat(out, 1).numpy().astype(np.float32)


def predict_probs(model: nn.Module, images: torch.Tensor, preprocessing: Preprocessing, batch_size: int = 512,
                  tta_hflip: bool = False, temperature: float = 1.0, logit_bias: np.ndarray | None = None) -> np.ndarray:
    """Softmax probabilities for ``images`` uint8 ``(N, H, W, C)`` → float32 ``(N, num_classes)``.

    ``tta_hflip`` averages the probabilities of the image and its mirror; ``temperature`` and ``logit_bias``
    are the sidecar's calibration (:func:`ferbench.evaluate.calibration.calibrated_probs`). Batches run on
    the model's device (see :mod:`ferbench.device`); the result is always on the CPU.
    """
    z = predict_view_logits(model, images, preprocessing, batch_size, tta_hflip)
    if z.shape[1] == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return calibrated_probs(z, temperature, logit_bias)
