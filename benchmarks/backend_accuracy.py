"""Accuracy of a model through ``Recognizer.classify`` per classifier backend, in-domain and cross-domain.

    .venv/bin/python benchmarks/backend_accuracy.py [--model default] [--backends torch,onnx,onnx-int8]
        [--data-root DIR]

Every face crop of the model's test split (the sidecar's ``protocol.data``: FER2013 PrivateTest for
``default``, FER+ PrivateTest for ``default-ferplus``) and of CK+48's test split goes through
``Recognizer.load(model, detector="none", backend=B).classify_arrays`` with the sidecar's h-flip TTA, as a
user's call would; classes the model lacks are dropped, and the decision is among the dataset's classes
(as ``ferbench evaluate`` scores cross-dataset). Prints accuracy and balanced accuracy per backend
and split, so the int8 export's cost is read beside the fp32 numbers of the same run.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import balanced_accuracy_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--backends", default="onnx,onnx-int8")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    from ferbench.data import load_dataset
    from ferbench.deploy.recognizer import Recognizer

    print("| backend | data | split | n | accuracy | balanced accuracy |\n|---|---|---|---:|---:|---:|")
    for be in args.backends.split(","):
        rec = Recognizer.load(args.model, detector="none", backend=be)
        data = rec.meta["protocol"]["data"]
        for name, split in ((data["name"], data["test_split"]), ("ckplus", "test")):
            ds = load_dataset(name, args.data_root).split(split)
            probs = rec.classify_arrays([img.numpy() for img in ds.images])
            to_model = np.array([rec.classes.index(c) if c in rec.classes else -1 for c in ds.classes])
            y = to_model[ds.labels.numpy()]
            keep = y >= 0
            # as `ferbench evaluate`: the decision is among the classes the dataset has (CK+48: no neutral)
            cols = np.array(sorted(set(to_model[to_model >= 0].tolist())))
            pred, y = cols[probs[keep][:, cols].argmax(1)], y[keep]
            print(f"| {rec.backend} | {name} | {split} | {keep.sum()} | {100 * (pred == y).mean():.2f} % | "
                  f"{100 * balanced_accuracy_score(y, pred):.2f} % |", flush=True)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
