"""A/B of the video loop with and without its tracks as known boxes for BlazeFace, on ``pipeline.py``'s video.

    .venv/bin/python benchmarks/track_known.py [--seeds 0,1,2] [--detect-every 3,5/5] [--rounds 2]

On a detection frame ``FrameRecognizer`` hands its tracks (moved to the frame by the optical flow) to the
detector, which keeps a candidate overlapping one without a second look. ``off`` runs the same loop with the
detector's ``takes_known_boxes`` switched off, as before. Per seed (the composite video of ``pipeline.py
--seed``) and per row (``K`` = detect every K-th frame, ``K/C`` = and classify every C-th): face-frames found,
emotion accuracy and track ids per face as ``pipeline.py`` counts them (boxes framed with the model's
sidecar margin and shift instead of the framing ``pipeline.py`` fits on the composites), and the median ms per frame over
``--rounds`` passes of each setting, taking turns (a busy machine slows both alike; read the ratio).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _script import run
from pipeline import backgrounds, composites, face_pool, video_scenes, video_scores  # benchmarks/ on sys.path


def _pass(fr_cls: type, rec: Any, frames: list[np.ndarray], truth: list[np.ndarray], labels: np.ndarray,
          k: int, c: int) -> tuple[float, float, float, float]:
    """One pass over the video → (ms per frame, face-frames found, emotion accuracy, track ids per face)."""
    fr = fr_cls(rec, detect_every=k, smooth=0.6 if k > 1 else 0.0, classify_every=c)
    outs = []
    t0 = time.perf_counter()
    for f in frames:
        outs.append(fr(f, "rgb"))
    ms = 1000 * (time.perf_counter() - t0) / len(frames)
    pre = rec.preprocessing
    return ms, *video_scores(outs, truth, labels, rec.classes, pre.crop_margin, pre.crop_shift)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--detect-every", default="3,5/5")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.deploy.video import FrameRecognizer

    rec = Recognizer.load(args.model)
    det = rec.detector
    if not getattr(det, "takes_known_boxes", False):
        raise SystemExit(f"error: detector {rec.detector_name!r} takes no known boxes (the BlazeFace detectors do)")
    bgs = backgrounds()
    print("| seed | row | known boxes | face-frames found | emotion acc | track ids per face | ms/frame (median) |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)  # the same draws as pipeline.py --seed: face pool, composites, video
        pool, labels, _ = face_pool(args.data_root, rec.classes, 400, rng)
        composites(pool, labels, bgs, 200, rng)
        frames, truth, vlabels = video_scenes(pool, labels, bgs, rng)
        for spec in args.detect_every.split(","):
            k, c = (int(v) for v in (spec.split("/") if "/" in spec else (spec, "1")))
            got: dict[bool, list[tuple[float, float, float, float]]] = {True: [], False: []}
            for r in range(args.rounds):
                for use in ((True, False) if r % 2 == 0 else (False, True)):
                    det.takes_known_boxes = use
                    got[use].append(_pass(FrameRecognizer, rec, frames, truth, vlabels, k, c))
            det.takes_known_boxes = True
            for use in (False, True):
                ms = float(np.median([g[0] for g in got[use]]))
                _, found, acc, ids = got[use][0]  # deterministic: every pass gives the same faces
                print(f"| {seed} | {spec} | {'on' if use else 'off'} | {100 * found:.1f} % | {100 * acc:.1f} % | "
                      f"{ids:.2f} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    run(main)
