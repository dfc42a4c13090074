"""Face detectors behind one interface: ``detector.detect(rgb) -> Detections``.

``blazeface`` (MediaPipe's BlazeFace short-range CNN, model files shipped in ``faces/models``, run by
ai-edge-litert or OpenCV's dnn module, on the frame at 128 px and again at 272 px so small faces are found,
each candidate confirmed by a second look at its own scale) is the default; ``blazeface-fast`` is one pass on the whole frame (faces larger than ~1/5 of the
frame: webcam, portrait); ``blazeface-accurate`` scans the whole frame at 480 px instead of 272 (more small
and hard faces, ~2.8x the default's detection time on the astronaut, 2026-12-04); ``blazeface-full`` is the 192-px full-range model; ``haar`` (OpenCV cascade) is always there too; ``mediapipe`` and ``mtcnn`` (facenet-pytorch)
are optional and raise a one-line install hint when missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from ferbench.device import pin_torch_threads
from ferbench.errors import FerbenchError
from ferbench.faces.detections import Detections, Detector, _as_rgb  # noqa: F401 (re-exported)

DETECTORS = ("blazeface", "blazeface-fast", "blazeface-accurate", "blazeface-full", "haar", "mediapipe", "mtcnn")
DEFAULT_DETECTOR = "blazeface"

MEDIAPIPE_HINT = ("detector 'mediapipe' is not installed: pip install 'ferbench[mediapipe]' "
                  "(= mediapipe==0.10.21, the last release whose wheel ships the face-detection model files)")
MTCNN_HINT = ("detector 'mtcnn' is not installed: pip install --no-deps facenet-pytorch "
              "(without its deps: it pins an old torch)")


@contextmanager
def opencv_threads(n: int | None) -> Iterator[None]:
    """Run OpenCV's parallel loops with ``n`` threads (``None``: leave as is), then restore.

    ``cv2.setNumThreads`` is process-wide; OpenCV's pool and PyTorch's OpenMP pool each want every
    core, and on a busy 2-core box the classifier right after a parallel detection waits on
    descheduled threads (see README "Threads").
    """
    if n is None:
        yield
        return
    old = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(old)


class HaarDetector:
    """OpenCV frontal-face Haar cascade (Viola-Jones), as in seeds 002/003.

    The image is downscaled so its longer side is at most ``max_side`` before detection (speed;
    boxes are mapped back). ``min_face`` is the smallest face side in pixels of the detection image.
    One cascade per thread: ``CascadeClassifier`` is not documented as thread-safe.
    """

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_face: int = 24, max_side: int = 480, threads: int | None = None) -> None:
        self.path = str(cv2.data.haarcascades + cascade)
        if cv2.CascadeClassifier(self.path).empty():
            raise FerbenchError(f"haar: cannot load cascade {self.path}")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_face, self.max_side = min_face, max_side
        self.threads = threads
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        c = getattr(self._local, "cascade", None)
        if c is None:
            c = self._local.cascade = cv2.CascadeClassifier(self.path)
        return c

    def detect(self, image: np.ndarray) -> Detections:
        rgb = _as_rgb(image)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        with opencv_threads(self.threads):
            rects, _, weights = self._cascade().detectMultiScale3(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(self.min_face, self.min_face), outputRejectLevels=True)
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4) / scale
        boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], 1)
        raw = np.asarray(weights, np.float32).reshape(-1)
        return Detections(boxes, np.full(len(raw), np.nan, np.float32), None, raw).sorted()


class MediapipeDetector:
    """MediaPipe BlazeFace short-range detector (legacy ``solutions`` API, model files in the wheel)."""

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5, threads: int | None = None) -> None:
        try:
            from mediapipe.python.solutions import face_detection  # type: ignore[import-not-found]
        except ImportError:
            raise FerbenchError(MEDIAPIPE_HINT) from None
        self._fd = face_detection
        self.min_confidence = min_confidence
        self._local = threading.local()

    def detect(self, image: np.ndarray) -> Detections:
        rgb = _as_rgb(image)
        det = getattr(self._local, "det", None)
        if det is None:
            det = self._local.det = self._fd.FaceDetection(model_selection=0,
                                                           min_detection_confidence=self.min_confidence)
        res = det.process(np.ascontiguousarray(rgb))
        if not res.detections:
            return Detections.empty()
        h, w = rgb.shape[:2]
        boxes, scores, lms = [], [], []
        for d in res.detections:
            b = d.location_data.relative_bounding_box
            boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            scores.append(d.score[0])
            kp = d.location_data.relative_keypoints  # eyes, nose tip, mouth centre, ear tragions
            eyes = sorted([(kp[0].x * w, kp[0].y * h), (kp[1].x * w, kp[1].y * h)])
            mouth = (kp[3].x * w, kp[3].y * h)
            lms.append([eyes[0], eyes[1], (kp[2].x * w, kp[2].y * h), mouth, mouth])
        return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                          np.asarray(lms, np.float32)).sorted()


class MtcnnDetector:
    """MTCNN from facenet-pytorch (its weights ship inside the package; CPU).

    ``threads``: PyTorch intra-op threads for its three networks, set (``torch.set_num_threads``, one
    process-wide pool) before each call whose count differs; ``None`` leaves the pool as it is.
    """

    name = "mtcnn"

    def __init__(self, min_confidence: float = 0.9, threads: int | None = None) -> None:
        try:
            from facenet_pytorch import MTCNN  # type: ignore[import-not-found]
        except ImportError:
            raise FerbenchError(MTCNN_HINT) from None
        self._mtcnn = MTCNN(keep_all=True, device="cpu")
        self.min_confidence = min_confidence
        self.threads = None if threads is None else max(1, int(threads))
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> Detections:
        rgb = _as_rgb(image)
        with self._lock:
            pin_torch_threads(self.threads)
            boxes, probs, lms = self._mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return Detections.empty()
        keep = np.asarray(probs, np.float32) >= self.min_confidence
        if not keep.any():
            return Detections.empty()
        lm = np.asarray(lms, np.float32)[keep]
        return Detections(np.asarray(boxes, np.float32)[keep], np.asarray(probs, np.float32)[keep], lm).sorted()


def _blazeface(model: str, name: str, **defaults: Any) -> Callable[..., Detector]:
    def make(**kwargs: Any) -> Detector:
        from ferbench.faces.blazeface import BlazeFaceDetector

        if kwargs.get("threads") is None:
            kwargs.pop("threads", None)
        return BlazeFaceDetector(model, name=name, **{**defaults, **kwargs})

    return make


# blazeface: the 128-px whole-frame pass + one pass with the frame's longer side at 272 px (faces down to ~60 px
# in a 640x480 frame); candidates from 0.3, each confirmed by a second look at its own scale (mean of both
# looks' scores >= 0.65). Chosen on benchmarks/pipeline.py's composites with --seed 0 (200 images): scan 272
# recall 92.2 %, 0.030 false positives per image, against 90.8 % / 0.035 for the 3x3 tiles it replaced (at
# 2/5 of their time); scan 304-384 found 0.5-3 points more at 0.040-0.090 false positives. Reported on --seed 1.
# blazeface-accurate: the same with the scan at 480 px (benchmarks/detector_points.py --seed 0, 2026-12-02, before
# trust and look_from: recall 95.2 % at 0.045 false positives per image vs 91.4 % / 0.050 for scan 272 there; 16.9 vs
# 4.6 ms on the astronaut, 1 thread; with both, 2026-12-04: 95.4 % / 0.030 vs 92.0 % / 0.035).
# trust=0.8: a candidate scoring >= 0.8 at the first look skips the second (detector_points.py --trust, seed 0: the
# same recall and false positives at scans 272 and 480, half the second looks at 272; below 0.7 FPs rise).
# look_from=0.45: candidates (after NMS) below 0.45 at the first look are dropped without the second
# (detector_points.py --scans 272,480 --min-conf 0.3,...,0.55 --verify 0.65 --trust 0.8, seed 0: the same recall and
# false positives as from 0.3 at both scans with 1.02 instead of 1.81 second looks per image at 272, 2.06 instead
# of 4.37 at 480; 0.5 loses 0.2 points at 272. Seed 1: the same recall and FP at 0.45, 0.85 vs 1.67 looks at 272).
_FACTORIES: dict[str, Callable[..., Detector]] = {
    "blazeface": _blazeface("short", "blazeface", scan=272, min_confidence=0.3, verify=0.65, trust=0.8,
                            look_from=0.45),
    "blazeface-fast": _blazeface("short", "blazeface-fast", tiles=0),
    "blazeface-accurate": _blazeface("short", "blazeface-accurate", scan=480, min_confidence=0.3, verify=0.65,
                                     trust=0.8, look_from=0.45),
    "blazeface-full": _blazeface("full", "blazeface-full", tiles=0), "haar": HaarDetector,
    "mediapipe": MediapipeDetector, "mtcnn": MtcnnDetector}


def get_detector(name: str = DEFAULT_DETECTOR, **kwargs: Any) -> Detector:
    """Build a detector by name (see :data:`DETECTORS`); unknown → one-line error.

    ``threads=N`` (every detector accepts it) caps the detector's own threads; ``None`` = its default.
    """
    key = name.lower()
    if key not in _FACTORIES:
        raise FerbenchError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return _FACTORIES[key](**kwargs)


def detect(image: np.ndarray, detector: str | Detector = DEFAULT_DETECTOR) -> Detections:
    """Detect faces in a uint8 RGB ``(H, W, 3)`` image (grey ``(H, W)`` accepted)."""
    det = get_detector(detector) if isinstance(detector, str) else detector
    return det.detect(image)
