"""Seed 004 (survey) families: EfficientFace from scratch and timm transformer baselines (ViT-Tiny, MobileViT)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferbench.errors import ConfigError, FerbenchError
from ferbench.models import count_params, create_model, list_models, model_info
from ferbench.models.seed004 import ChannelSpatialModulator, LocalFeatureExtractor
from ferbench.train.policies import apply_policy, head_module_names

torch.set_num_threads(1)


def test_registered_with_paper_004() -> None:
    for name in ("efficientface", "vit_tiny_fer", "mobilevit_xxs"):
        assert name in list_models() and model_info(name).paper == "004" and model_info(name).family == "seed004"


def test_efficientface_size_matches_paper() -> None:
    # Zhao et al. 2021 Table: EfficientFace 1.28 M parameters (224 px, 3 channels, 7 classes)
    n = count_params(create_model("efficientface", num_classes=7, in_chans=3, input_size=224))
    assert abs(n - 1.28e6) / 1.28e6 < 0.005
    # the first conv is the only in_chans-dependent layer: 29 * 3 * 3 * (3 - 1) weights fewer at 1 channel
    assert n - count_params(create_model("efficientface", in_chans=1, input_size=48)) == 29 * 9 * 2


def test_local_extractor_tiles_quadrants_onto_stage2_map() -> None:
    torch.manual_seed(0)
    lfe = LocalFeatureExtractor(29, 116).eval()
    x = torch.rand(2, 29, 12, 12)
    out = lfe(x)
    assert out.shape == (2, 116, 6, 6)
    # the top-left 3x3 of the output depends only on the top-left quadrant of the input
    y = x.clone()
    y[..., 6:, :] = 0
    y[..., :, 6:] = 0
    with torch.no_grad():
        assert torch.equal(lfe(y)[..., :3, :3], out[..., :3, :3])
        assert not torch.equal(lfe(y)[..., 3:, 3:], out[..., 3:, 3:])
    mod = ChannelSpatialModulator(116).eval()
    z = torch.rand(2, 116, 6, 6)
    with torch.no_grad():
        g = mod(z) / z
    assert g.shape == z.shape and (g > 0).all() and (g < 1).all()  # a sigmoid gate on every element


@pytest.mark.parametrize(("name", "size", "chans"), [("efficientface", 48, 1), ("efficientface", 112, 3),
                                                     ("vit_tiny_fer", 48, 1), ("mobilevit_xxs", 112, 1)])
def test_forward_backward_and_head(name: str, size: int, chans: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=chans, input_size=size).train()
    out = model(torch.rand(2, chans, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    heads = head_module_names(model)
    last = [m for h in heads for m in model.get_submodule(h).modules() if isinstance(m, nn.Linear)][-1]
    assert last.out_features == 5
    assert 0 < apply_policy(model, "head-only") < count_params(model)


def test_vit_uses_144_tokens_and_bad_inputs_are_one_line_errors() -> None:
    m = create_model("vit_tiny_fer", in_chans=1, input_size=48)
    assert m.backbone.patch_embed.num_patches == 144
    assert create_model("vit_tiny_fer", in_chans=1, input_size=96).backbone.patch_embed.num_patches == 144
    with pytest.raises(ConfigError, match="multiple of 16"):
        create_model("efficientface", input_size=50)
    with pytest.raises(FerbenchError, match="efficientface.*head"):
        create_model("efficientface", head="seed000")
    with pytest.raises(FerbenchError, match="vit_tiny_fer.*pool"):
        create_model("vit_tiny_fer", pool="flatten")
