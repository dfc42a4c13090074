"""Deploy speed: classifier latency/throughput per runtime, and the full detect→classify pipeline in FPS.

    nice -n 10 .venv/bin/python benchmarks/latency.py --model RUN_DIR [--threads 2] [--json OUT]

Classifier: batch-1 latency (median, p90 of single forward passes) and batch-256 throughput
(images/s) for PyTorch, ONNX fp32 (onnxruntime), ONNX int8 (static QDQ) and TFLite (when
litert-torch is installed). Pipeline: the astronaut frame of benchmarks/pipeline.py (a real photo,
640×480) → detect → crop → classify, frames/s for each available detector (the full real-photo pipeline
benchmark — composites, video, tracking, `fer` — is benchmarks/pipeline.py). All numbers come from one run, so ratios compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _timing import timeit as _timeit  # benchmarks/ is on sys.path: scripts run as benchmarks/X.py


def face_frame(data_root: str | None) -> tuple[np.ndarray, bool]:
    """640×480 BGR uint8 frame with one real face: scikit-image's astronaut (see benchmarks/pipeline.py)."""
    import cv2
    from pipeline import astronaut_frame

    frame, _ = astronaut_frame()
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="'default', a run dir or a .safetensors checkpoint")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and onnxruntime")
    ap.add_argument("--n1", type=int, default=100, help="batch-1 repetitions")
    ap.add_argument("--n256", type=int, default=3, help="batch-256 repetitions")
    ap.add_argument("--frames", type=int, default=100, help="pipeline frames per configuration (mtcnn: a fifth)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ferbench.deploy.export import export_model
    from ferbench.deploy.recognizer import OnnxClassifier, Recognizer, TfliteClassifier, TorchClassifier
    from ferbench.errors import FerbenchError
    from ferbench.faces import get_detector

    base = Recognizer.load(args.model)
    pre = base.preprocessing
    tmp_dir = tempfile.TemporaryDirectory(prefix="ferbench-latency-")  # removed at exit
    tmp = Path(tmp_dir.name)
    runtimes: dict[str, Any] = {"torch": base.classifier}
    exports: dict[str, Any] = {}
    for fmt, name in (("onnx", "onnx-fp32"), ("onnx-int8", "onnx-int8"), ("tflite", "tflite")):
        try:
            path, chk = export_model(args.model, fmt, tmp / f"m{'.int8' if 'int8' in fmt else ''}"
                                     f"{'.tflite' if fmt == 'tflite' else '.onnx'}", args.data_root,
                                     n_val=1000, n_calib=512, log=lambda s: None)
        except FerbenchError as e:
            print(f"{name}: skipped ({e})", file=sys.stderr)
            continue
        exports[name] = {k: chk.get(k) for k in ("max_abs_dprob", "accuracy_torch", "accuracy_export",
                                                 "accuracy_delta_points", "size_bytes", "validation")}
        runtimes[name] = (TfliteClassifier if fmt == "tflite" else OnnxClassifier)(path, threads=args.threads)

    rng = np.random.default_rng(0)
    x1 = pre(torch.from_numpy(rng.integers(0, 256, (1, pre.size, pre.size, pre.channels), dtype=np.uint8)))
    x256 = pre(torch.from_numpy(rng.integers(0, 256, (256, pre.size, pre.size, pre.channels), dtype=np.uint8)))
    clf_rows = []
    for name, clf in runtimes.items():
        lat = _timeit(lambda c=clf: c(x1), args.n1)
        thr = _timeit(lambda c=clf: c(x256), args.n256, warmup=1)
        clf_rows.append({"runtime": name, "b1_median_ms": 1000 * statistics.median(lat),
                         "b1_p90_ms": 1000 * float(np.percentile(lat, 90)),
                         "b256_images_per_s": 256 / statistics.median(thr)})
        print(f"classifier {clf_rows[-1]}", file=sys.stderr, flush=True)

    frame, real = face_frame(args.data_root)
    pipe_rows = []
    detectors: list[tuple[str, Any]] = [("blazeface (default)", get_detector("blazeface")),
                                        ("blazeface-fast", get_detector("blazeface-fast")),
                                        ("haar (max side 480, min face 24)", get_detector("haar")),
                                        ("haar fast (max side 320, min face 48, scale 1.2)",
                                         get_detector("haar", max_side=320, min_face=48, scale_factor=1.2))]
    for opt in ("mediapipe", "mtcnn"):
        try:
            detectors.append((opt, get_detector(opt)))
        except FerbenchError as e:
            print(f"{opt}: skipped ({e})", file=sys.stderr)
    for dname, det in detectors:
        for rname in ("torch", "onnx-int8" if "onnx-int8" in runtimes else "onnx-fp32"):
            if rname not in runtimes:
                continue
            clf: TorchClassifier | OnnxClassifier = runtimes[rname]
            rec = Recognizer(clf, base.meta, args.model, det)
            faces = rec.predict(frame)
            n = max(5, args.frames // 5) if dname == "mtcnn" else args.frames
            ts = _timeit(lambda r=rec: r.predict(frame, color="bgr", detect=real), n, warmup=2)
            pipe_rows.append({"detector": dname, "runtime": rname, "faces_found": len(faces),
                              "fps": 1 / statistics.median(ts), "ms_median": 1000 * statistics.median(ts)})
            print(f"pipeline {pipe_rows[-1]}", file=sys.stderr, flush=True)

    arch = base.meta.get("architecture", {}).get("name")
    print(f"\nmodel {args.model} ({arch}, {pre.size}x{pre.size}x{pre.channels}), threads={args.threads}, "
          f"cpu={os.cpu_count()}, torch {torch.__version__}\n")
    print("| runtime | batch-1 median ms | batch-1 p90 ms | batch-256 images/s | max |Δprob| | acc torch → export |")
    print("|---|---:|---:|---:|---:|---|")
    for r in clf_rows:
        e = exports.get(r["runtime"], {})
        acc = (f"{100 * e['accuracy_torch']:.2f} → {100 * e['accuracy_export']:.2f} %"
               if e.get("accuracy_torch") is not None else "")
        dp = f"{e['max_abs_dprob']:.1e}" if e else ""
        print(f"| {r['runtime']} | {r['b1_median_ms']:.2f} | {r['b1_p90_ms']:.2f} | {r['b256_images_per_s']:.0f} "
              f"| {dp} | {acc} |")
    print("\n| pipeline 640×480 → detect → classify | runtime | faces | median ms | FPS |")
    print("|---|---|---:|---:|---:|")
    for r in pipe_rows:
        print(f"| {r['detector']} | {r['runtime']} | {r['faces_found']} | {r['ms_median']:.2f} | {r['fps']:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "architecture": arch, "threads": args.threads,
                                         "classifier": clf_rows, "exports": exports, "pipeline": pipe_rows,
                                         "real_face": real}, indent=1))


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
