"""Gated h-flip TTA: what skipping the mirrored view for confident faces costs in accuracy, and buys in time.

    .venv/bin/python benchmarks/tta_gate.py [--model default] [--gates 0.5,0.6,0.7,0.8,0.9] [--reps 60]
        [--composites 40] [--seed 1] [--data-root DIR] [--no-timing | --no-accuracy]

Accuracy: every face of the model's validation and test splits and of CK+48 (test split and all 927 faces,
scored in the classes both share, as ``ferbench evaluate`` scores across datasets) goes through the model
as the image and its mirror; probabilities use the sidecar's calibration. Per gate: the fraction of faces
that get the mirror, accuracy, balanced accuracy and ECE (15 bins); "pair" is the ungated h-flip TTA and
"sidecar" marks the gate stored by ``ferbench calibrate --tta-gate auto`` (chosen on the validation split
alone). Timing (unless ``--no-timing``): ``Recognizer.load(model).predict`` end to end (default detector,
int8 classifier, default threads) on scikit-image's astronaut in a 640×480 frame and on ``--composites``
real-photo composites of ``benchmarks/pipeline.py`` (1–4 FER2013 / CK+48 faces pasted on scikit-image
photos), the pair and the sidecar's gate taking turns frame by frame, so a busy machine slows both alike;
then a 10-s 640×480 video of three moving composite faces (``pipeline.py``'s generator) with detection every
frame or every 5th + tracking, whole passes taking turns. Prints medians and the ratio; use a quiet machine
for absolute figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def score_rows(z: np.ndarray, y: np.ndarray, cols: list[int], temp: float, bias: np.ndarray | None,
               gates: list[float | None]) -> list[tuple[float | None, float, float, float, float]]:
    """``(2, N, K)`` scores, ``(N,)`` labels in the shared classes ``cols`` → per gate ``(gate, mirrored, acc,
    balanced, ece)``. The gate decides on the model's full probabilities (as ``Recognizer`` does); the decision
    and the ECE are among the shared classes (renormalised)."""
    from sklearn.metrics import balanced_accuracy_score

    from ferbench.evaluate.calibration import calibrated_probs, gated_pair_probs, needs_mirror
    from ferbench.evaluate.crossdata import restrict
    from ferbench.evaluate.metrics import expected_calibration_error

    first = calibrated_probs(z[0], temp, bias)
    rows = []
    for g in gates:
        p = restrict(gated_pair_probs(z, temp, bias, g), cols)
        pred = p.argmax(1)
        rows.append((g, float(needs_mirror(first, g).mean()), float((pred == y).mean()),
                     float(balanced_accuracy_score(y, pred)), expected_calibration_error(y, p)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--gates", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--reps", type=int, default=60, help="timed rounds on the astronaut frame")
    ap.add_argument("--composites", type=int, default=40, help="timed composite photos (one round each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true", help="only the timing (a quiet machine's few minutes)")
    args = ap.parse_args()

    from ferbench.data import load_dataset
    from ferbench.data.registry import split_name
    from ferbench.deploy.recognizer import Recognizer
    from ferbench.evaluate.crossdata import shared_classes
    from ferbench.evaluate.predict import predict_view_logits
    from ferbench.loader import load_checkpoint, preprocessing_of
    from ferbench.persist.checkpoint import logit_bias_of, temperature_of, tta_gate_of

    model, meta = load_checkpoint(args.model)
    pre, temp, bias, stored = preprocessing_of(meta), temperature_of(meta), logit_bias_of(meta), tta_gate_of(meta)
    gates: list[float | None] = [None, *sorted({float(g) for g in args.gates.split(",")} | ({stored} - {None}))]
    own = str(meta["dataset"])
    sets = [(own, split_name(own, "val")), (own, split_name(own, "test")), ("ckplus", "test"), ("ckplus", None)]
    print(f"{args.model}: h-flip TTA gated at the first view's calibrated confidence (T {temp:.3f}, prior "
          f"correction {'on' if bias is not None else 'off'}; the sidecar's gate: {stored})\n")
    if not args.no_accuracy:
        print("| data | split | n | gate | mirrored | accuracy | balanced | ECE |\n|---|---|---:|---|---:|---:|---:|---:|")
    for name, split in [] if args.no_accuracy else sets:
        ds = load_dataset(name, args.data_root)
        part = ds.split(split) if split else ds
        sub, y, cols, _ = shared_classes(part, list(meta["classes"]), name)
        z = predict_view_logits(model, sub.images, pre, tta_hflip=True)
        for g, mir, acc, bal, ece in score_rows(z, y, cols, temp, bias, gates):
            tag = "pair" if g is None else f"{g:g}" + (" (sidecar)" if g == stored else "")
            print(f"| {name} | {split or 'all'} | {len(y)} | {tag} | {100 * mir:.1f} % | {100 * acc:.2f} % | "
                  f"{100 * bal:.2f} % | {ece:.4f} |", flush=True)
    if args.no_timing or stored is None:
        if stored is None and not args.no_timing:
            print(f"\n{args.model} has no TTA gate in its sidecar: nothing to time")
        return

    from pipeline import astronaut_frame, backgrounds, composites, face_pool, video_scenes  # noqa: I001 (benchmarks/)

    from ferbench.deploy.video import FrameRecognizer

    rng = np.random.default_rng(args.seed)
    frame, _ = astronaut_frame()
    pool, labels, _ = face_pool(args.data_root, list(meta["classes"]), 4 * args.composites, rng)
    bgs = backgrounds()
    comps = [c["image"] for c in composites(pool, labels, bgs, args.composites, rng)]
    recs = {"pair": Recognizer.load(args.model, tta_gate=None), f"gate {stored:g}": Recognizer.load(args.model)}
    print(f"\nend to end, Recognizer.predict ({next(iter(recs.values())).backend}, default detector and threads); "
          "ms median, the two taking turns per frame\n")
    print("| frames | " + " | ".join(recs) + " | ratio |\n|---|" + "---:|" * (len(recs) + 1))
    for label, frames, reps in (("astronaut 640×480", [frame], args.reps),
                                (f"{len(comps)} composites 640×480", comps, 1)):
        times: dict[str, list[float]] = {k: [] for k in recs}
        for r in recs.values():  # warm-up
            r.predict(frames[0])
        for _ in range(reps):
            for f in frames:
                for k, r in recs.items():
                    t0 = time.perf_counter()
                    r.predict(f)
                    times[k].append(1000 * (time.perf_counter() - t0))
        med = {k: float(np.median(v)) for k, v in times.items()}
        a, b = med.values()
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in med.values()) + f" | {a / b:.2f}× |", flush=True)
    # video: a tracker has state, so whole passes take turns (3 each); ms per frame, median of the passes
    vframes, _, _ = video_scenes(pool, labels, bgs, np.random.default_rng(args.seed))
    for k, c in ((1, 1), (5, 1), (5, 5)):
        per: dict[str, list[float]] = {name: [] for name in recs}
        for _ in range(3):
            for name, r in recs.items():
                fr = FrameRecognizer(r, detect_every=k, smooth=0.6 if k > 1 else 0.0, classify_every=c)
                t0 = time.perf_counter()
                for f in vframes:
                    fr(f, "rgb")
                per[name].append(1000 * (time.perf_counter() - t0) / len(vframes))
        med = {name: float(np.median(v)) for name, v in per.items()}
        a, b = med.values()
        label = f"video {len(vframes)} frames, detect every {k}" + (f", classify every {c}" if c > 1 else "")
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in med.values()) + f" | {a / b:.2f}× |", flush=True)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
