"""The ``wild`` augmentation preset (photometric + blur + JPEG artefacts): batched, bounded, reproducible."""

from __future__ import annotations

import torch

from ferbench.train.augment import AugmentConfig, _random_blur, _random_jpeg, augment_batch


def test_wild_is_bounded_and_reproducible() -> None:
    x = torch.rand(32, 1, 48, 48)
    cfg = AugmentConfig.preset("wild")
    a = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(3))
    b = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)


def test_blur_lowers_high_frequencies_only_where_picked() -> None:
    x = (torch.arange(48).view(1, 1, 1, 48) % 2).float().expand(8, 1, 48, 48).contiguous()  # 1-px stripes
    out = _random_blur(x, 0.5, torch.Generator().manual_seed(0))
    changed = [(out[i] - x[i]).abs().max() > 1e-3 for i in range(8)]
    assert any(changed) and not all(changed)
    for i in range(8):
        if changed[i]:
            assert out[i].std() < x[i].std() - 1e-3  # stripes smoothed (even the smallest sigma, 0.3 px)
            assert abs(out[i].mean() - x[i].mean()) < 0.02  # brightness kept


def test_jpeg_round_trip_adds_artefacts_on_picked_images() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 32, 32, generator=g)
    out = _random_jpeg(x, 1.0, torch.Generator().manual_seed(2))
    err = (out - x).abs().mean(dim=(1, 2, 3))
    assert bool((err > 0.01).all())  # lossy on noise
    assert out.shape == x.shape and out.dtype == x.dtype
