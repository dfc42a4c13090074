"""Methods through the one trainer and the checkpoint format (tiny synthetic folder dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_folder

from ferbench.loader import build_model, load_checkpoint, save_checkpoint

METHOD_CASES = {
    "esr": ("resnet18", {"name": "esr", "n_branches": 3, "epochs_per_branch": 1, "old_lr_factor": 0.1}),
    "scn": ("resnet18", {"name": "scn", "relabel_epoch": 0}),
    "dacl": ("resnet18", {"name": "dacl", "hidden": [32, 16, 8], "attn_grid": 2}),
    "dan": ("resnet18", {"name": "dan", "num_heads": 2}),
}


def _cfg(root: Path, model: str, method: dict, epochs: int = 2, size: int = 48) -> dict:
    return {
        "name": "t", "seed": 0,
        "data": {"name": f"folder:{root}", "train_split": "train", "val_split": "val", "test_split": "test"},
        "model": {"name": model},
        "method": method,
        "preprocessing": {"size": size, "channels": 3, "mean": [0.0], "std": [1.0], "interpolation": "bilinear"},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 1e-3, "augment": "none", "early_stopping": 0,
                  "scheduler": "none", "drop_last": False, "channels_last": False},
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "faces", ["angry", "happy", "sad"], n=8, size=32)


@pytest.mark.parametrize("method", list(METHOD_CASES))
def test_method_trains_and_reloads(method: str, folder: Path, tmp_path: Path) -> None:
    from ferbench.train.loop import train

    model_name, meth = METHOD_CASES[method]
    epochs = 2 if method == "esr" else 1  # ESR: a second epoch to grow a branch
    run = train(_cfg(folder, model_name, meth, epochs), tmp_path / "run", progress=False, log=lambda s: None)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == epochs and all(r["train_loss"] > 0 for r in rows)
    side = json.loads((run / "best.json").read_text())
    assert side["architecture"]["method"] == meth
    model, meta = load_checkpoint(run)
    out = model(torch.rand(2, 3, 48, 48))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    if method == "esr":
        assert rows[1]["esr_active_branches"] == 2.0  # grew at epoch 2
    if method == "scn":
        assert "scn_relabelled" in rows[0] and "scn_alpha_mean" in rows[0]
    assert (run / "eval_test.json").exists()


def test_esr_architecture_checkpoint_roundtrip(tmp_path: Path) -> None:
    from ferbench.models import create_model

    arch = {"name": "esr_4", "num_classes": 8, "in_chans": 3, "input_size": 96, "kwargs": {},
            "method": {"name": "esr", "predict": "mean"}}
    model = build_model(arch)
    model.active.fill_(3)
    save_checkpoint(tmp_path / "m.safetensors", model, {"architecture": arch, "classes": list("abcdefgh"),
                                                        "preprocessing": {"size": 96, "channels": 3}})
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.n_active == 3 and loaded.predict == "mean"
    x = torch.rand(2, 3, 96, 96)
    model.eval()
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
    assert isinstance(create_model("esr_9", num_classes=8).branches, torch.nn.ModuleList)
