"""Temperature scaling: fitted on validation, stored in the sidecar, applied by the readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ferbench.evaluate.calibration import fit_temperature
from ferbench.evaluate.metrics import expected_calibration_error


def test_recovers_the_temperature_of_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    n, c = 4000, 5
    true_logits = rng.normal(size=(n, c)) * 2.0
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # three times too confident
    assert abs(t - 3.0) < 0.3
    cal = np.exp(true_logits * 3.0 / t)
    cal /= cal.sum(1, keepdims=True)
    raw = np.exp(true_logits * 3.0)
    raw /= raw.sum(1, keepdims=True)
    assert expected_calibration_error(y, cal) < expected_calibration_error(y, raw) / 2


def test_trainer_stores_and_applies_the_temperature(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.evaluate.crossdata import evaluate_checkpoint
    from ferbench.persist import read_sidecar
    from ferbench.train.loop import train

    run = train({"model": {"name": "lenet5"}, "data": {"root": str(tiny_root)},
                 "preprocessing": {"size": 48, "channels": 1},
                 "train": {"epochs": 2, "batch_size": 32, "augment": "none", "precision": "fp32"},
                 "eval": {"calibrate": True}}, out_dir=tmp_path / "run", progress=False, log=lambda s: None)
    meta = read_sidecar(run)
    t = meta["calibration"]["temperature"]
    assert meta["calibration"]["split"] == "PublicTest" and t > 0 and t != 1.0
    ev = json.loads((run / "eval_PrivateTest.json").read_text())
    assert ev["temperature"] == t
    again = evaluate_checkpoint(run, "fer2013", "PrivateTest", tiny_root)
    assert again["accuracy"] == ev["accuracy"]
    assert abs(again["ece"] - ev["ece"]) < 1e-6  # the same temperature applied by the reader
    assert meta["inference"] == {"tta_hflip": False}  # eval.tta_hflip (off here): how Recognizer will run it


def test_recognizer_applies_temperature_and_hflip_tta(tmp_path: Path) -> None:
    import torch

    from ferbench.data.preprocess import Preprocessing
    from ferbench.deploy.recognizer import Recognizer
    from ferbench.loader import load_checkpoint, save_checkpoint
    from ferbench.persist import read_sidecar

    model, meta = load_checkpoint("default")
    meta = {k: v for k, v in read_sidecar("default").items() if k not in ("weights_id", "format")}
    save_checkpoint(tmp_path / "cal.safetensors", model, {**meta, "calibration": {"temperature": 2.0}})
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (48, 48, 1), dtype=np.uint8)
    x = Preprocessing.from_dict(meta["preprocessing"])(torch.from_numpy(face[None]))
    with torch.no_grad():
        z, zf = model(x).float(), model(x.flip(-1)).float()
    plain = Recognizer.load(tmp_path / "cal.safetensors", detector="none", tta=False).classify(face)
    tta = Recognizer.load(tmp_path / "cal.safetensors", detector="none", tta=True).classify(face)
    want = torch.softmax(z / 2.0, 1)[0].numpy()
    want_tta = ((torch.softmax(z / 2.0, 1) + torch.softmax(zf / 2.0, 1)) / 2)[0].numpy()
    assert np.allclose(list(plain.probs.values()), want, atol=1e-5)
    assert np.allclose(list(tta.probs.values()), want_tta, atol=1e-5)
