"""Interleaved A/B of one detector setting on the astronaut frame: end-to-end ``Recognizer.predict`` and detect ms.

    .venv/bin/python benchmarks/detector_ab.py --param look_from --values none,0.45 [--detector blazeface] [--reps 200]

The shipped ``default`` model runs as ``Recognizer.load("default")`` does (int8 ONNX, h-flip TTA, classifier 1
thread, detector 2); ``--param`` is set on the built detector (an attribute of ``BlazeFaceDetector``:
``trust``, ``look_from``, ``verify``, ``min_confidence``) before each call, the values taking turns, so a busy
machine slows every value alike. Prints the median per value and the ratio to the first value, then the
classifier's forward and crop + preprocessing timed apart on the detected face. Use a quiet
machine for absolute figures: ``benchmarks/pipeline.py`` is the one that the README's table comes from.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from pipeline import astronaut_frame  # benchmarks/ on sys.path


def _value(s: str) -> float | None:
    return None if s.lower() == "none" else float(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="blazeface")
    ap.add_argument("--param", required=True, help="detector attribute to vary (e.g. look_from, trust)")
    ap.add_argument("--values", required=True, help="comma-separated; 'none' = off")
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()

    from ferbench.deploy.recognizer import Recognizer

    frame, _ = astronaut_frame()
    rec = Recognizer.load("default", detector=args.detector)
    det = rec.detector
    if not hasattr(det, args.param):
        raise SystemExit(f"error: detector {args.detector!r} has no setting {args.param!r}")
    values = [_value(v) for v in args.values.split(",")]
    e2e: dict[float | None, list[float]] = {v: [] for v in values}
    dets: dict[float | None, list[float]] = {v: [] for v in values}
    faces: dict[float | None, int] = {}
    for v in values:  # warm-up
        setattr(det, args.param, v)
        for _ in range(10):
            rec.predict(frame, color="rgb")
    for _ in range(args.reps):
        for v in values:
            setattr(det, args.param, v)
            t = time.perf_counter()
            faces[v] = len(rec.predict(frame, color="rgb"))
            e2e[v].append(time.perf_counter() - t)
            t = time.perf_counter()
            det.detect(frame)
            dets[v].append(time.perf_counter() - t)
    # where the end-to-end time goes, at the first value: the classifier's forward (both TTA views in one batch)
    # and crop + preprocessing, timed apart on the detected face
    setattr(det, args.param, values[0])
    d = det.detect(frame)
    pieces: dict[str, list[float]] = {"classifier forward": [], "crop + preprocessing": []}
    if len(d):
        crop = rec.crop(frame, d.boxes[0])
        x = rec._inputs([crop])
        xb = torch.cat([x, x.flip(-1)]) if rec.classifier.tta_hflip else x
        for _ in range(args.reps):
            t = time.perf_counter()
            rec.classifier.logits(xb)
            pieces["classifier forward"].append(time.perf_counter() - t)
            t = time.perf_counter()
            rec._inputs([rec.crop(frame, d.boxes[0])])
            pieces["crop + preprocessing"].append(time.perf_counter() - t)
    base = 1000 * float(np.median(e2e[values[0]]))
    print(f"astronaut 640x480, {args.detector}, {args.reps} interleaved calls per value")
    print(f"| {args.param} | end-to-end ms | detect ms | faces | end-to-end vs first |\n|---|---:|---:|---:|---:|")
    for v in values:
        ms = 1000 * float(np.median(e2e[v]))
        print(f"| {v} | {ms:.2f} | {1000 * float(np.median(dets[v])):.2f} | {faces[v]} | {ms / base:.2f}x |")
    for name, ts in pieces.items():
        if not ts:
            continue
        what = f" ({rec.backend}, batch {len(xb)}, {rec.classifier.threads} thread(s))" if name.startswith("classifier") else ""
        print(f"{name}{what}: {1000 * float(np.median(ts)):.2f} ms")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
