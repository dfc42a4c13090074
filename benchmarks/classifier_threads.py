"""Interleaved A/B of the classifier's thread count on the astronaut frame, end to end (``Recognizer.predict``).

    .venv/bin/python benchmarks/classifier_threads.py [--reps 60] [--backends onnx-int8,onnx]

The shipped ``default`` model with the default detector (2 threads where there are 2 cores) and, per backend,
the classifier at 1 and at 2 threads; the configurations take turns frame by frame, so a busy machine slows
them alike. Prints the median per configuration, the ratio to the first, and the CPU's int8 instructions
(``ferbench.device.cpu_int8_matrix`` decides the default: 1 classifier thread with AMX-INT8 or off x86, else 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from pipeline import astronaut_frame  # benchmarks/ on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--backends", default="onnx-int8,onnx")
    args = ap.parse_args()

    from ferbench.deploy.recognizer import Recognizer, default_detector_threads, default_threads
    from ferbench.device import INT8_DOT_FLAGS, cpu_flags, cpu_int8_matrix
    from ferbench.faces import DEFAULT_DETECTOR, get_detector

    frame, _ = astronaut_frame()
    recs = {}
    for backend in args.backends.split(","):
        for n in (1, 2):  # the detector object keeps its own (default) thread count
            det = get_detector(DEFAULT_DETECTOR, threads=default_detector_threads())
            recs[f"{backend}, classifier {n} thread(s)"] = Recognizer.load("default", backend=backend, threads=n,
                                                                          detector=det)
    times: dict[str, list[float]] = {k: [] for k in recs}
    for rec in recs.values():
        for _ in range(10):
            rec.predict(frame, color="rgb")
    for _ in range(args.reps):
        for k, rec in recs.items():
            t = time.perf_counter()
            rec.predict(frame, color="rgb")
            times[k].append(time.perf_counter() - t)
    int8 = [f for f in INT8_DOT_FLAGS if f in cpu_flags()]
    print(f"astronaut 640x480, default detector ({default_detector_threads()} threads), {args.reps} interleaved "
          f"frames; {os.cpu_count()} cpus, int8 instructions: {', '.join(int8) or 'none'} "
          f"(int8 matrix units: {cpu_int8_matrix()}, default classifier threads: {default_threads()}); "
          f"load {os.getloadavg()[0]:.2f}")
    base = statistics.median(next(iter(times.values())))
    print("| configuration | end-to-end ms | vs first |\n|---|---:|---:|")
    for k, v in times.items():
        print(f"| {k} | {1e3 * statistics.median(v):.2f} | {statistics.median(v) / base:.2f}x |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
