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
    # two identical views (h-flip TTA of a symmetric face) fit the same temperature as one pass
    assert abs(fit_temperature(np.stack([true_logits * 3.0] * 2), y) - t) < 1e-6


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


# ---- prior correction (post-hoc logit adjustment) ----------------------------------------------------------

def test_calibrated_probs_averages_views_after_temperature_and_bias() -> None:
    from ferbench.evaluate.calibration import calibrated_probs

    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, 5, 4))
    b = np.array([0.0, 1.0, -1.0, 0.5])
    e = np.exp(z / 2.0 + b)
    want = (e / e.sum(-1, keepdims=True)).mean(0)
    assert np.allclose(calibrated_probs(z, 2.0, b), want, atol=1e-6)
    assert np.allclose(calibrated_probs(z[0], 1.0), np.exp(z[0]) / np.exp(z[0]).sum(1, keepdims=True), atol=1e-6)


def test_log_prior_is_finite_for_a_class_absent_from_training() -> None:
    from ferbench.evaluate.calibration import log_prior

    lp = log_prior(np.array([0, 0, 0, 1]), 3)
    assert np.isfinite(lp).all()
    assert np.allclose(np.exp(lp), [4 / 7, 2 / 7, 1 / 7])  # add-one smoothed frequencies


def test_prior_correction_recovers_the_rare_class_within_the_accuracy_budget() -> None:
    from ferbench.evaluate.calibration import calibrated_probs, fit_prior_tau, log_prior

    # scores of a model that learnt a 90/10 prior: class 1's evidence is real but outweighed by the prior
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    evidence = np.where(y == 1, 1.0, -1.0) + rng.normal(scale=1.2, size=len(y))
    lp = log_prior(y, 2)
    z = np.stack([np.zeros(len(y)), evidence], 1) + lp  # log-likelihood + log prior
    tau, table = fit_prior_tau(z, y, lp, max_accuracy_drop=0.05)
    rows = {r["tau"]: r for r in table}
    assert tau > 0 and rows[tau]["balanced_accuracy"] > rows[0.0]["balanced_accuracy"] + 0.1
    assert rows[tau]["accuracy"] >= rows[0.0]["accuracy"] - 0.05
    # the rule: no candidate within the budget has a higher balanced accuracy
    assert all(r["balanced_accuracy"] <= rows[tau]["balanced_accuracy"] for r in table
               if r["accuracy"] >= rows[0.0]["accuracy"] - 0.05)
    pred = calibrated_probs(z, 1.0, -tau * lp).argmax(1)
    assert (pred[y == 1] == 1).mean() > (z.argmax(1)[y == 1] == 1).mean()
    # no accuracy to spend: tau stays where accuracy does not fall
    tau0, table0 = fit_prior_tau(z, y, lp, max_accuracy_drop=0.0)
    assert {r["tau"]: r for r in table0}[tau0]["accuracy"] >= rows[0.0]["accuracy"]


def _skewed_root(root: Path) -> Path:
    """tiny FER2013 csv whose Training split is imbalanced (PublicTest / PrivateTest balanced)."""
    from conftest import write_fer_csv

    write_fer_csv(root / "fer2013" / "fer2013.csv", {"PublicTest": 70, "PrivateTest": 70})
    counts = [30, 2, 10, 60, 10, 10, 20]
    rows = (root / "fer2013" / "fer2013.csv").read_text().splitlines()
    pix = rows[1].split(",")[1]
    rows += [f"{c},{pix},Training" for c, n in enumerate(counts) for _ in range(n)]
    (root / "fer2013" / "fer2013.csv").write_text("\n".join(rows) + "\n")
    return root


def test_calibrate_stores_the_prior_correction_and_every_reader_applies_it(tmp_path: Path) -> None:
    import torch

    from ferbench.data import load_dataset
    from ferbench.deploy.recognizer import Recognizer
    from ferbench.evaluate.calibration import calibrated_probs, log_prior
    from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint
    from ferbench.evaluate.crossdata import evaluate_checkpoint
    from ferbench.loader import load_checkpoint, preprocessing_of
    from ferbench.persist import read_sidecar

    root = _skewed_root(tmp_path / "data")
    out = tmp_path / "cal" / "model.safetensors"
    cal = calibrate_checkpoint("default", data_root=root, prior_tau=0.7, out=out)
    meta = read_sidecar(out)
    assert meta["calibration"] == cal and cal["prior_tau"] == 0.7 and cal["split"] == "fer2013:PublicTest"
    assert read_sidecar("default").get("calibration") != cal  # the shipped sidecar is untouched (--out)
    # re-calibrating the calibrated copy gives the same block (its "uncalibrated" baseline is the model as trained)
    assert calibrate_checkpoint(out, data_root=root, prior_tau=0.7, out=tmp_path / "again.safetensors") == cal
    train_y = load_dataset("fer2013", root).split("Training").labels.numpy()
    assert np.allclose(cal["log_prior"], log_prior(train_y, 7))
    model, _ = load_checkpoint(out)
    test = load_dataset("fer2013", root).split("PrivateTest")
    x = preprocessing_of(meta)(test.images)
    with torch.no_grad():
        z = np.stack([model(x).numpy(), model(x.flip(-1)).numpy()])
    want = calibrated_probs(z, cal["temperature"], -0.7 * np.asarray(cal["log_prior"]))
    plain = calibrated_probs(z, cal["temperature"])
    assert (want.argmax(1) != plain.argmax(1)).any()  # the correction moves decisions on this data
    ev = evaluate_checkpoint(out, "fer2013", "PrivateTest", root, tta_hflip=True)
    assert ev["prior_tau"] == 0.7
    assert abs(ev["accuracy"] - float((want.argmax(1) == test.labels.numpy()).mean())) < 1e-9
    rec = Recognizer.load(out, detector="none", tta=True, backend="torch")
    got = rec.classify_arrays([im.numpy() for im in test.images[:8]])
    assert np.allclose(got, want[:8], atol=1e-5)


def test_calibrate_auto_keeps_tau_zero_when_the_training_prior_is_uniform(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint
    from ferbench.persist.checkpoint import logit_bias_of

    cal = calibrate_checkpoint("default", data_root=tiny_root, out=tmp_path / "m.safetensors")
    assert cal["prior_tau"] == 0.0 and len(cal["tau_search"]) == 21  # a constant bias moves no decision
    assert logit_bias_of({"calibration": cal}) is None


def test_calibrate_cli_errors_are_one_line(tiny_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferbench.cli.main import app
    from ferbench.errors import FerbenchError

    r = CliRunner().invoke(app, ["calibrate", "default", "--prior-tau", "lots", "--data-root", str(tiny_root),
                                 "--out", str(tmp_path / "m.safetensors")])
    assert isinstance(r.exception, FerbenchError) and "--prior-tau must be 'auto' or a number" in str(r.exception)
    r = CliRunner().invoke(app, ["calibrate", "default", "--data-root", str(tiny_root), "--out", str(tmp_path / "m.pt")])
    assert isinstance(r.exception, FerbenchError) and "give a .safetensors path" in str(r.exception)
    r = CliRunner().invoke(app, ["calibrate", "default", "--data", "ckplus", "--data-root", str(tiny_root)])
    assert isinstance(r.exception, FerbenchError)
    out = tmp_path / "ok" / "m.safetensors"
    r = CliRunner().invoke(app, ["calibrate", "default", "--data-root", str(tiny_root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "fer2013:PublicTest: temperature" in r.output and f"wrote the calibration into {out.with_suffix('.json')}" in r.output
    assert out.is_file() and "calibration" in json.loads(out.with_suffix(".json").read_text())


def test_evaluate_json_never_overwrites_the_checkpoint_sidecar(tiny_root: Path, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from ferbench.cli.main import app
    from ferbench.deploy.recognizer import WEIGHTS_DIR
    from ferbench.errors import FerbenchError

    for ext in (".safetensors", ".json"):
        shutil.copyfile(WEIGHTS_DIR / f"default{ext}", tmp_path / f"m{ext}")
    before = (tmp_path / "m.json").read_text()
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m.safetensors"), "--data", "fer2013", "--split",
                                 "PrivateTest", "--json", str(tmp_path / "m.json"), "--data-root", str(tiny_root)])
    assert isinstance(r.exception, FerbenchError) and "the checkpoint's own sidecar" in str(r.exception)
    assert (tmp_path / "m.json").read_text() == before


def test_trainer_fits_the_prior_correction_when_the_config_asks(tmp_path: Path) -> None:
    from ferbench.evaluate.calibration import log_prior
    from ferbench.evaluate.crossdata import evaluate_checkpoint
    from ferbench.persist import read_sidecar
    from ferbench.train.loop import train

    root = _skewed_root(tmp_path / "data")
    run = train({"model": {"name": "lenet5"}, "data": {"root": str(root)},
                 "preprocessing": {"size": 48, "channels": 1},
                 "train": {"epochs": 1, "batch_size": 32, "augment": "none", "precision": "fp32"},
                 "eval": {"prior_tau": 0.5}}, out_dir=tmp_path / "run", progress=False, log=lambda s: None)
    cal = read_sidecar(run)["calibration"]
    assert cal["prior_tau"] == 0.5 and cal["split"] == "PublicTest"
    assert np.allclose(cal["log_prior"], log_prior(np.repeat(np.arange(7), [30, 2, 10, 60, 10, 10, 20]), 7))
    ev = json.loads((run / "eval_PrivateTest.json").read_text())
    assert ev["prior_tau"] == 0.5
    again = evaluate_checkpoint(run, "fer2013", "PrivateTest", root)
    assert again["accuracy"] == ev["accuracy"] and abs(again["ece"] - ev["ece"]) < 1e-6
