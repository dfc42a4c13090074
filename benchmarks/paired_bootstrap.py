"""Paired bootstrap of two checkpoints on one split: is a variant's gain larger than the split's noise?

    .venv/bin/python benchmarks/paired_bootstrap.py A B --data ckplus --split test [--tta] [--n 2000] [--data-root DIR]

Both checkpoints score the same faces in the shared canonical classes, with their sidecars' calibration, as
``ferbench evaluate`` does. Each resample draws the split's subjects with replacement and keeps every face of a
drawn subject (CK+48's frames of one person are not independent draws); a dataset without subject ids is resampled
face by face. Prints accuracy and balanced accuracy of A and B, B − A, its 95 % percentile interval and the share
of resamples where B is not better (B − A ≤ 0), N resamples, seed 0.
"""

from __future__ import annotations

import argparse

import numpy as np


def paired_bootstrap(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, groups: np.ndarray | None = None,
                     n: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """B − A for accuracy and balanced accuracy under a cluster bootstrap.

    Args:
        y, pred_a, pred_b: int labels and the two models' predicted classes, ``(N,)`` each.
        groups: ``(N,)`` cluster ids (subjects); ``None`` = every face its own cluster.
        n: resamples; the draws are held as one ``(n, N)`` float64 weight matrix (2000 × 3 589 PrivateTest
            faces: 57 MB).
    Returns:
        ``{metric: {"a", "b", "diff", "lo", "hi", "p_not_better"}}`` for ``accuracy`` and ``balanced_accuracy``:
        the full-sample values, the 2.5 / 97.5 percentiles of the resampled differences and the share ≤ 0.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    metrics = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    _, cluster = np.unique(groups, return_inverse=True)  # face -> index of its cluster among the sorted ids
    n_clusters = int(cluster.max()) + 1
    rng = np.random.default_rng(seed)
    # How often each face is drawn in each resample, (n, N): a drawn cluster brings all its faces.
    w = np.stack([np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)[cluster]
                  for _ in range(n)]).astype(np.float64)
    onehot = np.eye(int(y.max()) + 1)[y]  # (N, C)
    support = w @ onehot  # (n, C) faces of each true class per resample

    def scores(pred: np.ndarray) -> dict[str, np.ndarray]:
        right = (pred == y).astype(np.float64)
        recall = np.divide(w @ (onehot * right[:, None]), support, out=np.full_like(support, np.nan),
                           where=support > 0)  # a class absent from a resample is left out, as sklearn does
        return {"accuracy": w @ right / w.sum(1), "balanced_accuracy": np.nanmean(recall, axis=1)}

    sa, sb = scores(pred_a), scores(pred_b)
    diffs = {k: sb[k] - sa[k] for k in metrics}
    out = {}
    for k, f in metrics.items():
        d = np.asarray(diffs[k])
        a, b = float(f(y, pred_a)), float(f(y, pred_b))
        lo, hi = np.percentile(d, [2.5, 97.5])
        out[k] = {"a": a, "b": b, "diff": b - a, "lo": float(lo), "hi": float(hi),
                  "p_not_better": float(np.mean(d <= 0))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="baseline checkpoint (shipped name, run dir or .safetensors)")
    ap.add_argument("b", help="the variant")
    ap.add_argument("--data", default="ckplus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--tta", action="store_true", help="h-flip test-time augmentation for both")
    ap.add_argument("--n", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    if args.n < 100:
        ap.error(f"--n {args.n}: use at least 100 resamples")

    from ferbench.data import load_dataset
    from ferbench.evaluate.crossdata import checkpoint_probs
    from ferbench.loader import load_checkpoint

    ds = load_dataset(args.data, args.data_root).split(args.split)
    preds, y, groups = [], None, None
    for ref in (args.a, args.b):
        model, meta = load_checkpoint(ref)
        p, y_ref, sub, _ = checkpoint_probs(model, meta, ds, args.data, tta_hflip=args.tta)
        if y is not None and not np.array_equal(y, y_ref):
            raise SystemExit(f"error: {args.a} and {args.b} share different classes with {args.data}")
        y, groups = y_ref, sub.subjects
        preds.append(p.argmax(1))
    res = paired_bootstrap(y, preds[0], preds[1], groups, args.n)
    unit = "subjects" if groups is not None else "faces"
    n_units = len(np.unique(groups)) if groups is not None else len(y)
    print(f"{args.data} {args.split}: {len(y)} faces, {n_units} {unit} resampled, {args.n} resamples"
          f"{', h-flip TTA' if args.tta else ''}")
    print("| metric | A | B | B − A | 95 % interval | share of resamples B − A ≤ 0 |\n|---|---:|---:|---:|---|---:|")
    for k, r in res.items():
        print(f"| {k} | {100 * r['a']:.2f} % | {100 * r['b']:.2f} % | {100 * r['diff']:+.2f} | "
              f"{100 * r['lo']:+.2f} to {100 * r['hi']:+.2f} | {r['p_not_better']:.3f} |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
