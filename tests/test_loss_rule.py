"""The one soft-label rule (methods/base.py) across mixup × soft labels × class weights × label smoothing,
and that the trainer hands exactly that target to every method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferbench.methods import Batch, build_method, cross_entropy
from ferbench.models import create_model
from ferbench.train.mix import mix_batch


def test_hard_labels_match_torch_with_smoothing_and_keras_weights() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    w = torch.tensor([1.0, 2.0, 3.0, 0.5, 1.5])
    ref = (F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1) * w[y]).mean()
    assert torch.allclose(cross_entropy(logits, y, w, 0.1), ref)
    assert torch.allclose(cross_entropy(logits, F.one_hot(y, 5).float(), w, 0.1), ref)


def test_soft_targets_weight_by_the_expected_class_weight() -> None:
    logits = torch.randn(4, 3)
    q = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    w = torch.tensor([1.0, 3.0, 2.0])
    per = -(q * logits.log_softmax(1)).sum(1)
    assert torch.allclose(cross_entropy(logits, q, w), (per * (q @ w)).mean())
    eps = 0.2  # smoothing blends the target, the weight stays that of the unsmoothed target
    qs = q * (1 - eps) + eps / 3
    assert torch.allclose(cross_entropy(logits, q, w, eps), (-(qs * logits.log_softmax(1)).sum(1) * (q @ w)).mean())


def test_mixup_mixes_soft_targets_not_one_hot_labels() -> None:
    rng = np.random.default_rng(0)
    x = torch.rand(6, 1, 8, 8)
    soft = torch.softmax(torch.randn(6, 4), 1)
    xm, tm, lam = mix_batch(x, soft, mixup=0.4, cutmix=0.0, rng=rng)
    assert 0.0 < lam < 1.0
    assert torch.allclose(tm, lam * soft + (1 - lam) * soft.flip(0))
    assert torch.allclose(xm, lam * x + (1 - lam) * x.flip(0))
    assert torch.allclose(tm.sum(1), torch.ones(6))


def test_cutmix_weights_targets_by_the_pasted_area() -> None:
    rng = np.random.default_rng(3)
    x = torch.zeros(4, 1, 10, 10)
    x[2:] = 1.0
    t = F.one_hot(torch.tensor([0, 1, 2, 3]), 4).float()
    xm, tm, lam = mix_batch(x, t, mixup=0.0, cutmix=1.0, rng=rng)
    pasted = float(xm[0].mean())  # sample 0 (zeros) got a patch of sample 3 (ones)
    assert pasted == pytest.approx(1 - lam)
    assert torch.allclose(tm[0], torch.tensor([lam, 0.0, 0.0, 1 - lam]))


def test_label_smoothing_and_weights_reach_a_method() -> None:
    model = build_method("dacl", create_model("resnet18", num_classes=3, in_chans=3, input_size=48), num_classes=3)
    model.eval()
    x, y = torch.rand(4, 3, 48, 48), torch.tensor([0, 1, 2, 1])
    w = torch.tensor([1.0, 2.0, 0.5])
    with torch.no_grad():
        out = model.forward_train(x)
        plain = model.compute_loss(out, Batch(x=x, y=y))
        smoothed = model.compute_loss(out, Batch(x=x, y=y, class_weights=w, label_smoothing=0.3))
    assert not torch.allclose(plain, smoothed)  # both options change a method's loss


@pytest.mark.parametrize(("mixup", "class_weights", "smoothing"), [(0.0, "none", 0.0), (0.4, "simple", 0.1)])
def test_trainer_hands_the_soft_mixed_target_to_the_method(tmp_path: Path, tiny_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch, mixup: float,
                                                           class_weights: str, smoothing: float) -> None:
    from ferbench.data import load_dataset
    from ferbench.methods.base import Supervised
    from ferbench.train import build
    from ferbench.train.loop import train

    def with_soft(name: str, root: object = None, **kw: object):  # fer2013 images with label distributions
        ds = load_dataset(name, root, **kw)
        g = torch.Generator().manual_seed(1)
        ds.soft_labels = torch.softmax(torch.randn(len(ds), ds.num_classes, generator=g) * 3, 1)
        return ds

    seen: list[Batch] = []
    orig = Supervised.compute_loss

    def spy(self: Supervised, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        seen.append(batch)
        return orig(self, outputs, batch)

    monkeypatch.setattr(build, "load_dataset", with_soft)
    monkeypatch.setattr(Supervised, "compute_loss", spy)
    train({"model": {"name": "lenet5"}, "data": {"soft_labels": True, "root": str(tiny_root)},
           "preprocessing": {"size": 48, "channels": 1},
           "train": {"epochs": 1, "batch_size": 32, "mixup": mixup, "class_weights": class_weights,
                     "label_smoothing": smoothing, "augment": "none", "precision": "fp32"}},
          out_dir=tmp_path / "run", progress=False, log=lambda s: None)
    assert seen
    b = seen[0]
    assert b.soft and b.label_smoothing == smoothing and (b.class_weights is not None) == (class_weights != "none")
    onehot = F.one_hot(b.y, b.target.shape[1]).float()
    assert not torch.allclose(b.target, onehot)  # the distributions, not the hard labels
    assert torch.allclose(b.target.sum(1), torch.ones(len(b.y)))
