"""Face crops: square box + margin (the sidecar's ``crop_margin``), optional eye-line alignment.

Crops stay uint8 RGB at their native resolution, or are resized to ``size`` when asked; the
model-input conversion (resize, grey/RGB, normalisation) is always
:class:`ferbench.data.preprocess.Preprocessing`, never redone here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def square_box(box: np.ndarray | list[float], margin: float, shift: float = 0.0) -> np.ndarray:
    """``x1, y1, x2, y2`` → a square box of side ``max(w, h) * (1 + 2*margin)``, centre moved down by ``shift``.

    ``margin`` is the extra border on each side as a fraction of the box side (``crop_margin``);
    ``shift`` moves the centre vertically by that fraction of the box side (``crop_shift``, + = down).
    Returns float32 ``(4,)``; it may extend past the image (the crop pads with edge pixels).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    base = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + shift * base
    side = base * (1 + 2 * margin)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle in degrees of the line through the two eyes (landmarks ``(5, 2)``; points 0 and 1)."""
    (xa, ya), (xb, yb) = sorted(map(tuple, landmarks[:2]))
    return math.degrees(math.atan2(yb - ya, xb - xa))


def crop_face(image: np.ndarray, box: np.ndarray | list[float], margin: float = 0.1,
              size: int | None = None, landmarks: np.ndarray | None = None, align: bool = False,
              shift: float = 0.0) -> np.ndarray:
    """Cut one face out of ``image``.

    Args:
        image: uint8 ``(H, W, C)`` (any channel count) or ``(H, W)``.
        box: ``x1, y1, x2, y2`` pixel box from a detector.
        margin: extra border per side, fraction of the box side.
        size: output side in pixels (bilinear/area resize); ``None`` keeps the crop's own side.
        landmarks: ``(5, 2)`` points; with ``align=True`` the crop is rotated so the eyes are level.
        shift: vertical centre shift, fraction of the box side (+ = down).
    Returns:
        uint8 square crop ``(S, S, C)`` (or ``(S, S)`` for a 2-D input). Out-of-image parts
        replicate the border pixels.
    """
    sq = square_box(box, margin, shift)
    side = max(1, int(round(sq[2] - sq[0])))
    out = side if size is None else int(size)
    cx, cy = (sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2
    angle = eye_angle(landmarks) if (align and landmarks is not None) else 0.0
    # One affine warp does rotate-about-centre + crop; edge pixels fill what lies outside.
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0)
    m[0, 2] += side / 2 - cx
    m[1, 2] += side / 2 - cy
    crop = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if out != side:
        crop = cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA if out < side else cv2.INTER_LINEAR)
    if image.ndim == 3 and crop.ndim == 2:
        crop = crop[..., None]
    return crop


def crop_faces(image: np.ndarray, boxes: np.ndarray, margin: float = 0.1, size: int | None = None,
               landmarks: np.ndarray | None = None, align: bool = False, shift: float = 0.0) -> list[np.ndarray]:
    """:func:`crop_face` for each row of ``boxes`` ``(N, 4)``; returns N uint8 crops."""
    return [crop_face(image, b, margin, size, None if landmarks is None else landmarks[i], align, shift)
            for i, b in enumerate(boxes)]
