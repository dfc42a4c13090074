"""Training throughput (images/s) at 48×48 (precision table: `--size`), batch 64, 2 threads — three pipelines measured in one run.

(a) naive baseline: per-sample decode to a PIL image + torchvision transforms in a DataLoader;
(b) ferbench: uint8 tensor in memory → batched torch augmentation → preprocessing → model step;
(c) model step only, on pre-made tensors (the ceiling for (b)).
A second table times the input pipelines alone (no model): (a) per-sample PIL + torchvision in a DataLoader
vs (b) ferbench's batched torch augmentation on the uint8 tensor. When the model step is compute-bound
(shallow CNN, resnet18 on 2 cores), (b)/(a) of the full step cannot exceed (c)/(a); the input table shows
what the pipeline itself costs.

A third table (``--table precision``) times ferbench's training step (real FER2013 batches through
``train_batch``, AdamW, fp32 loss) at batch 128, 48 px, in fp32 NCHW, fp32 channels_last and bf16 autocast +
channels_last (train/precision.py), for the model families of configs/studies/seed000_48px.yaml; every ratio
is against fp32 NCHW measured in the same run. bf16 is timed only where the CPU has native bf16
(``--bf16 auto``) unless ``--bf16 always``: elsewhere it falls back to reference kernels (1.2-2.8x slower per step here).

Usage:  .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--models shallow_cnn_s002,resnet18,fer_vgg_s]
        .venv/bin/python benchmarks/train_throughput.py --table precision --steps 4 [--bf16 always] [--models ...]
            [--compile --warmup 3]   # + the last plan under torch.compile
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ferbench.data import load_dataset
from ferbench.data.preprocess import Preprocessing
from ferbench.models import create_model
from ferbench.train.augment import AugmentConfig
from ferbench.train.loop import train_batch
from ferbench.train.precision import PrecisionPlan, cpu_bf16_support, to_fp32

BATCH = 64
STUDY_MODELS = ("lenet5,seq3conv,seq_simple,seq4conv,mobilenetv2,mobilenet,alexnet,zf_net,modular,googlenet_repo,"
                "ensemble3,smmb,vgg16_sc,vggnet,mnist_net,resnet18_dd,shallow_cnn_s002,resnet18_s002,vgg16_s002,"
                "resnet18_s003,resnet34_s003,resnet50_s003,efficientface,vit_tiny_fer,resnet18,fer_vgg_m")


class NaiveFer(Dataset):
    """What a typical FER tutorial does: pixel string → PIL image → torchvision transforms, per sample."""

    def __init__(self, pixels: list[str], labels: np.ndarray) -> None:
        self.pixels, self.labels = pixels, labels
        self.tf = transforms.Compose([
            transforms.RandomAffine(20, translate=(0.2, 0.2), scale=(0.8, 1.2)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        a = np.array(self.pixels[i].split(), dtype=np.uint8).reshape(48, 48)
        return self.tf(Image.fromarray(a, mode="L")), int(self.labels[i])


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(name: str, steps: int, images: torch.Tensor, labels: torch.Tensor, pixels: list[str]) -> dict[str, float]:
    model = create_model(name, num_classes=7, in_chans=1).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    model.train()
    pre = Preprocessing(size=48, channels=1, mean=[0.5], std=[0.5])
    aug = AugmentConfig.preset("keras")
    g = torch.Generator().manual_seed(0)
    out = {}

    # (c) model step only
    x0 = pre(images[:BATCH])
    y0 = labels[:BATCH]
    for _ in range(3):
        _step(model, opt, x0, y0)
    t = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x0, y0)
    out["c_model_only"] = steps * BATCH / (time.perf_counter() - t)

    # (b) ferbench pipeline
    order = torch.randperm(len(labels), generator=g)
    t = time.perf_counter()
    for s in range(steps):
        idx = order[s * BATCH:(s + 1) * BATCH]
        _step(model, opt, train_batch(images, idx, pre, aug, g), labels[idx])
    out["b_ferbench"] = steps * BATCH / (time.perf_counter() - t)

    # (a) naive DataLoader
    loader = DataLoader(NaiveFer(pixels, labels.numpy()), batch_size=BATCH, shuffle=True, num_workers=0)
    it = iter(loader)
    t = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        _step(model, opt, x, y)
    out["a_naive"] = steps * BATCH / (time.perf_counter() - t)
    return out


def bench_input(steps: int, images: torch.Tensor, labels: torch.Tensor, pixels: list[str]) -> dict[str, float]:
    """Images/s of the input pipelines alone: decode + Keras-style augmentation + normalisation, batch 64."""
    pre = Preprocessing(size=48, channels=1, mean=[0.5], std=[0.5])
    aug = AugmentConfig.preset("keras")
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=g)
    t = time.perf_counter()
    for s in range(steps):
        idx = order[s * BATCH:(s + 1) * BATCH]
        train_batch(images, idx, pre, aug, g)
    b = steps * BATCH / (time.perf_counter() - t)
    it = iter(DataLoader(NaiveFer(pixels, labels.numpy()), batch_size=BATCH, shuffle=True, num_workers=0))
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    a = steps * BATCH / (time.perf_counter() - t)
    return {"a_naive": a, "b_ferbench": b}


def precision_step(model: torch.nn.Module, opt: torch.optim.Optimizer, plan: PrecisionPlan, images: torch.Tensor,
                   labels: torch.Tensor, idx: torch.Tensor, pre: Preprocessing, aug: AugmentConfig,
                   g: torch.Generator) -> None:
    """One training step as the trainer runs it under ``plan``: ``train_batch`` → forward under the plan's
    autocast → fp32 cross-entropy → optimiser step (also profiled by ``profile_bf16.py``)."""
    x = plan.prepare_input(train_batch(images, idx, pre, aug, g))
    with plan.autocast():
        logits = to_fp32(model(x))
    loss = F.cross_entropy(logits, labels[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_precision(name: str, steps: int, images: torch.Tensor, labels: torch.Tensor, plans: list[PrecisionPlan],
                    batch: int = 128, warmup: int = 2, compile_last: bool = False, size: int = 48) -> dict[str, float]:
    """Training images/s of ``name`` under each plan: real FER2013 rows → ``train_batch`` (Keras augmentation)
    → forward under the plan's autocast → fp32 cross-entropy → fused AdamW step. Same batches for every plan.
    ``compile_last``: also the last plan with the model under ``torch.compile`` (as ``train.compile: true``;
    the compilation happens in the warm-up steps, which are not timed). ``size``: the input side (FER2013's
    48-px faces resized to it in the batch, as ``preprocessing.size`` does in training)."""
    torch.manual_seed(0)
    base = create_model(name, num_classes=7, in_chans=1, input_size=size)
    pre = Preprocessing(size=size, channels=1, mean=[0.5], std=[0.5])
    aug = AugmentConfig.preset("keras")
    out = {}
    runs = [(plan, False) for plan in plans] + ([(plans[-1], True)] if compile_last else [])
    for plan, compiled in runs:
        model = plan.prepare_model(copy.deepcopy(base))
        model.train()
        if compiled:
            model = torch.compile(model)
        opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=True)  # as the trainer (train/precision.fused_ok)
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(len(labels), generator=g)
        t = 0.0
        for s in range(warmup + steps):
            if s == warmup:
                t = time.perf_counter()
            idx = order[(s * batch) % (len(labels) - batch):][:batch]
            precision_step(model, opt, plan, images, labels, idx, pre, aug, g)
        out[plan.describe() + (" + compile" if compiled else "")] = steps * batch / (time.perf_counter() - t)
    return out


def precision_table(models: list[str], steps: int, bf16: str, images: torch.Tensor, labels: torch.Tensor,
                    warmup: int = 2, compile_last: bool = False, size: int = 48) -> None:
    supported, why = cpu_bf16_support()
    plans = [PrecisionPlan("fp32", False), PrecisionPlan("fp32", True)]
    if bf16 == "always" or (bf16 == "auto" and supported):
        plans.append(PrecisionPlan("bf16", True))
    print(f"CPU bf16: {'native' if supported else 'not native'} ({why}); batch 128, {size} px, AdamW, "
          f"{torch.get_num_threads()} threads, {steps} timed steps after {warmup} warm-up; load {os.getloadavg()[0]:.1f}")
    cols = [p.describe() for p in plans] + ([plans[-1].describe() + " + compile"] if compile_last else [])
    print("| model | " + " | ".join(f"{c} img/s" for c in cols) + " | " +
          " | ".join(f"{c} / fp32" for c in cols[1:]) + " |")
    print("|---|" + "---|" * (2 * len(cols) - 1))
    for name in models:
        r = bench_precision(name, steps, images, labels, plans, warmup=warmup, compile_last=compile_last, size=size)
        base = r[cols[0]]
        print(f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in cols) + " | " +
              " | ".join(f"{r[c] / base:.2f}x" for c in cols[1:]) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default=None, help="comma-separated (default: pipeline table 3 models, "
                    "precision table the study's families)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table", choices=["pipeline", "precision"], default="pipeline")
    ap.add_argument("--bf16", choices=["auto", "always", "never"], default="auto")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per plan (precision table)")
    ap.add_argument("--size", type=int, default=48, help="precision table: input side in px (faces resized to it)")
    ap.add_argument("--compile", action="store_true",
                    help="precision table: also the last plan under torch.compile (give --warmup 3+: compiling is untimed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.table == "precision":
        tr = load_dataset("fer2013").split("Training")
        n = min(len(tr), 128 * (args.steps + args.warmup + 1) + 128)
        precision_table((args.models or STUDY_MODELS).split(","), args.steps, args.bf16, tr.images[:n], tr.labels[:n],
                        args.warmup, args.compile, args.size)
        return
    args.models = args.models or "shallow_cnn_s002,resnet18,fer_vgg_s"
    ds = load_dataset("fer2013").split("Training")
    n = min(len(ds), BATCH * (args.steps + 5))
    images, labels = ds.images[:n], ds.labels[:n]
    pixels = [" ".join(map(str, img.ravel().tolist())) for img in images.numpy()]
    print("| model | (a) naive img/s | (b) ferbench img/s | (c) model only img/s | (b)/(a) | (b)/(c) |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        r = bench(name, args.steps, images, labels, pixels)
        print(f"| {name} | {r['a_naive']:.0f} | {r['b_ferbench']:.0f} | {r['c_model_only']:.0f} | "
              f"{r['b_ferbench'] / r['a_naive']:.2f}× | {r['b_ferbench'] / r['c_model_only']:.2f} |", flush=True)
    r = bench_input(args.steps, images, labels, pixels)
    print("\n| input pipeline only (no model) | (a) naive img/s | (b) ferbench img/s | (b)/(a) |")
    print("|---|---|---|---|")
    print(f"| decode + augment + normalise, batch {BATCH} | {r['a_naive']:.0f} | {r['b_ferbench']:.0f} | "
          f"{r['b_ferbench'] / r['a_naive']:.1f}× |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
