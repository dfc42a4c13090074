"""Initialisation modes: scratch, file:PATH, imagenet (local HF cache only), run:RUN_DIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ferbench.errors import FerbenchError
from ferbench.models import create_model
from ferbench.models.init import apply_init
from ferbench.persist import write_checkpoint

torch.set_num_threads(1)

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _same(a: torch.nn.Module, b: torch.nn.Module, prefix: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in sa.items() if k.startswith(prefix))


def test_scratch_is_a_noop() -> None:
    m = create_model("lenet5")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert apply_init(m, "scratch", name="lenet5", num_classes=7) == {"init": "scratch"}
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_unknown_init_mode() -> None:
    with pytest.raises(FerbenchError, match="unknown init 'imagenet21k'"):
        apply_init(create_model("lenet5"), "imagenet21k", name="lenet5", num_classes=7)


def test_file_safetensors_full_match(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = create_model("lenet5")
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    dst = create_model("lenet5", init=f"file:{tmp_path / 'w.safetensors'}")
    assert _same(src, dst)
    rep = apply_init(
        create_model("lenet5"), f"file:{tmp_path / 'w.safetensors'}", name="lenet5", num_classes=7
    )
    assert rep["loaded"] == 10 and rep["n_missing"] == 0 and rep["n_unexpected"] == 0


def test_file_torch_state_dict_into_timm_backbone_reports_keys(tmp_path: Path) -> None:
    """A plain timm/torchvision ResNet-18 state dict (with a 1000-way fc) into resnet18_dd's ``backbone``."""
    import timm

    torch.manual_seed(1)
    plain = timm.create_model("resnet18", num_classes=1000)
    state = plain.state_dict()
    state["extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    m = create_model("resnet18_dd", input_size=224)
    rep = apply_init(m, f"file:{tmp_path / 'r18.pth'}", name="resnet18_dd", num_classes=7)
    assert rep["prefix"] == "backbone."
    assert torch.equal(m.backbone.layer3[0].conv1.weight, plain.layer3[0].conv1.weight)
    assert rep["n_unexpected"] == 3 and "extra.weight" in rep["unexpected"]  # fc.weight, fc.bias, extra
    assert rep["n_missing"] == 4 and all(k.startswith("head.") for k in rep["missing"])  # the new head
    # the 48-px CIFAR stem (3×3 conv1) cannot take the 7×7 weights: reported, not loaded
    rep48 = apply_init(
        create_model("resnet18_dd"), f"file:{tmp_path / 'r18.pth'}", name="resnet18_dd", num_classes=7
    )
    assert rep48["n_shape_mismatch"] == 1 and rep48["shape_mismatch"][0].startswith("conv1.weight")


def test_file_errors(tmp_path: Path) -> None:
    m = create_model("lenet5")
    with pytest.raises(FerbenchError, match="nope.safetensors: weights file not found"):
        apply_init(m, f"file:{tmp_path / 'nope.safetensors'}", name="lenet5", num_classes=7)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FerbenchError, match="junk.pt: not a readable safetensors file or torch state dict"):
        apply_init(m, f"file:{tmp_path / 'junk.pt'}", name="lenet5", num_classes=7)
    save_file({"other.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(FerbenchError, match="no tensor matches the model"):
        apply_init(m, f"file:{tmp_path / 'other.safetensors'}", name="lenet5", num_classes=7)


def test_file_never_unpickles_objects(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: D105
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(FerbenchError, match="evil.pt: not a readable"):
        apply_init(create_model("lenet5"), f"file:{tmp_path / 'evil.pt'}", name="lenet5", num_classes=7)


def test_imagenet_absent_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FerbenchError) as e:
        create_model("mobilenetv3_small", init="imagenet")
    msg = str(e.value)
    assert "\n" not in msg
    assert "timm/mobilenetv3_small_100.lamb_in1k/model.safetensors" in msg and "--init file:PATH" in msg
    for name in ("lenet5", "nasnet_mobile"):
        with pytest.raises(FerbenchError, match=f"model '{name}' has no timm ImageNet weights"):
            create_model(name, init="imagenet")


def _fake_hf_cache(root: Path, repo: str, tensors: dict[str, torch.Tensor]) -> None:
    """The Hugging Face hub cache layout: models--org--name/{refs/main, snapshots/<rev>/model.safetensors}."""
    base = root / f"models--{repo.replace('/', '--')}"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(rev)
    (base / "snapshots" / rev).mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(base / "snapshots" / rev / "model.safetensors")
    )


def test_imagenet_from_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    torch.manual_seed(2)
    ref = timm.create_model("mobilenetv3_small_100", num_classes=1000)
    _fake_hf_cache(tmp_path, "timm/mobilenetv3_small_100.lamb_in1k", ref.state_dict())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    m = create_model("mobilenetv3_small")
    rep = apply_init(m, "imagenet", name="mobilenetv3_small", num_classes=7)
    assert torch.equal(m.conv_stem.weight, ref.conv_stem.weight)
    assert torch.equal(m.blocks[3][0].conv_pw.weight, ref.blocks[3][0].conv_pw.weight)
    assert m.classifier.weight.shape == (7, 1024)  # new classifier, fresh
    b = rep["backbones"][0]
    assert b["n_missing"] == 2 and b["n_shape_mismatch"] == 0 and rep["loaded"] > 100
    # same weights into a seed-000 wrapper (backbone prefix) on grey input: timm adapts conv_stem to 1 channel
    w = create_model("mobilenetv2", in_chans=1)
    ref2 = timm.create_model("mobilenetv2_100", num_classes=1000)
    _fake_hf_cache(tmp_path, "timm/mobilenetv2_100.ra_in1k", ref2.state_dict())
    apply_init(w, "imagenet", name="mobilenetv2", num_classes=7)
    torch.testing.assert_close(w.backbone.conv_stem.weight, ref2.conv_stem.weight.sum(1, keepdim=True))
    assert torch.equal(w.backbone.blocks[2][0].conv_pw.weight, ref2.blocks[2][0].conv_pw.weight)


def _save_run(run: Path, model: torch.nn.Module, classes: list[str], name: str) -> None:
    meta = {
        "architecture": {"name": name, "num_classes": len(classes), "kwargs": {}, "method": None},
        "classes": classes,
        "preprocessing": {"size": 48, "channels": 1},
        "protocol": {},
        "metrics": {},
        "dataset": "fer2013",
        "epoch": 1,
    }
    write_checkpoint(run / "best.safetensors", model.state_dict(), meta)


def test_run_transfer_remaps_classes_by_name(tmp_path: Path) -> None:
    torch.manual_seed(3)
    src = create_model("lenet5", in_chans=1)
    _save_run(tmp_path / "run", src, FER7, "lenet5")
    # CK+-style target: other order, a synonym ("anger"), and a class the source never saw (contempt)
    tgt_classes = ["anger", "contempt", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    dst = create_model("lenet5", in_chans=1, num_classes=8)
    fresh = dst.head[-1].weight.detach().clone()
    rep = apply_init(dst, f"run:{tmp_path / 'run'}", name="lenet5", num_classes=8, classes=tgt_classes)
    assert _same(src, dst, "features.")
    sw, dw = src.head[-1].weight, dst.head[-1].weight
    for i, c in enumerate(tgt_classes):
        if c == "contempt":
            assert torch.equal(dw[i], fresh[i])  # new class keeps its fresh init
        else:
            j = FER7.index("angry" if c == "anger" else c)
            assert torch.equal(dw[i], sw[j]) and torch.equal(dst.head[-1].bias[i], src.head[-1].bias[j])
    assert rep["new_classes"] == ["contempt"] and rep["class_map"]["anger"] == "angry"
    assert rep["classifier_layers"] == ["head.5.bias", "head.5.weight"]
    assert rep["n_shape_mismatch"] == 0


def test_run_transfer_errors(tmp_path: Path) -> None:
    with pytest.raises(FerbenchError, match="no checkpoint found"):
        apply_init(create_model("lenet5"), f"run:{tmp_path / 'none'}", name="lenet5", num_classes=7)
    run = tmp_path / "run"
    _save_run(run, create_model("lenet5", in_chans=1), FER7, "lenet5")
    side = json.loads((run / "best.json").read_text())
    del side["classes"]
    (run / "best.json").write_text(json.dumps(side))
    with pytest.raises(FerbenchError, match="sidecar has no 'classes' list"):
        apply_init(create_model("lenet5", in_chans=1), f"run:{run}", name="lenet5", num_classes=7)
    side["classes"] = []
    (run / "best.json").write_text(json.dumps(side))
    with pytest.raises(FerbenchError, match="best.json: sidecar names 0 classes but the model has 7 outputs"):
        apply_init(create_model("lenet5", in_chans=1), f"run:{run}", name="lenet5", num_classes=7)


def test_run_init_takes_a_shipped_model_by_name() -> None:
    # recipes/generalise/distill_ft and softlabels_ft start from `run:default` in any working folder
    from ferbench.loader import build_model, load_checkpoint

    shipped, meta = load_checkpoint("default")
    m = build_model(meta["architecture"], meta["preprocessing"])
    rep = apply_init(m, "run:default", name=meta["architecture"]["name"], num_classes=len(meta["classes"]),
                     classes=meta["classes"])
    assert rep["new_classes"] == [] and rep["n_missing"] == 0 and rep["n_shape_mismatch"] == 0
    assert _same(shipped, m)
