"""How much a freshly built model's logits depend on its input — finds nets that cannot start training.

For each model (48 px, the channels of its study row, train mode with dropout off so BatchNorm uses batch
statistics), ``--n`` real FER2013 PrivateTest faces go through the untrained net built as the study builds it.
Printed per model: the logits' standard deviation across the faces (mean over classes), their mean magnitude,
and the ratio of the two. A ratio below bf16's resolution (2^-8 ≈ 0.004) means the input barely reaches
the logits: gradients to the early layers are then mostly rounding, and under bf16 autocast training does
not start (seen on GoogLeNet: the loss stayed flat for 5 epochs). ``--compare-init`` adds the same ratio
with PyTorch's default initialisation for the models that use ``relu_init_`` (models/init.py).

Usage:  .venv/bin/python benchmarks/init_signal.py [--models googlenet_repo,mnist_net,...] [--n 32] [--compare-init]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from ferbench.data import load_dataset
from ferbench.models import create_model

MODELS = ("lenet5,mnist_net,seq3conv,seq4conv,seq_simple,alexnet,zf_net,modular,smmb,mobilenet,mobilenetv2,"
          "resnet18_dd,vgg16_sc,vggnet,googlenet_repo,ensemble3,shallow_cnn_s002,vgg16_s002,resnet18_s002")
BF16_RESOLUTION = 2.0 ** -8


def signal(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(std of the logits across inputs, mean |logit|)`` of ``model`` on ``x`` ``(N, C, S, S)``, train mode
    without dropout (BatchNorm on batch statistics, as the first training step sees it)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    with torch.no_grad():
        z = model(x).float()
    return float(z.std(0).mean()), float(z.abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--n", type=int, default=32, help="FER2013 PrivateTest faces")
    ap.add_argument("--compare-init", action="store_true",
                    help="also PyTorch's default init for the models built with relu_init_")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    faces = load_dataset("fer2013", args.data_root).split("PrivateTest").images[:args.n]
    grey = faces.permute(0, 3, 1, 2).float().div(255)
    print(f"| model | BN | logit std across {args.n} faces | mean abs logit | ratio | below bf16 resolution |")
    print("|---|---|---:|---:|---:|---|")
    for name in args.models.split(","):
        rows = [("", None)]
        if args.compare_init:
            rows.append((" (PyTorch default init)", "torch"))
        for suffix, init in rows:
            torch.manual_seed(0)
            chans = 3 if name in ("googlenet_repo", "vgg16_s002") else 1
            model = create_model(name, num_classes=7, in_chans=chans, input_size=48)
            if init == "torch":  # undo relu_init_: every layer's own reset_parameters (PyTorch's default)
                if getattr(model, "init_scheme", None) != "relu_init":
                    continue
                for m in model.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)):
                        m.reset_parameters()
            bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            std, mag = signal(model, grey.repeat(1, chans, 1, 1))
            ratio = std / max(mag, 1e-12)
            print(f"| {name}{suffix} | {'yes' if bn else 'no'} | {std:.2e} | {mag:.2e} | {ratio:.1e} | "
                  f"{'**yes**' if ratio < BF16_RESOLUTION else 'no'} |", flush=True)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
