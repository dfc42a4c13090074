"""Bad configs, checkpoints and run folders: exit code 2, one line naming the problem, no traceback, nothing the
user already has lost or overwritten (the config/checkpoint/resume rows of the hardening table)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ferbench.loader import save_checkpoint
from ferbench.models import create_model


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from ferbench.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ferbench", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


BASE = "model:\n  name: lenet5\npreprocessing:\n  size: 48\n  channels: 1\ntrain:\n  epochs: 1\n"


@pytest.mark.parametrize(("yaml_text", "needle"), [
    ("train:\n  epochs: ten\n", "train.epochs"),
    ("train:\n  lr: fast\n", "train.lr"),
    ("train:\n  batch_size: 0\n", "train.batch_size"),
    ("preprocessing:\n  size: -48\n", "preprocessing.size"),
    ("data:\n  limit: 0\n", "data.limit"),
    ("data:\n  limit: -5\n", "data.limit"),
    ("train:\n  optimiser: adam\n", "optimiser"),
])
def test_bad_config_values(yaml_text: str, needle: str, tmp_path: Path, tiny_root: Path,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    code, err = run_cli(["train", str(cfg), "--out", str(tmp_path / "run"), "--data-root", str(tiny_root)],
                        monkeypatch, capsys)
    _assert_one_line(code, err, needle)
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_extends_cycle_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    code, err = run_cli(["train", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "run")], monkeypatch, capsys)
    _assert_one_line(code, err, "cycle", "a.yaml")


def _checkpoint(path: Path, **sidecar_changes: object) -> Path:
    model = create_model("lenet5", num_classes=7, in_chans=1, input_size=48)
    meta = {"architecture": {"name": "lenet5", "num_classes": 7, "kwargs": {}, "method": None},
            "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
            "preprocessing": {"size": 48, "channels": 1, "mean": [0.5], "std": [0.5]}}
    save_checkpoint(path, model, meta)
    if sidecar_changes:
        side = json.loads(path.with_suffix(".json").read_text())
        for k, v in sidecar_changes.items():
            if v is None:
                side.pop(k)
            else:
                side[k] = v
        side["weights_id"] = "edited-by-hand"  # a hand-edited .json (no longer the header's copy)
        path.with_suffix(".json").write_text(json.dumps(side))
        from safetensors.torch import load_file, save_file

        save_file(load_file(str(path)), str(path))  # a format-1-like file: no embedded sidecar
    return path


@pytest.mark.parametrize(("changes", "needle"), [
    ({"classes": None}, "'classes'"),
    ({"architecture": None}, "'architecture'"),
    ({"preprocessing": None}, "'preprocessing'"),
    ({"classes": ["a", "b", "c"]}, "3 classes but the model has 7 outputs"),
])
def test_bad_sidecars(changes: dict, needle: str, tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    ck = _checkpoint(tmp_path / "m.safetensors", **changes)
    for cmd in (["evaluate", str(ck), "--data", "fer2013", "--split", "PrivateTest", "--data-root", str(tiny_root)],
                ["export", str(ck), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]):
        code, err = run_cli(cmd, monkeypatch, capsys)
        _assert_one_line(code, err, needle)


def test_weights_of_another_shape(tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    ck = _checkpoint(tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    t = load_file(str(ck))
    k = next(iter(t))
    t[k] = torch.zeros(*[s + 1 for s in t[k].shape])
    save_file(t, str(ck), metadata=None)
    code, err = run_cli(["evaluate", str(ck), "--data", "fer2013", "--split", "PrivateTest", "--data-root",
                         str(tiny_root)], monkeypatch, capsys)
    _assert_one_line(code, err, "weights do not match lenet5", "size mismatch")


def test_stale_sidecar_after_an_interrupted_write_uses_the_weights_own(tmp_path: Path) -> None:
    from ferbench.loader import load_checkpoint

    ck = _checkpoint(tmp_path / "best.safetensors")
    old = json.loads(ck.with_suffix(".json").read_text())
    save_checkpoint(ck, create_model("lenet5", num_classes=7, in_chans=1, input_size=48),
                    {**{k: v for k, v in old.items() if k != "weights_id"}, "epoch": 2})
    ck.with_suffix(".json").write_text(json.dumps({**old, "epoch": 1}))  # the kill: .json still epoch 1's
    _, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2


def _tiny_run(tmp_path: Path, tiny_root: Path, epochs: int = 1) -> Path:
    from ferbench.train.loop import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE.replace("epochs: 1", f"epochs: {epochs}") + "  augment: none\n")
    return train(str(cfg), tmp_path / "run", overrides=[f"data.root={tiny_root}"], progress=False,
                 log=lambda s: None)


def test_damaged_resume_state(tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _tiny_run(tmp_path, tiny_root)
    (run / "last.json").write_text('{"epoch": 1, "tensors_fi')
    before = (run / "best.safetensors").read_bytes()
    code, err = run_cli(["train", str(tmp_path / "c.yaml"), "--out", str(run), "--resume", "--data-root",
                         str(tiny_root)], monkeypatch, capsys)
    _assert_one_line(code, err, "last.json", "damaged")
    assert (run / "best.safetensors").read_bytes() == before


def test_resuming_a_finished_run_keeps_its_config(tmp_path: Path, tiny_root: Path) -> None:
    from ferbench.train.loop import train

    run = _tiny_run(tmp_path, tiny_root)
    before = (run / "config.yaml").read_text()
    train(str(tmp_path / "c.yaml"), run, resume=True, overrides=[f"data.root={tiny_root}", "train.epochs=5"],
          progress=False, log=lambda s: None)
    assert (run / "config.yaml").read_text() == before
