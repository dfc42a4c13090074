"""A calibrated `default` variant beside the shipped model: in-domain, CK+48 and FER+ figures, and its CK+48 gain
against the split's noise, in one run.

    .venv/bin/python benchmarks/variant_vs_shipped.py B [--baseline default] [--also C ...] [--n 2000] [--data-root DIR]

B (and the baseline, and each ``--also``) is a shipped name, run directory or ``.safetensors``, normally the
calibrated copy that ``ferbench calibrate RUN --out …`` writes. Every model scores, with h-flip TTA and its
sidecar's calibration as ``ferbench evaluate --tta`` does: FER2013 PrivateTest, CK+48 test (19 subjects) and all
927 CK+48 faces (106 subjects), FER+ PrivateTest, each in the classes it shares with the model. Prints one Markdown
table (accuracy / balanced accuracy / ECE per model), B's per-class recall on CK+48 test, and for CK+48 test and all
the paired subject bootstrap of B − baseline (and B − each ``--also``), as ``benchmarks/paired_bootstrap.py``
computes it (N resamples, seed 0).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

CELLS = [("fer2013", "PrivateTest"), ("ckplus", "test"), ("ckplus", "all"), ("ferplus", "PrivateTest")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("b", help="the variant (calibrated checkpoint)")
    ap.add_argument("--baseline", default="default", help="what B is compared with (default: the shipped model)")
    ap.add_argument("--also", action="append", default=[], help="another model to compare B with (repeatable)")
    ap.add_argument("--n", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    if args.n < 100:
        ap.error(f"--n {args.n}: use at least 100 resamples")

    from paired_bootstrap import paired_bootstrap

    from ferbench.data import load_dataset
    from ferbench.evaluate.crossdata import checkpoint_probs
    from ferbench.evaluate.metrics import compute_metrics
    from ferbench.loader import load_checkpoint

    refs = [args.baseline, *args.also, args.b]
    splits = {cell: load_dataset(cell[0], args.data_root).split(cell[1]) for cell in CELLS}
    metrics: dict[tuple[str, str, str], dict[str, Any]] = {}  # (model, dataset, split) -> compute_metrics
    scored: dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {}
    for ref in refs:
        model, meta = load_checkpoint(ref)
        for cell, ds in splits.items():
            p, y, sub, shared = checkpoint_probs(model, meta, ds, cell[0], tta_hflip=True)
            metrics[ref, *cell] = compute_metrics(y, p, shared)
            scored.setdefault(cell, {})[ref] = (y, p.argmax(1), sub.subjects)

    print("| model | " + " | ".join(f"{d} {s} acc / bal / ECE" for d, s in CELLS) + " |")
    print("|---|" + "---:|" * len(CELLS))
    for ref in refs:
        print(f"| {ref} | " + " | ".join(
            f"{100 * m['accuracy']:.2f} / {100 * m['balanced_accuracy']:.2f} / {m['ece']:.3f}"
            for m in (metrics[ref, *cell] for cell in CELLS)) + " |")
    per = metrics[args.b, "ckplus", "test"]["per_class"]
    print(f"\n{args.b} CK+48 test recall: " + ", ".join(f"{c} {100 * v['recall']:.1f} %" for c, v in per.items()))
    print(f"\npaired subject bootstrap of B − A, {args.n} resamples, h-flip TTA:")
    print("| B − A | split | accuracy (95 % interval) | balanced accuracy (95 % interval) |\n|---|---|---:|---:|")
    for a in [args.baseline, *args.also]:
        for cell in CELLS[1:3]:
            (y, pa, groups), (yb, pb, _) = scored[cell][a], scored[cell][args.b]
            if not np.array_equal(y, yb):
                raise SystemExit(f"error: {a} and {args.b} share different classes with {cell[0]}")
            r = paired_bootstrap(y, pa, pb, groups, args.n)
            print(f"| {args.b} − {a} | {cell[0]} {cell[1]} | " + " | ".join(
                f"{100 * r[k]['diff']:+.2f} ({100 * r[k]['lo']:+.2f} to {100 * r[k]['hi']:+.2f})"
                for k in ("accuracy", "balanced_accuracy")) + " |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
