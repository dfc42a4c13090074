"""Box overlaps, vectorised: ``(x1, y1, x2, y2)`` boxes in pixels (shared by the detectors and the tracker)."""

from __future__ import annotations

import numpy as np


def intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)`` → ``(N, M)``."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` → ``(N,)`` areas."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)`` → ``(N, M)`` float32."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    inter = intersection_matrix(a, b)
    return inter / np.maximum(box_areas(a)[:, None] + box_areas(b)[None, :] - inter, 1e-9)
