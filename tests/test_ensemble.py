"""Ensembles: combination rules, greedy selection, saved ensembles loading like a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbench.data import load_dataset
from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError
from ferbench.evaluate.ensemble import combine, evaluate_ensemble, greedy_select, vote_shares
from ferbench.evaluate.predict import predict_probs
from ferbench.loader import load_checkpoint, load_ensemble, load_members, save_checkpoint, save_ensemble
from ferbench.models import create_model
from ferbench.models.ensemble import EnsembleModel


def test_sum_rule_is_mean_probability() -> None:
    p = np.array([[[0.6, 0.4]], [[0.1, 0.9]], [[0.5, 0.5]]])
    out = combine(p, "sum")
    assert np.allclose(out, [[0.4, 0.6]]) and out.argmax(1).tolist() == [1]


def test_vote_rule_majority_and_lowest_index_tie() -> None:
    # sample 0: votes 2, 0, 2 → class 2; sample 1: votes 1, 2 → tie → class 1 (with 2 members)
    p = np.array([[[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]],
                  [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]],
                  [[0.0, 0.1, 0.9], [0.3, 0.3, 0.4]]])
    shares = vote_shares(p[:2])
    assert shares[1].tolist() == [0.0, 0.5, 0.5] and shares.argmax(1).tolist()[1] == 1
    out = combine(p, "vote")
    assert np.allclose(out[0], [1 / 3, 0, 2 / 3]) and out.argmax(1).tolist() == [2, 2]
    with pytest.raises(FerbenchError, match="unknown ensemble rule 'max'"):
        combine(p, "max")


def test_greedy_selection_stops_when_no_gain() -> None:
    y = np.array([0, 1, 2, 0])
    good = np.eye(3)[[0, 1, 2, 1]] * 0.8 + 0.2 / 3   # 3/4 right
    other = np.eye(3)[[0, 1, 0, 0]] * 0.9 + 0.1 / 3  # 3/4 right, fails elsewhere
    bad = np.eye(3)[[1, 2, 0, 1]] * 0.9 + 0.1 / 3    # all wrong
    chosen, hist = greedy_select(np.stack([bad, good, other]), y, "sum")
    assert chosen[0] == 1 and 0 not in chosen
    assert hist == sorted(hist) and hist[-1] >= 0.75


def _member(tmp: Path, name: str, seed: int, pre: Preprocessing, in_chans: int) -> Path:
    torch.manual_seed(seed)
    model = create_model("lenet5", num_classes=3, in_chans=in_chans, input_size=pre.size).eval()
    arch = {"name": "lenet5", "num_classes": 3, "in_chans": in_chans, "input_size": pre.size, "kwargs": {},
            "method": None}
    run = tmp / name
    save_checkpoint(run / "best.safetensors", model, {"architecture": arch, "classes": ["angry", "happy", "sad"],
                                                      "preprocessing": pre.to_dict(), "protocol": {}})
    return run


def test_saved_ensemble_loads_like_a_checkpoint(tmp_path: Path) -> None:
    pre_a = Preprocessing(size=32, channels=1, mean=[0.5], std=[0.5], interpolation="bilinear")
    pre_b = Preprocessing(size=48, channels=3, mean=[0.0], std=[1.0], interpolation="bilinear")
    runs = [_member(tmp_path, "a", 0, pre_a, 1), _member(tmp_path, "b", 1, pre_b, 3)]
    path = tmp_path / "ens" / "e.json"
    save_ensemble(path, runs, "sum")
    doc = json.loads(path.read_text())
    assert doc["members"] == ["../a/best.safetensors", "../b/best.safetensors"]
    ens, meta = load_checkpoint(path)
    assert isinstance(ens, EnsembleModel) and meta["classes"] == ["angry", "happy", "sad"]
    images = torch.randint(0, 256, (5, 32, 32, 1), dtype=torch.uint8)
    got = predict_probs(ens, images, Preprocessing.from_dict(meta["preprocessing"]))
    members = [load_checkpoint(r) for r in runs]
    expected = np.stack([predict_probs(m, images, Preprocessing.from_dict(s["preprocessing"])) for m, s in members])
    assert np.allclose(got, expected.mean(0), atol=1e-5)
    save_ensemble(tmp_path / "v.json", runs, "vote")
    vote = load_ensemble(tmp_path / "v.json")
    got_v = predict_probs(vote, images, vote.preprocessing)
    assert np.array_equal(got_v.argmax(1), combine(expected, "vote").argmax(1))


def test_members_enter_the_ensemble_calibrated(tmp_path: Path) -> None:
    """A member's temperature and prior correction (its sidecar's calibration) apply inside the ensemble:
    the loaded ensemble and evaluate_ensemble's scores are the mean of the members' calibrated softmaxes."""
    from ferbench.evaluate.calibration import calibrated_probs
    from ferbench.evaluate.predict import predict_view_logits
    from ferbench.persist.checkpoint import update_sidecar

    pre = Preprocessing(size=32, channels=1, mean=[0.5], std=[0.5], interpolation="bilinear")
    runs = [_member(tmp_path, "a", 0, pre, 1), _member(tmp_path, "b", 1, pre, 1)]
    cal = {"temperature": 0.25, "prior_tau": 1.0, "log_prior": np.log([0.7, 0.2, 0.1]).tolist()}
    update_sidecar(runs[0] / "best.safetensors", calibration=cal)
    save_ensemble(tmp_path / "e.json", runs, "sum")
    ens = load_ensemble(tmp_path / "e.json")
    images = torch.randint(0, 256, (6, 32, 32, 1), dtype=torch.uint8)
    (ma, sa), (mb, _) = (load_checkpoint(r) for r in runs)
    za, zb = (predict_view_logits(m, images, pre) for m in (ma, mb))
    bias = -np.log([0.7, 0.2, 0.1])
    expected = (calibrated_probs(za, 0.25, bias) + calibrated_probs(zb)) / 2
    assert not np.allclose(expected, (calibrated_probs(za) + calibrated_probs(zb)) / 2, atol=1e-3)
    assert np.allclose(predict_probs(ens, images, ens.preprocessing), expected, atol=1e-5)
    assert ens.state_dict().keys() == EnsembleModel([ma, mb], [pre, pre], sa["classes"]).state_dict().keys()


def _member_with(tmp: Path, name: str, seed: int, classes: list[str]) -> Path:
    """A 32-px grey lenet5 checkpoint predicting ``classes``."""
    torch.manual_seed(seed)
    model = create_model("lenet5", num_classes=len(classes), in_chans=1, input_size=32).eval()
    pre = Preprocessing(size=32, channels=1, mean=[0.5], std=[0.5], interpolation="bilinear")
    arch = {"name": "lenet5", "num_classes": len(classes), "kwargs": {}, "method": None}
    save_checkpoint(tmp / name / "best.safetensors", model, {"architecture": arch, "classes": classes,
                                                            "preprocessing": pre.to_dict(), "protocol": {}})
    return tmp / name


def test_members_with_other_taxonomies_share_their_common_classes(tmp_path: Path) -> None:
    """A member with an extra class (FER+'s contempt) and another order joins on the shared classes: its
    softmax restricted to them and renormalised, in the first member's order."""
    from ferbench.evaluate.calibration import calibrated_probs
    from ferbench.evaluate.predict import predict_view_logits

    a = _member_with(tmp_path, "a", 0, ["angry", "happy", "sad"])
    b = _member_with(tmp_path, "b", 1, ["sad", "contempt", "angry", "happy"])
    save_ensemble(tmp_path / "e.json", [a, b], "sum")
    assert json.loads((tmp_path / "e.json").read_text())["classes"] == ["angry", "happy", "sad"]
    ens, meta = load_checkpoint(tmp_path / "e.json")
    assert meta["classes"] == ens.classes == ["angry", "happy", "sad"]
    images = torch.randint(0, 256, (6, 32, 32, 1), dtype=torch.uint8)
    pre = Preprocessing.from_dict(json.loads((a / "best.json").read_text())["preprocessing"])
    pa = calibrated_probs(predict_view_logits(load_checkpoint(a)[0], images, pre))
    pb = calibrated_probs(predict_view_logits(load_checkpoint(b)[0], images, pre))[:, [2, 3, 0]]
    pb /= pb.sum(1, keepdims=True)
    assert np.allclose(predict_probs(ens, images, ens.preprocessing), (pa + pb) / 2, atol=1e-5)
    # swapped: the ensemble takes the first member's order, contempt still dropped
    save_ensemble(tmp_path / "f.json", [b, a])
    assert load_ensemble(tmp_path / "f.json").classes == ["sad", "angry", "happy"]
    # the first member's extra class comes last: its first three outputs are the ensemble's
    d = _member_with(tmp_path, "d", 3, ["angry", "happy", "sad", "contempt"])
    save_ensemble(tmp_path / "g.json", [d, a])
    ens_g = load_ensemble(tmp_path / "g.json")
    pd = calibrated_probs(predict_view_logits(load_checkpoint(d)[0], images, pre))[:, :3]
    pd /= pd.sum(1, keepdims=True)
    assert ens_g.classes == ["angry", "happy", "sad"]
    assert np.allclose(predict_probs(ens_g, images, ens_g.preprocessing), (pd + pa) / 2, atol=1e-5)
    c = _member_with(tmp_path, "c", 2, ["neutral", "surprise"])
    with pytest.raises(FerbenchError, match=r"ensemble members share no class \(.*a.*angry, happy, sad; .*c.*"
                                            r"neutral, surprise\)"):
        load_members([a, c])


def test_ensemble_scores_the_dataset_classes_it_predicts(tmp_path: Path) -> None:
    """As `evaluate` does for one checkpoint: a dataset class no member predicts is dropped (its images too)."""
    from conftest import write_folder

    root = write_folder(tmp_path / "ds", ["angry", "happy", "sad", "surprise"], n=6)
    a = _member_with(tmp_path, "a", 0, ["angry", "happy", "sad"])
    b = _member_with(tmp_path, "b", 1, ["sad", "contempt", "angry", "happy"])
    ds = load_dataset(f"folder:{root}")
    split = next(s for s in ds.split_names if s != "train")
    n = int(np.isin(ds.split(split).labels.numpy(), [0, 1, 2]).sum())
    out = evaluate_ensemble([a, b], f"folder:{root}", split)
    assert out["ensemble"]["n"] == n and out["ensemble"]["dropped_classes"] == ["surprise"]
    assert out["ensemble"]["classes"] == ["angry", "happy", "sad"]


def test_cached_export_of_an_ensemble_follows_its_members_calibration(tmp_path: Path) -> None:
    """The ONNX cache key covers the members' calibration (an export bakes it in), not only the weights."""
    from ferbench.deploy.onnx_cache import weights_digest

    pre = Preprocessing(size=32, channels=1, mean=[0.5], std=[0.5], interpolation="bilinear")
    model, meta = load_checkpoint(_member(tmp_path, "a", 0, pre, 1))
    plain = EnsembleModel([model], [pre], meta["classes"])
    hot = EnsembleModel([model], [pre], meta["classes"], temperatures=[0.5])
    assert weights_digest(plain) == weights_digest(EnsembleModel([model], [pre], meta["classes"]))
    assert weights_digest(plain) != weights_digest(hot)


def test_ensemble_on_a_dataset_split(tiny_root: Path, tmp_path: Path) -> None:
    pre = Preprocessing(size=48, channels=1, mean=[0.0], std=[1.0])
    runs = [_member(tmp_path, f"m{i}", i, pre, 1) for i in range(3)]
    classes = load_dataset("fer2013", tiny_root).classes
    for r in runs:  # the fer2013 classes (reversed: labels are mapped by name), so members can be scored on it
        meta = json.loads((r / "best.json").read_text())
        meta["classes"] = classes[::-1]
        meta["architecture"]["num_classes"] = 7
        torch.manual_seed(len(str(r)))
        m = create_model("lenet5", num_classes=7, in_chans=1, input_size=48)
        save_checkpoint(r / "best.safetensors", m, {k: v for k, v in meta.items() if k != "format"})
    out = evaluate_ensemble(runs, "fer2013", "PrivateTest", rule="sum", select="greedy", val_split="PublicTest",
                            data_root=tiny_root, save=tmp_path / "sel.json")
    assert out["ensemble"]["n"] == 70 and len(out["members"]) == 3
    assert 1 <= len(out["selected"]) <= 3 and out["best_single"]["accuracy"] == max(
        m["accuracy"] for m in out["members"])
    assert len(json.loads((tmp_path / "sel.json").read_text())["members"]) == len(out["selected"])
    with pytest.raises(FerbenchError, match="must differ"):
        evaluate_ensemble(runs, "fer2013", "PublicTest", select="greedy", val_split="PublicTest", data_root=tiny_root)
    # a member's prior correction moves its decisions; evaluate_ensemble scores the member as calibrated
    from ferbench.evaluate.calibration import calibrated_probs
    from ferbench.evaluate.metrics import compute_metrics
    from ferbench.evaluate.predict import predict_view_logits
    from ferbench.persist.checkpoint import update_sidecar

    sub = load_dataset("fer2013", tiny_root).split("PrivateTest")
    m0, meta0 = load_checkpoint(runs[0])
    z = predict_view_logits(m0, sub.images, Preprocessing.from_dict(meta0["preprocessing"]))
    top = int(np.bincount(calibrated_probs(z).argmax(1), minlength=7).argmax())  # the untrained net's usual answer
    lp = np.full(7, np.log(1e-4))
    lp[top] = np.log(1 - 6e-4)  # a "prior" all on that class: the correction (bias ~9 on the others) moves decisions off it
    update_sidecar(runs[0], calibration={"temperature": 0.5, "prior_tau": 1.0, "log_prior": lp.tolist()})
    # scored in the dataset's class order, as `evaluate` scores a single checkpoint
    order = [meta0["classes"].index(c) for c in classes]
    cal, raw = (compute_metrics(sub.labels.numpy(), calibrated_probs(z, t, b)[:, order], classes)
                for t, b in ((0.5, -lp), (1.0, None)))
    got = evaluate_ensemble(runs[:1], "fer2013", "PrivateTest", data_root=tiny_root)["ensemble"]
    assert cal["confusion_matrix"] != raw["confusion_matrix"]  # the correction matters here
    assert got["confusion_matrix"] == cal["confusion_matrix"] and got["ece"] == pytest.approx(cal["ece"])


@pytest.mark.slow  # two CLI subprocesses (full imports)
def test_cli_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ferbench.cli.main", *args], capture_output=True, text=True,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, timeout=120)

    r = run("ensemble", str(tmp_path), "--data", "fer2013", "--split", "PrivateTest", "--rule", "max")
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown ensemble rule 'max'; choose one of sum, vote"
    r = run("kfold", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error: config") and "Traceback" not in r.stderr


def test_cross_taxonomy_ensemble_exports_to_onnx(tmp_path: Path) -> None:
    """The saved ensemble exports like a checkpoint; the export's source digest covers its members' weights."""
    from ferbench.deploy.export import export_model, source_digest

    a = _member_with(tmp_path, "a", 0, ["angry", "happy", "sad"])
    b = _member_with(tmp_path, "b", 1, ["sad", "contempt", "angry", "happy"])
    save_ensemble(tmp_path / "ens" / "e.json", [a, b])
    out, check = export_model(tmp_path / "ens" / "e.json", "onnx", tmp_path / "ens" / "e.onnx", data_root=tmp_path,
                              n_val=8, allow_synthetic=True, log=lambda s: None)
    assert out.is_file() and check["max_abs_dprob"] < 1e-4
    before = source_digest(tmp_path / "ens" / "e.json")
    assert check["source_digest"] == before  # the export's sidecar (here the ensemble JSON itself) does not count
    torch.manual_seed(5)
    m = create_model("lenet5", num_classes=4, in_chans=1, input_size=32)
    meta = json.loads((b / "best.json").read_text())
    save_checkpoint(b / "best.safetensors", m, {k: v for k, v in meta.items() if k != "format"})
    assert source_digest(tmp_path / "ens" / "e.json") != before
