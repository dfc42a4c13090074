"""Does test-time augmentation beyond the h-flip pair help a shipped model? Shifted and zoomed views, scored calibrated.

    .venv/bin/python benchmarks/tta_views.py [--model default] [--data fer2013] [--data-root DIR]

Every face of the validation and test splits goes through the model as 14 views: the image and its mirror
(what ``Recognizer`` runs), each shifted by 2 px left/right/up/down (``torch.roll``; the model trained with
shifts of this size), and zoomed to 0.9× (edges replicated) and 1.1× (centre crop), each with its mirror. The
views' probabilities are averaged after the sidecar's calibration (temperature and prior correction, fitted for
the h-flip pair), as ``Recognizer`` averages its pair. Prints accuracy and balanced accuracy of view sets on the
validation split (the only one that may choose a set) and the test split. Cost grows with the views: a set of
V views is V/2 times the classifier work of the shipped pair.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.evaluate.predict import View, hflip_view, identity_view, predict_view_logits

SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))


def zoom(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, C, S, S)`` → the same batch zoomed by ``scale`` about the centre, size kept (edges replicated)."""
    s = x.shape[-1]
    n = int(round(s * scale))
    y = F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False)
    a = abs(n - s) // 2
    if n >= s:
        return y[..., a:a + s, a:a + s]
    return F.pad(y, (a, s - n - a, a, s - n - a), mode="replicate")


def named_views() -> dict[str, View]:
    """The 14 named views, each a function of a preprocessed batch ``(B, C, S, S)`` → same shape."""
    base: dict[str, View] = {"id": identity_view}
    for dx, dy in SHIFTS:
        base[f"shift{dx:+d},{dy:+d}"] = partial(torch.roll, shifts=(dy, dx), dims=(2, 3))
    base["zoom0.9"], base["zoom1.1"] = partial(zoom, scale=0.9), partial(zoom, scale=1.1)
    out = {}
    for k, v in base.items():
        out[k] = v
        out[f"{k} flip"] = mirrored(v)
    return out


def mirrored(view: View) -> View:
    """``view`` followed by the horizontal mirror."""
    return lambda x: hflip_view(view(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default="fer2013")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    from sklearn.metrics import balanced_accuracy_score

    from ferbench.data import load_dataset
    from ferbench.data.registry import split_name
    from ferbench.evaluate.calibration import calibrated_probs
    from ferbench.loader import load_checkpoint, preprocessing_of
    from ferbench.persist.checkpoint import logit_bias_of, temperature_of

    model, meta = load_checkpoint(args.model)
    pre, temp, bias = preprocessing_of(meta), temperature_of(meta), logit_bias_of(meta)
    ds = load_dataset(args.data, args.data_root)
    splits = (split_name(args.data, "val"), split_name(args.data, "test"))
    views = named_views()
    logits: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for sp in splits:
        part = ds.split(sp)
        labels[sp] = part.labels.numpy()
        z = predict_view_logits(model, part.images, pre, views=list(views.values()))
        logits[sp] = dict(zip(views, z, strict=True))

    names = list(views)
    sets = {
        "image only": ["id"],
        "h-flip pair (shipped)": ["id", "id flip"],
        "pair + 4 shifts": ["id", "id flip", *(k for k in names if k.startswith("shift") and "flip" not in k)],
        "pair + 4 shifts, mirrored": ["id", "id flip", *(k for k in names if k.startswith("shift"))],
        "pair + 2 zooms, mirrored": ["id", "id flip", *(k for k in names if k.startswith("zoom"))],
        "all 14": names,
    }
    print(f"{args.model} on {args.data}: view sets, probabilities averaged after the sidecar's calibration "
          f"(T {temp:.3f}, prior correction {'on' if bias is not None else 'off'})")
    print()
    print(f"| views | n | {splits[0]} acc / balanced | {splits[1]} acc / balanced |")
    print("|---|---:|---|---|")
    for name, keys in sets.items():
        cells = []
        for sp in splits:
            p = calibrated_probs(np.stack([logits[sp][k] for k in keys]), temp, bias).argmax(1)
            y = labels[sp]
            cells.append(f"{100 * (p == y).mean():.2f} / {100 * balanced_accuracy_score(y, p):.2f}")
        print(f"| {name} | {len(keys)} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    from _script import run

    run(main)
