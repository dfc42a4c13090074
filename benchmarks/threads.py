"""Why ``Recognizer`` runs the detector and the classifier with one thread each (``threads=1``).

    .venv/bin/python benchmarks/threads.py [--reps 40]

On the astronaut frame (benchmarks/pipeline.py), the Haar detector (OpenCV's parallel loops) and the
``default`` classifier (PyTorch's OpenMP team) are timed apart and then back to back, for each pair of
thread counts. When both pools want every core — and other work holds the cores — the classifier right
after a parallel detection waits on descheduled worker threads, and "together" is far above
"detect + classify". Ratios are within one run; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import cv2
import numpy as np
import torch
from _timing import timeit as _timeit  # benchmarks/ is on sys.path: scripts run as benchmarks/X.py


def med_ms(fn: Any, n: int) -> float:
    return 1000 * statistics.median(_timeit(fn, n, warmup=3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args()
    from pipeline import astronaut_frame

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.faces.detectors import HaarDetector

    frame, box = astronaut_frame()
    rec = Recognizer.load("default", detector="haar", backend="torch")  # this script measures torch's pool
    rec.classifier.threads = None  # this script sets torch's threads itself
    det = HaarDetector()
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = np.ascontiguousarray(frame[y1:y2, x1:x2])
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    print("| torch threads | OpenCV threads | detect ms | classify ms | detect + classify | back to back ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for tt, ct in ((2, 2), (1, 2), (2, 1), (1, 1)):
        torch.set_num_threads(tt)
        cv2.setNumThreads(ct)
        d = med_ms(lambda: det.detect(frame), args.reps)
        c = med_ms(lambda: rec.classify_arrays([crop]), args.reps)
        both = med_ms(lambda: (det.detect(frame), rec.classify_arrays([crop])), args.reps)
        print(f"| {tt} | {ct} | {d:.2f} | {c:.2f} | {d + c:.2f} | {both:.2f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
