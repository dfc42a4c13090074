"""The frame loop shared by video files and the webcam: read → detect+classify → JSONL + annotated video."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.deploy.recognizer import FacePrediction, Recognizer
from ferbench.errors import FerbenchError

_COLOURS = [(60, 60, 230), (60, 160, 60), (200, 100, 160), (0, 200, 255), (200, 130, 40), (0, 140, 255),
            (180, 180, 180), (120, 60, 120)]


def annotate(frame_bgr: np.ndarray, faces: list[FacePrediction], classes: list[str] | None = None) -> np.ndarray:
    """Draw each face's box and ``label prob`` on a uint8 BGR ``(H, W, 3)`` frame (in place; returned)."""
    for f in faces:
        x1, y1, x2, y2 = f.box
        k = classes.index(f.label) if classes and f.label in classes else 0
        col = _COLOURS[k % len(_COLOURS)]
        t = max(1, round(max(frame_bgr.shape[:2]) / 400))
        cv2.rectangle(frame_bgr, (x1, y1), (x2, y2), col, t)
        text = f"{f.label} {f.confidence:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, t)
        ty = max(y1, th + 4)
        cv2.rectangle(frame_bgr, (x1, ty - th - 4), (x1 + tw + 4, ty), col, -1)
        cv2.putText(frame_bgr, text, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, (255, 255, 255), t,
                    cv2.LINE_AA)
    return frame_bgr


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
               on_frame: Callable[[int, float, list[FacePrediction]], None] | None = None) -> VideoSummary:
    """The frame loop (video files and webcam alike).

    Each frame: detect + classify (BGR frame), one JSONL line ``{"frame", "time", "faces": [...]}``,
    the annotated frame to ``annotated`` (MP4, ``mp4v``) and/or a live window when ``show``.
    JSONL lines are flushed as they are written, so an interrupted run keeps what it did.
    """
    writer, out = None, None
    n = with_face = 0
    start = time.perf_counter()
    window = show
    try:
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            out = open(jsonl, "w")  # noqa: SIM115 (closed in finally)
        for idx, t, frame in stream:
            faces = recognizer.predict(frame, color="bgr", detect=detect)
            n += 1
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
                    writer = cv2.VideoWriter(str(annotated), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, (w, h))
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
                  on_frame: Callable[[int, float, list[FacePrediction]], None] | None = None) -> VideoSummary:
    """A video file or a camera index (``int``) through :func:`run_frames`."""
    live = isinstance(source, int)
    cap = open_capture(source)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        return run_frames(recognizer, frames(cap, live, every, max_frames), str(source), jsonl, annotated,
                          fps / every if not live else 15.0, detect, show, on_frame)
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
