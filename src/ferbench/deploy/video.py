"""The frame loop shared by video files and the webcam: read → detect/track → classify → JSONL + video.

Faces are detected every ``detect_every``-th frame and followed in between by
:class:`ferbench.faces.IouTracker` (optical flow), so each face keeps a ``track_id``; each track's
probabilities are smoothed over time (EMA, ``smooth``; 0 = off). Still images never smooth.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.data.images import swap_rb
from ferbench.deploy.recognizer import FacePrediction, Recognizer, annotate
from ferbench.errors import FerbenchError
from ferbench.faces.track import IouTracker
from ferbench.progress import silenced_stderr

DEFAULT_DETECT_EVERY = 3
DEFAULT_SMOOTH = 0.6

class FrameRecognizer:
    """Per-frame face recognition with tracking and temporal smoothing (one video stream).

    On a detection frame the tracks are first moved to it by the flow and given to a detector that takes
    known boxes (the BlazeFace ones): their faces keep their tracks without the detector's second look.

    Args:
        recognizer: detector + classifier.
        detect_every: run the detector on every k-th frame (1 = every frame); the tracker moves the
            boxes on the others.
        smooth: EMA weight of the past for each track's probabilities, in [0, 1) (0 = off):
            ``p_t = smooth * p_{t-1} + (1 - smooth) * p_frame``.
        detect: False = classify the whole frame (no detection, no tracking).
        max_missed: detection rounds a face may go unseen before its track ends (it keeps moving with
            the optical flow meanwhile, but is not reported); default ``max(1, 6 // detect_every)``,
            i.e. about 6 frames.
        classify_every: classify each tracked face on every k-th frame only (1 = every frame); in between
            a face keeps its last (smoothed) probabilities and only its box moves. A new track is
            classified at once. Expressions change over hundreds of ms: k = 3 at 25 frames/s still
            updates each face 8 times a second, at a third of the classifier's cost.
    """

    def __init__(self, recognizer: Recognizer, detect_every: int = DEFAULT_DETECT_EVERY,
                 smooth: float = DEFAULT_SMOOTH, detect: bool = True, max_missed: int | None = None,
                 classify_every: int = 1) -> None:
        if detect_every < 1:
            raise FerbenchError(f"detect_every must be >= 1, got {detect_every}")
        if classify_every < 1:
            raise FerbenchError(f"classify_every must be >= 1, got {classify_every}")
        self.classify_every = int(classify_every)
        if not 0.0 <= smooth < 1.0:
            raise FerbenchError(f"smooth must be in [0, 1), got {smooth}")
        self.rec, self.detect_every, self.smooth = recognizer, int(detect_every), float(smooth)
        self.detect = detect and recognizer.detector_name != "none"
        self.tracker = IouTracker(max_missed=max(1, 6 // detect_every) if max_missed is None else max_missed)
        self._n = 0

    def __call__(self, frame: np.ndarray, color: str = "bgr") -> list[FacePrediction]:
        """One uint8 frame ``(H, W, 3)`` (BGR by default) → its tracked faces (by ``track_id``)."""
        rec = self.rec
        rgb = swap_rb(frame) if color == "bgr" else frame
        n, self._n = self._n, self._n + 1
        if not self.detect or (rec.detector_name == "auto" and rec.is_face_crop(rgb)):
            return rec.predict_batch([rgb], "rgb", detect=False)[0]
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if n % self.detect_every == 0:
            if self.tracker.tracks and getattr(rec.detector, "takes_known_boxes", False):
                # the tracks moved to this frame first: the detector keeps their faces without a second look
                confirmed = self.tracker.propagate(grey, n)
                known = np.stack([t.box for t in confirmed]) if confirmed else None
                det = rec.detector.detect(rgb, known=known)
            else:
                det = rec.detector.detect(rgb)
            tracks = self.tracker.update(det.boxes, det.scores, det.landmarks, grey, n)
        else:
            tracks = self.tracker.propagate(grey, n)
        if not tracks:
            return []
        h, w = rgb.shape[:2]
        due = [t for t in tracks if "probs" not in t.state or n % self.classify_every == 0]
        fresh = dict(zip(map(id, due), rec.classify_arrays([rec.crop(rgb, t.box, t.landmarks) for t in due]),
                         strict=True))
        out = []
        for t in tracks:
            p = fresh.get(id(t))
            if p is None:
                p = t.state["probs"]  # not due: keep the last probabilities
            elif self.smooth > 0 and "probs" in t.state:
                p = self.smooth * t.state["probs"] + (1 - self.smooth) * p
            t.state["probs"] = p
            pred = rec._prediction(p)
            b = t.box
            box = (int(round(max(0.0, b[0]))), int(round(max(0.0, b[1]))), int(round(min(float(w), b[2]))),
                   int(round(min(float(h), b[3]))))
            out.append(FacePrediction(pred.label, pred.probs, box=box,
                                      score=None if np.isnan(t.score) else round(t.score, 4),
                                      landmarks=None if t.landmarks is None or n != t.last_frame
                                      else np.round(np.asarray(t.landmarks, np.float64), 1).tolist(),
                                      track_id=t.track_id))
        return out


@functools.lru_cache(maxsize=1)
def browser_codec() -> tuple[str, str]:
    """``(fourcc, extension)`` of the first codec this OpenCV build can write that browsers play:
    H.264 in MP4 (``avc1``), else VP9 in WebM (``VP90``), else MPEG-4 part 2 (``mp4v``, not browser-safe).

    Probed once by writing a 2-frame file (FFmpeg's messages during the probe are silenced).
    """
    with tempfile.TemporaryDirectory(prefix="ferbench-codec-") as d:
        for fourcc, ext in (("avc1", ".mp4"), ("VP90", ".webm")):
            path = os.path.join(d, "probe" + ext)
            with silenced_stderr():
                w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 25.0, (64, 48))
                ok = w.isOpened()
                if ok:
                    for i in range(2):
                        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
                w.release()
            if ok and os.path.getsize(path) > 0:
                return fourcc, ext
    return "mp4v", ".mp4"


def video_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An opened ``cv2.VideoWriter`` for ``path`` (its suffix must match :func:`browser_codec`)."""
    fourcc, _ = browser_codec()
    with silenced_stderr():
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps or 25.0, size)
    if not w.isOpened():
        raise FerbenchError(f"{path}: cannot open a video writer ({fourcc})")
    return w


def annotated_name(stem: str) -> str:
    """``STEM.annotated.mp4`` or ``STEM.annotated.webm`` (whichever :func:`browser_codec` writes)."""
    return f"{stem}.annotated{browser_codec()[1]}"


def open_capture(source: str | int | Path) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on a file or camera index; unreadable → one-line FerbenchError."""
    from ferbench.deploy.sources import is_url

    url = not isinstance(source, int) and is_url(str(source))  # rtsp://, rtmp://, http(s):// streams
    if not isinstance(source, int) and not url and not Path(source).is_file():
        raise FerbenchError(f"{source}: no such video file")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our one-line error replaces its WARNs
    try:
        cap = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    finally:
        cv2.utils.logging.setLogLevel(level)
    ok = cap.isOpened()
    if ok and not isinstance(source, int) and not url:
        ok = cap.grab()  # a file that "opens" but has no decodable frame is unreadable too
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    if not ok:
        cap.release()
        what = f"camera {source}" if isinstance(source, int) else str(source)
        why = "unreachable stream or unsupported protocol" if url else "unreadable, unsupported codec or no such device"
        raise FerbenchError(f"{what}: cannot read video ({why})")
    return cap


def frames(cap: cv2.VideoCapture, live: bool = False, every: int = 1,
           max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(frame_index, time_s, frame_bgr uint8 (H, W, 3))``; time is the file position, or
    seconds since start for a live camera."""
    t0, i, n = time.monotonic(), 0, 0
    while max_frames is None or n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            t = time.monotonic() - t0 if live else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield i, round(float(t), 4), frame
            n += 1
        i += 1


@dataclass
class VideoSummary:
    source: str
    frames: int
    frames_with_face: int
    seconds: float
    jsonl: str | None
    annotated: str | None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_frames(recognizer: Recognizer, stream: Iterator[tuple[int, float, np.ndarray]], source: str,
               jsonl: Path | None = None, annotated: Path | None = None, fps: float = 25.0,
               detect: bool = True, show: bool = False,
               on_frame: Callable[[int, float, list[FacePrediction]], None] | None = None,
               detect_every: int = DEFAULT_DETECT_EVERY, smooth: float = DEFAULT_SMOOTH,
               progress: Callable[[int, float], None] | None = None, classify_every: int = 1) -> VideoSummary:
    """The frame loop (video files and webcam alike).

    Each frame: detect (every ``detect_every``-th) or track, classify, smooth (see
    :class:`FrameRecognizer`), one JSONL line ``{"frame", "time", "faces": [...]}`` (each face with its
    ``track_id``), the annotated frame to ``annotated`` (codec from :func:`browser_codec`) and/or a live
    window when ``show``. JSONL lines are flushed as they are written, so an interrupted run keeps
    what it did. ``progress(frames_done, frames_per_s)`` is called after each frame.
    """
    writer, out = None, None
    n = with_face = 0
    start = time.perf_counter()
    window = show
    step = FrameRecognizer(recognizer, detect_every, smooth, detect, classify_every=classify_every)
    try:
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            out = open(jsonl, "w")  # noqa: SIM115 (closed in finally)
        for idx, t, frame in stream:
            faces = step(frame, "bgr")
            n += 1
            if progress is not None:
                progress(n, n / max(time.perf_counter() - start, 1e-9))
            with_face += bool(faces)
            if out is not None:
                out.write(json.dumps({"frame": idx, "time": t, "faces": [f.to_dict() for f in faces]}) + "\n")
                out.flush()
            if on_frame is not None:
                on_frame(idx, t, faces)
            if annotated is not None or window:
                annotate(frame, faces, recognizer.classes)
            if annotated is not None:
                if writer is None:
                    annotated.parent.mkdir(parents=True, exist_ok=True)
                    h, w = frame.shape[:2]
                    writer = video_writer(annotated, fps or 25.0, (w, h))
                writer.write(frame)
            if window:
                window = _show(frame)
                if window and (cv2.waitKey(1) & 0xFF) in (ord("q"), 27):
                    break
    finally:
        if out is not None:
            out.close()
        if writer is not None:
            writer.release()
    return VideoSummary(source, n, with_face, time.perf_counter() - start,
                        None if jsonl is None else str(jsonl), None if annotated is None else str(annotated))


def _show(frame: np.ndarray) -> bool:
    """Show a frame in a window; False (and one message) when OpenCV was built without GUI (headless)."""
    try:
        cv2.imshow("ferbench (q to quit)", frame)
        return True
    except cv2.error:
        print("note: this OpenCV build has no GUI (opencv-python-headless); no live window, "
              "results go to the terminal / --annotate instead")
        return False


def process_video(recognizer: Recognizer, source: str | int | Path, jsonl: Path | None = None,
                  annotated: Path | None = None, every: int = 1, max_frames: int | None = None,
                  detect: bool = True, show: bool = False,
                  on_frame: Callable[[int, float, list[FacePrediction]], None] | None = None,
                  detect_every: int = DEFAULT_DETECT_EVERY, smooth: float = DEFAULT_SMOOTH,
                  progress: Callable[[int, int | None, float], None] | None = None,
                  classify_every: int = 1) -> VideoSummary:
    """A video file or a camera index (``int``) through :func:`run_frames`.

    ``progress(done, total_or_None, frames_per_s)`` is called after each frame (total: the file's
    frame count divided by ``every``, capped by ``max_frames``).
    """
    live = isinstance(source, int)
    cap = open_capture(source)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        total: int | None = None
        if not live:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            total = -(-count // every) if count > 0 else None
            if total is not None and max_frames is not None:
                total = min(total, max_frames)
        cb = None if progress is None else (lambda done, rate: progress(done, total, rate))
        return run_frames(recognizer, frames(cap, live, every, max_frames), str(source), jsonl, annotated,
                          fps / every if not live else 15.0, detect, show, on_frame, detect_every, smooth, cb,
                          classify_every)
    finally:
        cap.release()
        if show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


def summary_dict(s: VideoSummary) -> dict[str, Any]:
    return {"source": s.source, "frames": s.frames, "frames_with_face": s.frames_with_face,
            "seconds": round(s.seconds, 3), "fps": round(s.fps, 2), "jsonl": s.jsonl, "annotated": s.annotated}
