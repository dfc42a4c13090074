import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError
from ferbench.evaluate.crossdata import evaluate_checkpoint
from ferbench.loader import load_checkpoint, save_checkpoint
from ferbench.models import create_model
from ferbench.report.runs import write_report


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    m = create_model("fer_vgg_s", num_classes=7, in_chans=1)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    p = tmp_path / "m" / "best.safetensors"
    save_checkpoint(p, m, {"architecture": {"name": "fer_vgg_s", "num_classes": 7, "in_chans": 1, "input_size": 48,
                                            "kwargs": {}, "method": None},
                           "classes": classes, "preprocessing": Preprocessing(size=48, channels=1).to_dict(),
                           "protocol": {}, "metrics": {}, "dataset": "fer2013", "epoch": 1})
    return p


def test_checkpoint_roundtrip_is_exact(ckpt: Path) -> None:
    model, meta = load_checkpoint(ckpt.parent)
    torch.manual_seed(0)
    ref = create_model("fer_vgg_s", num_classes=7, in_chans=1).eval()
    x = torch.randn(3, 1, 48, 48)
    assert torch.equal(model(x), ref(x))
    assert meta["classes"][0] == "angry"


def test_missing_or_corrupt_checkpoint(tmp_path: Path, ckpt: Path) -> None:
    with pytest.raises(FerbenchError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "nothing")
    ckpt.write_bytes(b"garbage")
    with pytest.raises(FerbenchError, match="unreadable safetensors"):
        load_checkpoint(ckpt)


def test_cross_dataset_evaluation_drops_unshared_classes(tmp_path: Path, ckpt: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("happy", "sad", "contempt"):
        (tmp_path / "ds" / "test" / c).mkdir(parents=True)
        (tmp_path / "ds" / "train" / c).mkdir(parents=True)
        for i in range(4):
            for sp in ("test", "train"):
                Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(
                    tmp_path / "ds" / sp / c / f"{i}.jpg")
    m = evaluate_checkpoint(ckpt, f"folder:{tmp_path / 'ds'}", "test")
    assert m["dropped_classes"] == ["contempt"] and m["dropped_samples"] == 4
    assert m["classes"] == ["happy", "sad"] and m["n"] == 8
    assert "angry" in m["ignored_model_classes"]


def test_report_writes_markdown_html_and_figures(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.train.loop import train

    run = train("protocols/seed000.yaml", tmp_path / "r", progress=False, overrides=[
        f"data.root={tiny_root}", "model.name=fer_vgg_s", "preprocessing.channels=1", "train.epochs=2",
        "train.batch_size=32", "train.early_stopping=0"])
    md = write_report([run], tmp_path / "rep")
    text = md.read_text()
    assert "| r | fer_vgg_s | fer2013 | fer2013/PrivateTest | 70 |" in text
    assert (tmp_path / "rep" / "report.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "rep" / "r_cm_PrivateTest.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "r_curves.png").exists()
    ev = json.loads((run / "eval_PrivateTest.json").read_text())
    assert f"{ev['accuracy']:.4f}" in text


def test_study_recall_matrix_keeps_records_whose_class_keys_were_sorted_on_export() -> None:
    from ferbench.report.study import recall_matrix

    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

    def rec(name: str, order: list[str]) -> dict:
        pc = {c: {"recall": 0.1 * (i + 1)} for i, c in enumerate(order if order[0] == "a" else classes)}
        return {"classes": classes, "test_split": "PrivateTest", "config": {"model": {"name": name},
                "train": {"class_weights": "none"}}, "evals": {"PrivateTest": {"per_class": {c: pc[c] for c in order}}}}

    labels, m, cls = recall_matrix([rec("lenet5", classes), rec("alexnet", sorted(classes)),
                                    rec("other", ["a", "b"])])
    assert cls == classes and m.shape == (2, 7) and len(labels) == 2  # the JSONL-sorted record is a row too
    assert np.allclose(m[0], m[1]) and np.allclose(m[0], 0.1 * np.arange(1, 8))


def test_late_gain_tells_a_levelled_curve_from_a_rising_one() -> None:
    from ferbench.report.study import late_gain

    def hist(vals: list[float]) -> list[dict]:
        return [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(vals)]

    levelled = hist([0.3, 0.5, 0.6, 0.62, 0.63, 0.63, 0.629, 0.63, 0.628, 0.63])
    rising = hist([0.2, 0.25, 0.3, 0.35, 0.4, 0.42, 0.44, 0.45, 0.47, 0.49])
    assert late_gain(levelled) == pytest.approx(0.0)
    assert late_gain(rising) == pytest.approx(0.04)  # best 0.49 vs 0.45 before the last 2 of 10 epochs
    assert late_gain(hist([0.5, 0.6, 0.61, 0.6, 0.61, 0.6, 0.6, 0.6, 0.61, 0.61995])) == 0.01  # printed +1.0: rising
    assert late_gain(hist([0.1, 0.2])) is None and late_gain(None) is None
    assert late_gain(hist([0.3, 0.4, 0.5, 0.6, None])) is None  # type: ignore[list-item]
