"""Where one CPU training step spends its time, fp32 vs bf16 autocast (torch.profiler, real FER2013 batch).

One step = ferbench's input path (``train_batch``: Keras augmentation on real FER2013 Training rows) →
forward (under ``torch.autocast("cpu", bfloat16)`` for bf16) → fp32 cross-entropy → backward → AdamW.
Prints the step's wall time and the top operators by self CPU time for each precision, plus what the CPU
offers (``train/precision.py:cpu_bf16_support``). Findings: benchmarks/results/bf16_cpu.md.

Usage:  .venv/bin/python benchmarks/profile_bf16.py [--models resnet18,fer_vgg_m] [--batch 16] [--threads 2]
        .venv/bin/python benchmarks/profile_bf16.py --optimizer --models resnet18     # AdamW step alone
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile
from train_throughput import precision_step  # benchmarks/ is on sys.path: scripts run as benchmarks/X.py

from ferbench.data import load_dataset
from ferbench.data.preprocess import Preprocessing
from ferbench.models import create_model
from ferbench.train.augment import AugmentConfig
from ferbench.train.precision import PrecisionPlan, cpu_bf16_support


def profile_step(name: str, plan: PrecisionPlan, images: torch.Tensor, labels: torch.Tensor, batch: int,
                 rows: int) -> None:
    torch.manual_seed(0)
    model = plan.prepare_model(create_model(name, num_classes=7, in_chans=1, input_size=48)).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    pre, aug = Preprocessing(size=48, channels=1, mean=[0.5], std=[0.5]), AugmentConfig.preset("keras")
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(batch)

    def step() -> None:
        precision_step(model, opt, plan, images, labels, idx, pre, aug, g)

    step()  # warm-up (oneDNN primitive creation)
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        step()
    print(f"\n== {name}, batch {batch}, {plan.describe()}: one step {time.perf_counter() - t:.2f} s "
          f"(load {os.getloadavg()[0]:.1f})")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


def optimizer_step_ms(name: str, steps: int = 10) -> dict[str, float]:
    """Milliseconds per AdamW step over ``name``'s parameters (random gradients): default, foreach, fused."""
    model = create_model(name, num_classes=7, in_chans=1)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    out = {}
    for mode in ("default", "foreach", "fused"):
        opt = torch.optim.AdamW(model.parameters(), 1e-3, **({} if mode == "default" else {mode: True}))
        for _ in range(3):
            opt.step()
        t = time.perf_counter()
        for _ in range(steps):
            opt.step()
        out[mode] = (time.perf_counter() - t) / steps * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet18,fer_vgg_m")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--optimizer", action="store_true", help="time the AdamW step alone (default/foreach/fused)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.optimizer:
        for name in args.models.split(","):
            r = optimizer_step_ms(name)
            print(f"{name}: AdamW step " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.items()) +
                  f" (fused {r['default'] / r['fused']:.1f}x faster; load {os.getloadavg()[0]:.1f})")
        return
    ok, why = cpu_bf16_support()
    print(f"CPU bf16: {'native' if ok else 'not native'} ({why}); oneDNN bf16: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}; {args.threads} threads")
    tr = load_dataset("fer2013").split("Training")
    for name in args.models.split(","):
        for plan in (PrecisionPlan("fp32", True), PrecisionPlan("bf16", True)):
            profile_step(name, plan, tr.images[:args.batch], tr.labels[:args.batch], args.batch, args.rows)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
