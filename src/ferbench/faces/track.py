"""Face tracking for video: detect every k-th frame, follow faces in between, keep a stable id per face.

:class:`IouTracker` matches each detection frame's boxes to the live tracks (Hungarian assignment on
IoU against each track's constant-velocity prediction) and, on the frames in between, moves every
box by the median Lucas-Kanade optical flow (``cv2.calcOpticalFlowPyrLK``) of a grid of points inside
it. A track that finds no detection for ``max_missed`` detection rounds is dropped; a new id is given
to each unmatched detection. Ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ferbench.faces.boxes import iou_matrix


def similarity(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """Match score ``(N, M)``: IoU, or — when a detector's box changes scale between detections (IoU
    low although it is the same face) — up to 0.5 for a detection centred within half a side of the
    track's centre with a side ratio in [0.5, 2]."""
    iou = iou_matrix(tracks, dets)
    ct = (tracks[:, None, :2] + tracks[:, None, 2:]) / 2
    cd = (dets[None, :, :2] + dets[None, :, 2:]) / 2
    st = np.maximum(tracks[:, 2] - tracks[:, 0], tracks[:, 3] - tracks[:, 1])[:, None]
    sd = np.maximum(dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1])[None, :]
    dist = np.linalg.norm(ct - cd, axis=-1) / np.maximum(st / 2, 1e-6)
    ratio = sd / np.maximum(st, 1e-6)
    near = np.clip(1 - dist, 0, None) * 0.5 * ((ratio >= 0.5) & (ratio <= 2))
    return np.maximum(iou, near)


@dataclass
class Track:
    """One followed face.

    Attributes:
        track_id: stable id (1, 2, ...), never reused within a tracker.
        box: float32 ``(4,)`` current box x1, y1, x2, y2.
        velocity: float32 ``(4,)`` box change per frame (from the last two detections).
        det_box: the box of the last matched detection.
        score: detector confidence at the last matched detection (NaN for Haar).
        landmarks: ``(5, 2)`` at the last detection (not moved by the flow) or ``None``.
        missed: detection rounds in a row without a matching detection.
        last_frame: frame index of the last matched detection.
        state: free per-track storage (the video loop keeps the smoothed probabilities here).
    """

    track_id: int
    box: np.ndarray
    velocity: np.ndarray
    score: float
    landmarks: np.ndarray | None
    missed: int = 0
    last_frame: int = 0
    det_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    state: dict[str, Any] = field(default_factory=dict)


class IouTracker:
    """Detections on some frames + optical flow on the others → tracks with stable ids.

    Args:
        iou_threshold: least :func:`similarity` (IoU, or centre nearness) between a track's
            flow-moved box and a detection to match them.
        max_missed: detection rounds a track survives without a match (it keeps moving with the flow).
        flow_points: points per side of the grid tracked inside each box (``flow_points²`` points).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 1, flow_points: int = 5) -> None:
        self.iou_threshold, self.max_missed, self.flow_points = iou_threshold, max_missed, flow_points
        self.tracks: list[Track] = []
        self._next_id = 1
        self._prev_grey: np.ndarray | None = None
        self._frame = -1

    def reset(self) -> None:
        self.tracks, self._next_id, self._prev_grey, self._frame = [], 1, None, -1

    def update(self, boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None, grey: np.ndarray,
               frame: int | None = None) -> list[Track]:
        """A detection frame: match ``boxes`` ``(N, 4)`` to the tracks; returns the tracks matched or new.

        ``grey``: the uint8 ``(H, W)`` frame (kept for the flow of the next frames).
        """
        frame = self._frame + 1 if frame is None else frame
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if self.tracks and self._prev_grey is not None and self._frame >= 0 and frame > self._frame:
            self.propagate(grey, frame, _keep_grey=False)  # bring tracks to this frame before matching
        live: list[Track] = []
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if self.tracks and len(boxes):
            iou = similarity(np.stack([t.box for t in self.tracks]), boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    t = self.tracks[r]
                    dt = max(1, frame - t.last_frame)
                    t.velocity = (boxes[c] - t.det_box) / dt
                    t.box, t.det_box = boxes[c].copy(), boxes[c].copy()
                    t.score = float(scores[c])
                    t.landmarks = None if landmarks is None else landmarks[c]
                    t.missed, t.last_frame = 0, frame
                    matched_t.add(r)
                    matched_d.add(c)
        keep = []
        for i, t in enumerate(self.tracks):
            if i in matched_t:
                keep.append(t)
                live.append(t)
            else:
                t.missed += 1
                if t.missed <= self.max_missed:
                    keep.append(t)
        for c in range(len(boxes)):
            if c not in matched_d:
                t = Track(self._next_id, boxes[c].copy(), np.zeros(4, np.float32), float(scores[c]),
                          None if landmarks is None else landmarks[c], last_frame=frame, det_box=boxes[c].copy())
                self._next_id += 1
                keep.append(t)
                live.append(t)
        self.tracks = keep
        self._prev_grey, self._frame = grey, frame
        return sorted(live, key=lambda t: t.track_id)

    def propagate(self, grey: np.ndarray, frame: int | None = None, _keep_grey: bool = True) -> list[Track]:
        """A frame without detection: move each track by the optical flow from the previous frame.

        Tracks whose points are lost move by their velocity instead. Returns the tracks still
        matched at the last detection (``missed == 0``), by id.
        """
        frame = self._frame + 1 if frame is None else frame
        prev = self._prev_grey
        if self.tracks and prev is not None and prev.shape == grey.shape:
            pts, owner = [], []
            g = self.flow_points
            for k, t in enumerate(self.tracks):
                x1, y1, x2, y2 = t.box
                xs = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), g)
                ys = np.linspace(y1 + 0.2 * (y2 - y1), y2 - 0.2 * (y2 - y1), g)
                grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
                pts.append(grid)
                owner += [k] * len(grid)
            p0 = np.concatenate(pts).astype(np.float32).reshape(-1, 1, 2)
            p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, winSize=(15, 15), maxLevel=2)
            own = np.asarray(owner)
            steps = max(1, frame - self._frame)
            for k, t in enumerate(self.tracks):
                ok = (own == k) & (st.reshape(-1) == 1)
                if ok.sum() >= 3:
                    d = np.median((p1 - p0).reshape(-1, 2)[ok], axis=0)
                    t.box = t.box + np.array([d[0], d[1], d[0], d[1]], np.float32)
                else:
                    t.box = t.box + t.velocity * steps
        if _keep_grey:
            self._prev_grey, self._frame = grey, frame
        return sorted((t for t in self.tracks if t.missed == 0), key=lambda t: t.track_id)
