"""Training throughput (images/s) at 48×48, batch 64, 2 threads — three pipelines measured in one run.

(a) naive baseline: per-sample decode to a PIL image + torchvision transforms in a DataLoader;
(b) ferbench: uint8 tensor in memory → batched torch augmentation → preprocessing → model step;
(c) model step only, on pre-made tensors (the ceiling for (b)).
A second table times the input pipelines alone (no model): (a) per-sample PIL + torchvision in a DataLoader
vs (b) ferbench's batched torch augmentation on the uint8 tensor. When the model step is compute-bound
(shallow CNN, resnet18 on 2 cores), (b)/(a) of the full step cannot exceed (c)/(a); the input table shows
what the pipeline itself costs.

Usage:  .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--models shallow_cnn_s002,resnet18,fer_vgg_s]
"""

from __future__ import annotations

import argparse
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

BATCH = 64


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default="shallow_cnn_s002,resnet18,fer_vgg_s")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
    main()
