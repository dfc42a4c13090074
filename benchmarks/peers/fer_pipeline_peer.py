"""The `fer` package's whole pipeline, ``FER().detect_emotions``, on frames given by benchmarks/pipeline.py.

Runs in fer's own venv (see fer_peer.py for how to build it)::

    benchmarks/peers/.venv-fer/bin/python benchmarks/peers/fer_pipeline_peer.py FRAMES.npz OUT.json [--reps 50]

``FRAMES.npz`` holds ``astronaut`` (H, W, 3), ``composites`` (N, H, W, 3) and ``video`` (F, H, W, 3), uint8
RGB. fer expects BGR (it is built on ``cv2``), so frames are flipped to BGR once, outside the timing.
``FER()`` is fer's default: OpenCV Haar cascade detector, its Keras mini-Xception classifier.
Writes: median ms per astronaut frame (``reps`` calls after 3 warm-ups), its boxes, per-composite boxes
(x1, y1, x2, y2) and top labels, mean ms per video frame, versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("npz")
    ap.add_argument("out")
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()

    import numpy as np
    from fer.fer import FER

    d = np.load(args.npz)
    det = FER()

    def run(bgr):
        faces = det.detect_emotions(bgr)
        boxes = [[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]] for f in faces]
        labels = [max(f["emotions"], key=f["emotions"].get) for f in faces]
        return boxes, labels

    astro = np.ascontiguousarray(d["astronaut"][..., ::-1])
    for _ in range(3):
        run(astro)
    ts = []
    for _ in range(args.reps):
        t = time.perf_counter()
        run(astro)
        ts.append(time.perf_counter() - t)
    a_boxes, a_labels = run(astro)
    c_boxes, c_labels = [], []
    for img in d["composites"]:
        b, lab = run(np.ascontiguousarray(img[..., ::-1]))
        c_boxes.append(b)
        c_labels.append(lab)
    video = [np.ascontiguousarray(f[..., ::-1]) for f in d["video"]]
    t = time.perf_counter()
    for f in video:
        run(f)
    v_ms = 1000 * (time.perf_counter() - t) / max(1, len(video))
    import cv2
    import fer
    import tensorflow as tf

    out = {"astronaut_ms": 1000 * statistics.median(ts), "astronaut_boxes": a_boxes, "astronaut_labels": a_labels,
           "composite_boxes": c_boxes, "composite_labels": c_labels, "video_ms": v_ms,
           "versions": {"fer": getattr(fer, "__version__", "?"), "tensorflow": tf.__version__, "opencv": cv2.__version__,
                        "python": sys.version.split()[0]}}
    with open(args.out, "w") as f:
        json.dump(out, f, default=float)


if __name__ == "__main__":
    main()
