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
    cal = calibrate_checkpoint("default", data_root=root, prior_tau=0.7, out=out, tta_gate="off")
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


# ---- gated h-flip TTA ---------------------------------------------------------------------------------------

def _gate_scores() -> tuple[np.ndarray, np.ndarray]:
    """(2, 300, 3) scores: 100 faces the first view gets right at confidence ~0.95; 100 it gets wrong at ~0.58
    and 100 wrong at ~0.48, each put right by the mirror (pair average)."""
    y = np.repeat([0, 1, 2], 100)
    z = np.zeros((2, 300, 3))
    z[:, :100, 0] = 3.7  # softmax([3.7, 0, 0])[0] ≈ 0.95, both views
    wrong = (y[100:] + 1) % 3
    for k, (lo, hi) in enumerate([(100, 200), (200, 300)]):
        first = 1.0 if k == 0 else 0.6  # softmax([1.0, 0, 0]) ≈ 0.58, softmax([0.6, 0, 0]) ≈ 0.48
        z[0, np.arange(lo, hi), wrong[lo - 100:hi - 100]] = first
        z[1, np.arange(lo, hi), y[lo:hi]] = 4.0
    return z, y


def test_fit_tta_gate_picks_the_lowest_gate_that_costs_nothing() -> None:
    from ferbench.evaluate.calibration import calibrated_probs, fit_tta_gate, gated_pair_probs, needs_mirror

    z, y = _gate_scores()
    first = calibrated_probs(z[0])
    assert 0.57 < first[150].max() < 0.59 and 0.47 < first[250].max() < 0.49
    gate, table = fit_tta_gate(z, y)
    # 0.50 and 0.55 leave the ~0.58 faces wrong; from 0.60 every face the pair fixes gets the mirror
    assert gate == 0.6
    rows = {r["gate"]: r for r in table}
    assert rows[None]["accuracy"] == 1.0 and rows[None]["mirrored"] == 1.0
    assert rows[0.55]["accuracy"] < 1.0 and rows[0.6]["mirrored"] == 2 / 3
    p = gated_pair_probs(z, gate=gate)
    assert np.allclose(p[:100], first[:100]) and np.allclose(p[100:], calibrated_probs(z)[100:])
    assert np.allclose(gated_pair_probs(z, gate=None), calibrated_probs(z))
    assert needs_mirror(first, None).all() and needs_mirror(first, 0.5).sum() == 100
    # no gate can match the pair (the first view is wrong at ~0.965, above every candidate): None
    z2 = z.copy()
    z2[0, 100:200] *= 4
    z2[1, 100:200] *= 2.5
    assert (calibrated_probs(z2).argmax(1) == y).all()
    assert fit_tta_gate(z2, y)[0] is None


def test_recognizer_mirrors_only_the_unsure_faces(tmp_path: Path) -> None:
    import torch

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.evaluate.calibration import calibrated_probs, gated_pair_probs
    from ferbench.loader import load_checkpoint, save_checkpoint
    from ferbench.persist import read_sidecar

    model, _ = load_checkpoint("default")
    meta = {k: v for k, v in read_sidecar("default").items() if k not in ("weights_id", "format")}
    meta["calibration"] = {"temperature": 1.5}
    save_checkpoint(tmp_path / "g.safetensors", model, meta)
    faces = [np.random.default_rng(i).integers(0, 255, (48, 48, 1), dtype=np.uint8) for i in range(16)]
    rec = Recognizer.load(tmp_path / "g.safetensors", detector="none", tta=True, backend="torch")
    x = rec._inputs(faces)
    with torch.no_grad():
        z = np.stack([model(x).numpy(), model(x.flip(-1)).numpy()])
    first = calibrated_probs(z[0], 1.5)
    gate = float(np.median(first.max(1)))  # half the faces are at least this sure
    rec = Recognizer.load(tmp_path / "g.safetensors", detector="none", tta=True, backend="torch", tta_gate=gate)
    sizes: list[int] = []
    handle = rec.classifier.model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    got = rec.classify_arrays(faces)
    handle.remove()
    assert np.allclose(got, gated_pair_probs(z, 1.5, None, gate), atol=1e-5)
    assert sizes == [16, int((first.max(1) < gate).sum())] and 0 < sizes[1] < 16
    # the sidecar's gate is the default; None runs the pair for every face in one forward
    save_checkpoint(tmp_path / "s.safetensors", model, {**meta, "calibration": {"temperature": 1.5, "tta_gate": gate}})
    assert Recognizer.load(tmp_path / "s.safetensors", detector="none", tta=True, backend="torch").classifier.tta_gate == gate
    off = Recognizer.load(tmp_path / "s.safetensors", detector="none", tta=True, backend="torch", tta_gate=None)
    assert np.allclose(off.classify_arrays(faces), calibrated_probs(z, 1.5), atol=1e-5)


def test_calibrate_fits_the_tta_gate_and_refuses_a_bad_one(tiny_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferbench.cli.main import app
    from ferbench.errors import FerbenchError
    from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint
    from ferbench.persist import read_sidecar

    out = tmp_path / "m.safetensors"
    cal = calibrate_checkpoint("default", data_root=tiny_root, out=out, tta_hflip=True, tta_gate="auto")
    assert len(cal["tta_gate_search"]) == 11 and cal["tta_gate_search"][-1]["gate"] is None
    chosen = cal.get("tta_gate")
    if chosen is not None:  # the rule: no lower candidate matches the pair on the split
        full = cal["tta_gate_search"][-1]
        assert all(r["accuracy"] < full["accuracy"] or r["balanced_accuracy"] < full["balanced_accuracy"]
                   for r in cal["tta_gate_search"][:-1] if r["gate"] < chosen)
    assert read_sidecar(out)["calibration"].get("tta_gate") == chosen
    fixed = calibrate_checkpoint("default", data_root=tiny_root, out=out, tta_hflip=True, tta_gate=0.8)
    assert fixed["tta_gate"] == 0.8 and read_sidecar(out)["calibration"]["tta_gate"] == 0.8
    assert "tta_gate" not in calibrate_checkpoint(out, data_root=tiny_root, tta_hflip=True, tta_gate="off")
    for bad, msg in (("lots", "--tta-gate must be 'auto', 'off' or a number"), ("1.5", "--tta-gate must lie in (0, 1]")):
        r = CliRunner().invoke(app, ["calibrate", "default", "--tta-gate", bad, "--data-root", str(tiny_root),
                                     "--out", str(tmp_path / "x.safetensors")])
        assert isinstance(r.exception, FerbenchError) and msg in str(r.exception)
    r = CliRunner().invoke(app, ["calibrate", "default", "--no-tta", "--tta-gate", "0.7", "--data-root",
                                 str(tiny_root), "--out", str(tmp_path / "y.safetensors")])
    assert isinstance(r.exception, FerbenchError) and "a TTA gate needs h-flip TTA" in str(r.exception)


def test_recognizer_info_reports_the_tta_it_runs() -> None:
    import pytest

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.errors import FerbenchError
    from ferbench.persist import read_sidecar

    gate = read_sidecar("default")["calibration"]["tta_gate"]
    info = Recognizer.load("default", detector="none").info()
    assert (info["tta_hflip"], info["tta_gate"]) == (True, gate)
    assert Recognizer.load("default", detector="none", tta_gate=None).info()["tta_gate"] is None
    assert Recognizer.load("default", detector="none", tta=False).info()["tta_gate"] is None
    with pytest.raises(FerbenchError, match=r"tta_gate must be 'sidecar', None or a number in \(0, 1\], got 'high'"):
        Recognizer.load("default", detector="none", tta_gate="high")
