"""Temperature scaling (Guo et al. 2017): one scalar ``T`` fitted on the validation split so that
``softmax(z / T)`` is calibrated; accuracy is unchanged (the argmax does not move).

The fitted ``T`` is stored in the checkpoint sidecar as ``calibration = {"temperature": T, "split": ...}`` and
applied by every reader of probabilities (evaluation, predict, serve, export).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, y: np.ndarray, max_iter: int = 200) -> float:
    """The ``T > 0`` minimising the NLL of ``softmax(logits / T)``.

    Args:
        logits: ``(N, C)`` float scores.
        y: ``(N,)`` int labels in ``[0, C)``.

    Returns:
        ``T`` as a float (1.0 for an empty input), bounded to ``[0.05, 20]``.
    """
    if len(y) == 0:
        return 1.0
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(float(log_t.detach().exp()), 0.05, 20.0))


def temperature_of(meta: dict[str, Any]) -> float:
    """The calibration temperature stored in a sidecar (1.0 when the checkpoint is not calibrated)."""
    cal = meta.get("calibration") or {}
    return float(cal.get("temperature") or 1.0)
