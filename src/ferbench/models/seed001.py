"""Seed 001 backbone (docs/protocol.md §3.3–3.4): the ResNet-18 of SCN / DACL / DAN.

Seed 001 uses the torchvision ResNet-18 with ImageNet weights, 96 px input in the FER methods' runs. That is
the zoo's ``resnet18`` network; ``resnet18_s001`` is its paper name (an alias that presets the torchvision
weights for ``--init imagenet`` and records the paper's sizes). The methods themselves (ESR growing and
voting, SCN attention and relabelling, DACL attention and sparse center loss, DAN) live in
``ferbench.methods`` and wrap this backbone; the ESR networks are the ``esr_*`` models.

Checkpoints saved before the alias existed (a backbone without classifier beside a top-level ``fc``) load
unchanged: their ``fc.*`` tensors are renamed to the network's ``backbone.fc.*``.
"""

from __future__ import annotations

from ferbench.models.registry import register_alias

register_alias(
    "resnet18_s001",
    "resnet18",
    paper="001",
    input_size=96,
    sizes=(48, 96, 224),
    expected_params={96: 11_180_103},
    description="ResNet-18 backbone of SCN / DACL (torchvision weights, 96 px in seed 001)",
    preset={"imagenet_tag": "tv_in1k"},
    legacy_keys=(("fc.", "backbone.fc."),),
)
