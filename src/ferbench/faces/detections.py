"""What every detector returns (:class:`Detections`), the :class:`Detector` protocol, and input checking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ferbench.errors import FerbenchError


@dataclass
class Detections:
    """Faces found in one image.

    Attributes:
        boxes: float32 ``(N, 4)`` pixel boxes ``x1, y1, x2, y2`` in the input image.
        scores: float32 ``(N,)`` detector confidence, a probability in [0, 1] (blazeface, mediapipe,
            mtcnn). Haar cascades have no calibrated confidence: their scores are NaN (``None`` in
            JSON); the cascade's raw level weight is in ``raw_scores``.
        raw_scores: float32 ``(N,)`` detector-specific raw score (Haar level weight) or ``None``.
        landmarks: float32 ``(N, 5, 2)`` pixel points (right eye, left eye, nose, mouth right,
            mouth left, as seen in the image: first point has the smaller x) or ``None``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None
    raw_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), None)

    def sorted(self) -> Detections:
        """Largest face first (the usual "main" face)."""
        if len(self) < 2:
            return self
        area = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        order = np.argsort(-area, kind="stable")
        lm = None if self.landmarks is None else self.landmarks[order]
        raw = None if self.raw_scores is None else self.raw_scores[order]
        return Detections(self.boxes[order], self.scores[order], lm, raw)


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> Detections:
        """``image``: uint8 RGB ``(H, W, 3)`` → :class:`Detections` (largest face first)."""
        ...


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise FerbenchError(f"detect: expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[..., 0], cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise FerbenchError(f"detect: expected an (H, W, 3) image, got shape {tuple(image.shape)}")
