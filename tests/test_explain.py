"""Explanations: an honest localisation test, the Adebayo randomisation check, members, layers and the CLI."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ferbench.data.dataset import FerDataset
from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError
from ferbench.explain import (
    attribution_maps,
    class_maps,
    explain_images,
    members_of,
    parse_target,
    resolve_target_layer,
    save_class_maps,
    save_panel,
)

torch.set_num_threads(1)

SIZE, PATCH, OFF = 48, 12, 3
CLASSES = ["angry", "happy", "sad", "surprise"]  # class c ↔ patch in quadrant c (row-major: TL, TR, BL, BR)
PRE = Preprocessing(size=SIZE, channels=1, mean=[0.5], std=[0.5])
META = {"classes": CLASSES, "preprocessing": PRE.to_dict()}


def patch_origin(c: int) -> tuple[int, int]:
    """Top-left corner (row, col) of class ``c``'s bright patch."""
    return (OFF if c in (0, 1) else SIZE - OFF - PATCH), (OFF if c in (0, 2) else SIZE - OFF - PATCH)


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(n, 48, 48, 1)`` dark noise with one bright 12×12 patch whose quadrant is the label."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randint(0, 100, (n, SIZE, SIZE, 1), generator=g, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, k = patch_origin(c)
        x[i, r:r + PATCH, k:k + PATCH] += 150
    return x, y


class CoordConv(nn.Module):
    """Appends y/x coordinate channels (Liu et al. 2018) so a global-pooled net can tell positions apart."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        yy = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xx = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, yy, xx], 1)


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """48×48×1 → 4 logits; layer "9" is the last conv (12×12 map), followed by ReLU → GAP → linear."""
    torch.manual_seed(seed)
    return nn.Sequential(
        CoordConv(), nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny CNN trained for a few seconds on the patch task, and held-out test images + labels."""
    images, labels = synthetic(384, seed=0)
    x = PRE(images)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(5):
        for i in range(0, len(x), 32):
            loss = nn.functional.cross_entropy(model(x[i:i + 32]), labels[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test_images, test_labels = synthetic(32, seed=1)
    return model, test_images, test_labels


def quadrant_of_peak(m: np.ndarray) -> int:
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(r >= SIZE // 2) * 2 + int(c >= SIZE // 2)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_peak_falls_in_the_class_patch(trained, method):
    model, images, labels = trained
    expl = explain_images(model, META, images, method, target_layer="9")
    acc = float((expl.probs.argmax(1) == labels.numpy()).mean())
    assert acc >= 0.9, f"tiny model did not learn the patch task (accuracy {acc:.2f})"
    assert expl.maps.shape == (32, SIZE, SIZE) and expl.maps.dtype == np.float32
    assert 0.0 <= expl.maps.min() and expl.maps.max() <= 1.0
    # every image: the map's peak lies in the quadrant of its class's patch
    peaks = [quadrant_of_peak(m) for m in expl.maps]
    assert peaks == labels.tolist()
    # each class's mean map peaks inside the patch itself (± one 4-px cell of the 12×12 CAM)
    for c in range(4):
        mean = expl.maps[labels.numpy() == c].mean(0)
        r, k = np.unravel_index(int(np.argmax(mean)), mean.shape)
        r0, k0 = patch_origin(c)
        assert r0 - 4 <= r < r0 + PATCH + 4 and k0 - 4 <= k < k0 + PATCH + 4, (c, r, k)
        inside = mean[r0:r0 + PATCH, k0:k0 + PATCH].mean()
        assert inside > 1.5 * mean.mean(), (c, inside, mean.mean())


def test_randomised_model_maps_differ_from_trained(trained):
    """Adebayo et al. 2018 model-randomisation check: a method whose maps survive re-initialising the
    weights explains the input, not the model."""
    model, images, labels = trained
    x = PRE(images)
    random_model = tiny_cnn(seed=123).eval()
    for method in ("gradcam", "saliency"):
        a, _ = attribution_maps(model, x, labels, method, target_layer="9")
        a2, _ = attribution_maps(model, x, labels, method, target_layer="9")
        b, _ = attribution_maps(random_model, x, labels, method, target_layer="9")
        np.testing.assert_allclose(a, a2, atol=1e-6)  # deterministic: differences come from the weights
        corr = [np.corrcoef(p.ravel(), q.ravel())[0, 1] for p, q in zip(a, b, strict=True)]
        corr = np.nan_to_num(np.asarray(corr), nan=0.0)  # a constant random map correlates with nothing
        assert corr.mean() < 0.5, (method, corr.mean())


def test_every_method_returns_unit_maps(trained):
    model, images, labels = trained
    x = PRE(images[:4])
    for method in ("scorecam", "integrated-gradients"):
        maps, layers = attribution_maps(model, x, labels[:4], method, target_layer="9", n_steps=8)
        assert maps.shape == (4, SIZE, SIZE) and np.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0.5
        assert bool(layers) == (method == "scorecam")
    with pytest.raises(FerbenchError, match="unknown explanation method 'lime'"):
        attribution_maps(model, x, labels[:4], "lime")


def test_target_layer_declared_or_found():
    from ferbench.models import create_model

    r18 = create_model("resnet18", num_classes=7, in_chans=1, input_size=48)
    layer = resolve_target_layer(r18, 48, 1)
    assert (layer.name, layer.declared, layer.map_size) == ("backbone.layer3", True, (3, 3))
    # no declaration: the last conv whose map is larger than 1×1 (the final 1×1 conv is skipped)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 3, 1), nn.Flatten())
    found = resolve_target_layer(net, 48, 1)
    assert (found.name, found.declared, found.map_size) == ("2", False, (24, 24))
    assert "last conv" in found.describe()
    with pytest.raises(FerbenchError, match="target layer 'nope' not found"):
        resolve_target_layer(net, 48, 1, "nope")


class _Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).softmax(-1) for m in self.members]).mean(0).log()


class _Branches(nn.Module):
    """ESR-shaped: shared base + branches, ``branch_logits`` (A, B, C), forward = vote (no gradient)."""

    def __init__(self, base: nn.Module, branches: list[nn.Module]) -> None:
        super().__init__()
        self.base, self.branches = base, nn.ModuleList(branches)
        self.n_active = len(branches)

    def branch_logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base(x)
        return torch.stack([b(f) for b in self.branches])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        votes = nn.functional.one_hot(self.branch_logits(x).argmax(-1), 4).sum(0).float()
        return (votes + 1e-3).log()


def test_ensemble_and_branch_maps_are_member_means(trained):
    model, images, labels = trained
    x = PRE(images[:8])
    single, _ = attribution_maps(model, x, labels[:8], "gradcam", target_layer="9")
    ens = _Ensemble([model, model])
    assert len(members_of(ens)) == 2
    doubled, layers = attribution_maps(ens, x, labels[:8], "gradcam", target_layer="member.9")
    np.testing.assert_allclose(doubled, single, atol=1e-5)
    assert [lay.name for lay in layers] == ["member.9", "member.9"]
    # mixed members: mean of each member's own map
    other = tiny_cnn(seed=7).eval()
    mixed, _ = attribution_maps(_Ensemble([model, other]), x, labels[:8], "saliency")
    parts = [attribution_maps(m, x, labels[:8], "saliency")[0] for m in (model, other)]
    np.testing.assert_allclose(mixed, np.mean(parts, 0), atol=1e-5)
    # ESR-like wrapper whose vote output has no gradient: per-branch saliency still works
    esr = _Branches(model[:10], [model[10:], other[10:]]).eval()
    assert len(members_of(esr)) == 2
    maps, _ = attribution_maps(esr, x, labels[:8], "saliency")
    assert maps.shape == (8, SIZE, SIZE) and maps.max() > 0.5
    cams, layers = attribution_maps(esr, x, labels[:8], "gradcam")  # no declaration: fallback per branch
    assert [lay.name for lay in layers] == ["wrapper.base.9", "wrapper.base.9"] and cams.max() > 0.5


def test_fallback_skips_layers_that_do_not_reach_the_output():
    """A branch view runs every branch; only its own branch's convs may be hooked."""
    base = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    branch = [nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 4)) for _ in range(3)]
    views = members_of(_Branches(base, branch).eval())
    names = [resolve_target_layer(v, 48, 1).name for v in views]
    assert names == ["wrapper.branches.0.0", "wrapper.branches.1.0", "wrapper.branches.2.0"]


def test_per_class_maps_find_each_patch(trained, tmp_path):
    model, _, _ = trained
    images, labels = synthetic(40, seed=2)
    part = FerDataset("synthetic", CLASSES, images, labels, np.array(["test"] * 40))
    cm = class_maps(model, META, part, "gradcam", limit=6, batch_size=16)
    assert cm.counts.tolist() == [6, 6, 6, 6] and cm.totals.tolist() == [10, 10, 10, 10]
    assert cm.correct.tolist() == [10, 10, 10, 10]  # the trained model solves the task
    assert cm.maps.shape == (4, SIZE, SIZE) and cm.views.shape == (4, SIZE, SIZE, 3)
    assert [quadrant_of_peak(m) for m in cm.maps] == [0, 1, 2, 3]
    path = save_class_maps(cm, tmp_path / "pc.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]


def test_parse_target_and_panel(trained, tmp_path):
    model, images, _ = trained
    assert parse_target("predicted", CLASSES) is None
    assert parse_target("Happiness", CLASSES) == 1 and parse_target("3", CLASSES) == 3
    with pytest.raises(FerbenchError, match=r"--target 'joyful': not a class of this model \(angry, happy"):
        parse_target("joyful", CLASSES)
    expl = explain_images(model, META, images[:2], "gradcam", target="sad", sources=["a.png", "b.png"],
                          target_layer="9")
    assert expl.targets.tolist() == [2, 2]
    assert [c for c, _ in expl.top(0)][0] == CLASSES[int(expl.probs[0].argmax())]
    with Image.open(save_panel(expl, 0, tmp_path / "a.png")) as im:
        assert im.format == "PNG"


# --- CLI ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A shallow_cnn_s002 run dir (random weights, 7 classes, grey 48 px) and a folder of face crops."""
    from ferbench.loader import save_checkpoint
    from ferbench.models import create_model

    root = tmp_path_factory.mktemp("explain_cli")
    torch.manual_seed(0)
    model = create_model("shallow_cnn_s002", num_classes=7, in_chans=1, input_size=48)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    save_checkpoint(root / "run" / "best.safetensors", model, {
        "architecture": {"name": "shallow_cnn_s002", "num_classes": 7, "in_chans": 1, "input_size": 48,
                         "kwargs": {}, "method": None},
        "classes": classes, "preprocessing": Preprocessing(size=48, channels=1).to_dict(),
        "protocol": {}, "metrics": {}, "dataset": "fer2013", "epoch": 0})
    faces = root / "faces"
    faces.mkdir()
    images, _ = synthetic(3, seed=3)
    for i, im in enumerate(images):
        Image.fromarray(im[..., 0].numpy()).save(faces / f"face{i}.png")
    (faces / "broken.png").write_bytes(b"not a png")
    return root


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``ferbench ARGS`` through the real entry point; returns (exit code, stdout, stderr)."""
    from ferbench.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ferbench", *args])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_one_png_per_face(checkpoint, monkeypatch, capsys):
    out = checkpoint / "out"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "explain", str(checkpoint / "run"),
                                   str(checkpoint / "faces"), "--out", str(out), "--target", "happy")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [f"face{i}_gradcam.png" for i in range(3)]
    for p in out.iterdir():
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300
    assert "broken.png" in stderr and "skipped" in stderr  # the corrupt file is noted, the rest explained
    assert "CAM layer: features.2.0 (12×12 map; declared in the registry)" in stderr
    assert "3 panel(s) written" in stdout and "happy" in stdout


@pytest.mark.parametrize(("args", "message"), [
    (["{run}", "{root}/missing.png"], "missing.png: no such file or folder"),
    (["{run}", "{root}/faces", "--target", "bored"], "--target 'bored': not a class of this model"),
    (["{root}/nowhere", "{root}/faces"], "no checkpoint found"),
    (["{run}", "{root}/faces", "--method", "lime"], "--method 'lime': choose one of"),
    (["{run}", "--per-class"], "--per-class needs --data NAME"),
])
def test_cli_errors_are_one_line(checkpoint, monkeypatch, capsys, args, message):
    args = [a.format(run=checkpoint / "run", root=checkpoint) for a in args]
    code, stdout, stderr = run_cli(monkeypatch, capsys, "explain", *args)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


def test_cli_per_class_figure(checkpoint, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    images, labels = synthetic(8, seed=4)
    for split in ("train", "val", "test"):
        for i, (im, y) in enumerate(zip(images, labels.tolist(), strict=True)):
            d = tmp_path / "ds" / split / ["angry", "happy", "sad", "surprise"][y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im[..., 0].numpy()).save(d / f"{i}.png")
    code, stdout, stderr = run_cli(monkeypatch, capsys, "explain", str(checkpoint / "run"), "--data",
                                   f"folder:{tmp_path / 'ds'}", "--split", "test", "--per-class",
                                   "--out", str(tmp_path / "pc.png"), "--limit", "2")
    assert code == 0, stderr
    assert (tmp_path / "pc.png").is_file()
    assert "images averaged (correct/total)" in stdout and "happy " in stdout and "/2)" in stdout


def test_photos_go_through_the_face_detector(monkeypatch):
    """Small images are face crops; large ones are detected and cropped with the sidecar's margin."""
    from ferbench.explain import explainer
    from ferbench.faces import Detections

    class OneFace:
        def detect(self, image: np.ndarray) -> Detections:
            return Detections(np.array([[100, 50, 200, 150]], np.float32), np.array([1.0], np.float32))

    crop = np.zeros((48, 48, 3), np.uint8)
    assert [f.image.shape for f in explainer.faces_from_image(crop, "c.png", PRE)] == [(48, 48, 3)]
    photo = np.zeros((300, 400, 3), np.uint8)
    notes: list[str] = []
    blank = explainer.faces_from_image(photo, "p.jpg", PRE, "auto", notes)  # real haar: nothing on black
    assert [f.image.shape for f in blank] == [(300, 400, 3)] and "no face found" in notes[0]
    assert explainer.faces_from_image(photo, "p.jpg", PRE, "haar", notes) == []
    monkeypatch.setattr(explainer, "_detector", lambda name: OneFace())
    faces = explainer.faces_from_image(photo, "p.jpg", PRE, "auto")
    side = round(100 * (1 + 2 * PRE.crop_margin))
    assert [(f.source, f.image.shape) for f in faces] == [("p.jpg", (side, side, 3))]
    with pytest.raises(FerbenchError, match="unknown --detector 'dlib'"):
        explainer.faces_from_image(photo, "p.jpg", PRE, "dlib")
