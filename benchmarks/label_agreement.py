"""How far one model can serve FER2013's labels and FER+'s at once: the labels' own agreement bounds it.

    .venv/bin/python benchmarks/label_agreement.py [--models default,default-ferplus] [--split PrivateTest]
        [--fer2013-target 0.715] [--ferplus-target 0.88] [--data-root DIR]

FER+ relabelled FER2013's images by ten votes each. On the images both datasets keep (FER+ drops
unusable faces; FER+'s contempt has no FER2013 class and is left out here) the FER2013 label and the FER+
majority label are often different. A model's single decision can match both labels only where they
agree, so on that common set, with ``q`` the agreeing fraction and ``x`` the model's accuracy there::

    acc_FER2013 + acc_FER+ <= 2 q x + (1 - q)        (each disagreeing image counts for at most one)

and reaching targets ``A`` and ``B`` together needs ``x >= (A + B - (1 - q)) / (2 q)``. Printed: ``q``,
then per model (``Recognizer.classify`` with the sidecar's TTA and calibration, decisions among the 7
shared classes) its accuracy on both label sets, on the agreeing images, and how its decisions split on
the disagreeing ones; then the agreement-set accuracy the two targets together would need.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,default-ferplus")
    ap.add_argument("--split", default="PrivateTest", choices=["PrivateTest", "PublicTest", "Training"])
    ap.add_argument("--fer2013-target", type=float, default=0.715)
    ap.add_argument("--ferplus-target", type=float, default=0.88)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    from ferbench.data import load_dataset
    from ferbench.deploy.recognizer import Recognizer

    fer = load_dataset("fer2013", args.data_root).split(args.split)
    fp = load_dataset("ferplus", args.data_root).split(args.split)
    row_of = {int(r): i for i, r in enumerate(fer.rows)}
    classes = list(fer.classes)
    idx, plus = [], []
    for j, r in enumerate(fp.rows):
        i, name = row_of.get(int(r)), fp.classes[int(fp.labels[j])]
        if i is not None and name in classes:
            idx.append(i)
            plus.append(classes.index(name))
    idx_a, plus_a = np.array(idx), np.array(plus)
    orig = fer.labels.numpy()[idx_a]
    agree = orig == plus_a
    q = float(agree.mean())
    print(f"FER2013 {args.split}: {len(fer.labels)} images; {len(idx_a)} also in FER+ with a FER2013 class "
          f"(FER+ keeps {len(fp.labels)}); FER2013 label = FER+ majority on {q:.2%} of them")
    print()
    print("| model | FER2013 labels (common set) | FER+ labels (common set) | sum | on the agreeing images "
          "| disagreeing: = FER2013 / = FER+ / neither |")
    print("|---|---:|---:|---:|---:|---|")
    faces = [fer.images[i].numpy() for i in idx_a]
    for name in args.models.split(","):
        rec = Recognizer.load(name, detector="none")
        probs = rec.classify_arrays(faces)
        keep = [rec.classes.index(c) for c in classes]  # the 7 shared classes, in FER2013's order
        pred = probs[:, keep].argmax(1)
        acc_a, acc_b = float((pred == orig).mean()), float((pred == plus_a).mean())
        d = ~agree
        on_a, on_b = float((pred[d] == orig[d]).mean()), float((pred[d] == plus_a[d]).mean())
        print(f"| {name} | {acc_a:.2%} | {acc_b:.2%} | {acc_a + acc_b:.3f} | {float((pred[agree] == orig[agree]).mean()):.2%} "
              f"| {on_a:.1%} / {on_b:.1%} / {1 - on_a - on_b:.1%} |")
    a, b = args.fer2013_target, args.ferplus_target
    need = (a + b - (1 - q)) / (2 * q)
    print()
    print(f"Targets together ({a:.1%} on FER2013's labels and {b:.1%} on FER+'s, same model): the sum "
          f"{a + b:.3f} needs an accuracy of at least {need:.2%} on the agreeing images, and then every "
          "disagreeing image decided for one of its two labels.")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
