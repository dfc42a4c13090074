"""Offline distillation: ensemble targets file (``ferbench distill-targets``) → ``data.soft_label_file`` training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_deploy import make_checkpoint

from ferbench.config import config_hash, load_config
from ferbench.errors import ConfigError, FerbenchError


def test_targets_average_the_teachers_and_round_trip(tmp_path: Path, tiny_root: Path) -> None:
    from ferbench.data import load_dataset
    from ferbench.evaluate.distill import save_targets, teacher_targets
    from ferbench.evaluate.predict import predict_probs
    from ferbench.loader import load_checkpoint, preprocessing_of
    from ferbench.train.build import read_soft_label_file

    a = make_checkpoint(tmp_path / "a")
    b = make_checkpoint(tmp_path / "b", margin=0.3)  # same weights (seed 0), other sidecar: a second teacher
    probs, side = teacher_targets([a, b], "fer2013", tiny_root, tta_hflip=False, log=lambda s: None)
    ds = load_dataset("fer2013", tiny_root)
    model, meta = load_checkpoint(a)
    ref = predict_probs(model, ds.images, preprocessing_of(meta))
    assert probs.shape == (len(ds), 7) and np.allclose(probs.numpy(), ref, atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(len(ds)))
    assert side["dataset"] == "fer2013" and side["n"] == len(ds) and len(side["teachers"]) == 2
    assert set(side["agreement_by_split"]) == {"Training", "PublicTest", "PrivateTest"}
    out = save_targets(tmp_path / "t" / "ens.safetensors", probs, side)
    assert out.with_suffix(".json").is_file()
    assert torch.equal(read_soft_label_file(out, ds), probs)
    with pytest.raises(ConfigError, match=r"ens.safetensors holds fer2013 \(280, 7\).*the run's data is fer2013 \(140, 7\)"):
        read_soft_label_file(out, ds.split("Training"))
    with pytest.raises(ConfigError, match="not found; make it with ferbench distill-targets"):
        read_soft_label_file(tmp_path / "none.safetensors", ds)
    with pytest.raises(FerbenchError, match="--out must end in .safetensors"):
        save_targets(tmp_path / "ens.pt", probs, side)
    with pytest.raises(FerbenchError, match="at least one teacher"):
        teacher_targets([], "fer2013", tiny_root)


def test_every_teacher_and_the_out_path_are_checked_before_any_teacher_runs(
        tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ferbench.evaluate.distill as distill
    from ferbench.cli.main import app

    ran: list[int] = []
    monkeypatch.setattr(distill, "predict_probs", lambda *a, **k: ran.append(1))  # a teacher run would show here
    a = make_checkpoint(tmp_path / "a")
    with pytest.raises(FerbenchError, match="missing: no checkpoint found"):
        distill.teacher_targets([a, tmp_path / "missing"], "fer2013", tiny_root)
    r = CliRunner().invoke(app, ["distill-targets", str(a), "--data", "fer2013", "--data-root", str(tiny_root),
                                 "--out", str(tmp_path / "t.npz")])
    assert isinstance(r.exception, FerbenchError) and "--out must end in .safetensors" in str(r.exception)
    assert ran == [] and not (tmp_path / "t.npz").exists()


def test_training_uses_the_file_mixed_with_the_label(tmp_path: Path, tiny_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbench.data import load_dataset
    from ferbench.evaluate.distill import save_targets
    from ferbench.methods.base import Supervised
    from ferbench.train.loop import train

    ds = load_dataset("fer2013", tiny_root)
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(torch.randn(len(ds), 7, generator=g) * 3, 1)
    path = save_targets(tmp_path / "t.safetensors", probs,
                        {"dataset": ds.name, "classes": list(ds.classes), "n": len(ds)})
    seen = []
    orig = Supervised.compute_loss

    def spy(self: Supervised, outputs: torch.Tensor, batch: object) -> torch.Tensor:
        seen.append(batch)
        return orig(self, outputs, batch)

    monkeypatch.setattr(Supervised, "compute_loss", spy)
    train({"model": {"name": "lenet5"}, "data": {"root": str(tiny_root), "soft_label_file": str(path), "soft_mix": 0.7},
           "preprocessing": {"size": 48, "channels": 1},
           "train": {"epochs": 1, "batch_size": 32, "augment": "none", "precision": "fp32"}},
          out_dir=tmp_path / "run", progress=False, log=lambda s: None)
    b = seen[0]
    rows = np.flatnonzero(np.asarray(ds.splits) == "Training")[b.index.numpy()]
    want = 0.7 * probs[rows] + 0.3 * F.one_hot(b.y, 7).float()
    assert b.soft and torch.allclose(b.target, want, atol=1e-6)


def test_new_data_keys_keep_old_config_hashes() -> None:
    cfg = load_config("protocols/seed000")
    old = {**cfg, "data": {k: v for k, v in cfg["data"].items() if k not in ("soft_label_file", "soft_mix")}}
    assert config_hash(cfg) == config_hash(old)  # finished runs and imported sweep trials keep their keys
    assert config_hash({**cfg, "data": {**cfg["data"], "soft_mix": 0.5}}) != config_hash(cfg)
