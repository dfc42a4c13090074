"""Is the CK+48 drop a framing mismatch? The shipped model on CK+48 faces re-framed looser, like FER2013's.

    .venv/bin/python benchmarks/ckplus_framing.py [--model default] [--scales 1,0.9,0.85,0.8,0.75] [--data-root DIR]
    .venv/bin/python benchmarks/ckplus_framing.py --scales 1 --photometric none,eqhist,clahe,stretch --in-domain

CK+48's 48×48 crops are framed tighter than FER2013's (brow to chin, little hair or background). Each face
is shrunk to ``scale`` × 48 px (``INTER_AREA``) and centred on a 48×48 canvas whose border is its own edge
pixels replicated, which approximates a looser crop of the same photo. Every version goes through
``Recognizer.load(model, detector="none").classify_arrays`` (the sidecar's TTA and calibration), with the
decision among CK+48's classes (as ``ferbench evaluate`` scores a dataset that lacks some model classes).
Prints accuracy, balanced accuracy and per-class recall on CK+48's test split and on all 927 images.

``--photometric`` asks the same of contrast: each face is also normalised at test time (``eqhist``: OpenCV's
histogram equalisation; ``clahe``: contrast-limited, clip 2, 4×4 tiles; ``stretch``: 1st-99th percentile to
0-255; ``none``: as given). ``--in-domain`` adds FER2013 PrivateTest, to show what each costs at home.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from sklearn.metrics import balanced_accuracy_score


def looser(face: np.ndarray, scale: float) -> np.ndarray:
    """uint8 ``(48, 48)`` face → the same face at ``scale`` × its side in the centre, edges replicated around."""
    if scale == 1.0:
        return face
    side = face.shape[0]
    n = int(round(side * scale))
    small = cv2.resize(face, (n, n), interpolation=cv2.INTER_AREA)
    a = (side - n) // 2
    return cv2.copyMakeBorder(small, a, side - n - a, a, side - n - a, cv2.BORDER_REPLICATE)


def _stretch(face: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(face, (1, 99))
    return np.clip((face.astype(np.float32) - lo) * 255.0 / max(float(hi - lo), 1.0), 0, 255).astype(np.uint8)


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
PHOTOMETRIC = {"none": lambda f: f, "eqhist": cv2.equalizeHist, "clahe": _CLAHE.apply, "stretch": _stretch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--scales", default="1,0.9,0.85,0.8,0.75")
    ap.add_argument("--photometric", default="none", help=f"comma list of {', '.join(PHOTOMETRIC)}")
    ap.add_argument("--in-domain", action="store_true", help="also FER2013 PrivateTest")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    photometric = args.photometric.split(",")
    if bad := [n for n in photometric if n not in PHOTOMETRIC]:
        raise SystemExit(f"error: unknown --photometric {', '.join(bad)}; choose from {', '.join(PHOTOMETRIC)}")

    from ferbench.data import load_dataset
    from ferbench.data.taxonomy import class_mapping
    from ferbench.deploy.recognizer import Recognizer

    rec = Recognizer.load(args.model, detector="none")
    ck = load_dataset("ckplus", args.data_root)
    print(f"{args.model} ({rec.backend}, TTA {rec.classifier.tta_hflip}) on CK+48, faces re-framed looser by scale")
    print()
    print("| faces | scale | photometric | n | accuracy | balanced | per-class recall |")
    print("|---|---:|---|---:|---:|---:|---|")
    parts = [("CK+48 test", ck.split("test")), ("CK+48 all", ck)]
    if args.in_domain:
        parts.append(("FER2013 PrivateTest", load_dataset("fer2013", args.data_root).split("PrivateTest")))
    for part, ds in parts:
        m = class_mapping(list(ds.classes), rec.classes)  # dataset index → model index (contempt dropped)
        y = ds.labels.numpy()
        ok = np.array([int(v) in m for v in y])
        faces = ds.images.numpy()[ok, ..., 0]
        truth = np.array([m[int(v)] for v in y[ok]])
        absent = [i for i in range(len(rec.classes)) if i not in set(m.values())]
        for s in (float(v) for v in args.scales.split(",")):
            for name in photometric:
                norm = PHOTOMETRIC[name]
                probs = rec.classify_arrays([norm(looser(f, s))[..., None] for f in faces])
                probs[:, absent] = -1.0  # decide among the dataset's classes
                pred = probs.argmax(1)
                recall = ", ".join(f"{rec.classes[c]} {float((pred[truth == c] == c).mean()):.0%}"
                                   for c in sorted(set(truth)))
                print(f"| {part} | {s:g} | {name} | {len(truth)} | {float((pred == truth).mean()):.2%} "
                      f"| {balanced_accuracy_score(truth, pred):.2%} | {recall} |", flush=True)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
