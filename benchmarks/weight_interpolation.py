"""Weight-space interpolation between a model and its fine-tuned descendant (WiSE-FT, Wortsman et al. 2022).

    .venv/bin/python benchmarks/weight_interpolation.py START FINETUNED [--alphas 0,0.25,0.5,0.75,1] [--out DIR]

``START`` and ``FINETUNED`` are checkpoints of the same architecture, the second trained from the first
(e.g. ``default`` and ``runs/generalise/distill_ft/runs/fer2013``). For each ``alpha`` the script writes
θ = (1 − α)·θ_START + α·θ_FINETUNED (every floating-point tensor, BatchNorm running statistics included;
integer buffers from FINETUNED) with FINETUNED's sidecar minus any calibration, fits the temperature and the
prior correction on the validation split as ``ferbench calibrate`` does, and evaluates it as ``ferbench evaluate
--tta`` does on FER2013 PrivateTest (in-domain), CK+48 test and all 927 CK+48 faces (never trained on) and
FER+ PrivateTest (FER2013's test images, FER+ labels). α = 0 is START re-calibrated the same way, α = 1 is
FINETUNED. Only the validation split (PublicTest) may choose α; the other columns are for reading.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

SPLITS = (("fer2013", "PrivateTest"), ("ckplus", "test"), ("ckplus", "all"), ("ferplus", "PrivateTest"))


def interpolate(start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float
                ) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * tuned`` for floating tensors; the rest (counters) from ``tuned``.

    Both state dicts must hold the same keys and shapes.
    """
    from ferbench.errors import FerbenchError

    if start.keys() != tuned.keys():
        raise FerbenchError("the two checkpoints hold different tensors: not the same architecture")
    out = {}
    for k, b in tuned.items():
        a = start[k]
        if a.shape != b.shape:
            raise FerbenchError(f"tensor {k}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        out[k] = torch.lerp(a.float(), b.float(), alpha).to(b.dtype) if b.is_floating_point() else b.clone()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("start")
    ap.add_argument("finetuned")
    ap.add_argument("--alphas", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--out", type=Path, default=None, help="keep the calibrated checkpoints here")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint
    from ferbench.evaluate.crossdata import evaluate_checkpoint
    from ferbench.loader import load_checkpoint
    from ferbench.persist.checkpoint import write_checkpoint

    m0, _ = load_checkpoint(args.start)
    m1, meta1 = load_checkpoint(args.finetuned)
    s0, s1 = m0.state_dict(), m1.state_dict()
    meta = copy.deepcopy(meta1)
    meta.pop("calibration", None)
    meta["inference"] = {"tta_hflip": True}
    out = args.out or Path(tempfile.mkdtemp(prefix="wiseft-"))
    out.mkdir(parents=True, exist_ok=True)

    head = "| α | PublicTest acc (raw → calibrated) | T, τ | " + " | ".join(
        f"{d} {s} acc / balanced / ECE" for d, s in SPLITS) + " |"
    print(f"interpolating {args.start} (α = 0) → {args.finetuned} (α = 1); h-flip TTA, calibrated on PublicTest")
    print()
    print(head)
    print("|" + "---|" * (3 + len(SPLITS)))
    for alpha in (float(a) for a in args.alphas.split(",")):
        raw = out / f"alpha{alpha:g}.raw.safetensors"
        cal = out / f"alpha{alpha:g}.safetensors"
        write_checkpoint(raw, interpolate(s0, s1, alpha), {**meta, "interpolation": {
            "start": str(args.start), "finetuned": str(args.finetuned), "alpha": alpha}})
        c = calibrate_checkpoint(raw, data="fer2013", data_root=args.data_root, tta_hflip=True, out=cal)
        cells = []
        for d, s in SPLITS:
            r = evaluate_checkpoint(cal, d, s, data_root=args.data_root, tta_hflip=True)
            cells.append(f"{100 * r['accuracy']:.2f} / {100 * r['balanced_accuracy']:.2f} / {r['ece']:.3f}")
        print(f"| {alpha:g} | {100 * c['val_uncalibrated']['accuracy']:.2f} → {100 * c['val_calibrated']['accuracy']:.2f}"
              f" | {c['temperature']:.3f}, {c['prior_tau']:.2f} | " + " | ".join(cells) + " |", flush=True)
    print(f"\ncheckpoints in {out}")


if __name__ == "__main__":
    from _script import run

    run(main)
