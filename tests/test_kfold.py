"""Seed-001 k-fold protocol: fold plan, summary statistics, resumable folds, trainer integration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_folder
from sklearn.model_selection import StratifiedKFold, train_test_split

from ferbench.errors import ConfigError, FerbenchError
from ferbench.sweep.kfold import kfold_indices, run_kfold, summarize


def test_random_folds_follow_seed001_recipe() -> None:
    labels = np.repeat(np.arange(4), 25)
    folds = kfold_indices(labels, 5)
    ref = list(StratifiedKFold(5, shuffle=True, random_state=10).split(np.zeros(100), labels))
    for f, (tr, held) in zip(folds, ref, strict=True):
        assert f["train"] == sorted(tr.tolist())
        val, test = train_test_split(held, test_size=0.5, random_state=1)
        assert f["val"] == sorted(val.tolist()) and f["test"] == sorted(test.tolist())
        assert len(f["train"]) == 80 and len(f["val"]) == 10 and len(f["test"]) == 10
    assert sorted(i for f in folds for i in f["val"] + f["test"]) == list(range(100))


def test_subject_independent_folds_keep_subjects_whole() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"S{i:03d}" for i in range(30)], 4)
    labels = rng.integers(0, 3, len(groups))
    for f in kfold_indices(labels, 5, groups=groups):
        parts = [set(groups[f[k]]) for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(f["train"]) + len(f["val"]) + len(f["test"]) == len(labels)


def test_summary_mean_std_and_confusion_average() -> None:
    folds = [{"accuracy": 0.8, "balanced_accuracy": 0.6, "f1_hm": 0.7, "classes": ["a", "b"],
              "confusion_matrix_normalized": [[1.0, 0.0], [0.5, 0.5]]},
             {"accuracy": 0.6, "balanced_accuracy": 0.4, "f1_hm": 0.5, "classes": ["a", "b"],
              "confusion_matrix_normalized": [[0.0, 1.0], [0.5, 0.5]]}]
    s = summarize(folds)
    assert s["accuracy"]["mean"] == pytest.approx(0.7) and s["accuracy"]["std"] == pytest.approx(0.1)
    assert s["confusion_matrix_normalized_mean"] == [[0.5, 0.5], [0.5, 0.5]]
    assert "auc_weighted" not in s


def _fake_train(calls: list[int]):  # noqa: ANN202
    def train(cfg: dict, out_dir: Path, resume: bool = False, progress: bool = True) -> Path:
        ix = cfg["data"]["indices"]
        calls.append(len(calls))
        out_dir.mkdir(parents=True, exist_ok=True)
        acc = len(ix["test"]) / 100
        (out_dir / "eval_test.json").write_text(json.dumps({
            "accuracy": acc, "balanced_accuracy": acc, "precision_weighted": acc, "recall_weighted": acc,
            "f1_hm": acc, "auc_weighted": 0.9, "classes": ["angry", "happy", "sad"],
            "confusion_matrix_normalized": np.eye(3).tolist()}))
        (out_dir / "best.json").write_text(json.dumps({"epoch": 1}))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during fold 2
        return out_dir
    return train


def test_kfold_is_resumable_per_fold(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "faces", ["angry", "happy", "sad"], n=10, size=16)
    cfg = {"name": "k", "data": {"name": f"folder:{root}"}, "model": {"name": "resnet18"}}
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        run_kfold(cfg, folds=3, out_dir=tmp_path / "kf", subject_independent=False, train_fn=_fake_train(calls),
                  log=lambda s: None)
    assert (tmp_path / "kf" / "fold0" / "result.json").exists()
    assert not (tmp_path / "kf" / "fold1" / "result.json").exists()
    calls2: list[int] = [99, 99]  # the fake trainer raises only on its second call
    s = run_kfold(cfg, folds=3, out_dir=tmp_path / "kf", subject_independent=False, train_fn=_fake_train(calls2),
                  log=lambda s: None)
    assert len(calls2) == 2 + 2  # folds 1 and 2 only
    assert s["folds"] == 3 and s["mode"] == "random"
    assert s["accuracy"]["mean"] == pytest.approx(np.mean([0.05, 0.05, 0.05]))
    assert (tmp_path / "kf" / "summary.md").read_text().count("±") >= 5
    with pytest.raises(FerbenchError, match="different dataset, config or fold plan"):
        run_kfold(cfg, folds=4, out_dir=tmp_path / "kf", subject_independent=False, train_fn=_fake_train([]))


def test_kfold_subject_mode_needs_subjects(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "faces", ["angry", "happy"], n=5, size=16)
    cfg = {"name": "k", "data": {"name": f"folder:{root}"}}
    with pytest.raises(ConfigError, match="no subject ids"):
        run_kfold(cfg, folds=2, out_dir=tmp_path / "kf", subject_independent=True, train_fn=_fake_train([]))


@pytest.mark.slow  # trains 2 folds of a ResNet-18 (≈20 s on a loaded CPU)
def test_kfold_with_the_real_trainer(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "faces", ["angry", "happy", "sad"], n=10, size=32)
    cfg = {"name": "k", "data": {"name": f"folder:{root}"}, "model": {"name": "resnet18"},
           "method": {"name": "scn"},
           "preprocessing": {"size": 32, "channels": 3, "mean": [0.0], "std": [1.0]},
           "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "augment": "none", "early_stopping": 0,
                     "scheduler": "none", "drop_last": False, "channels_last": False}}
    s = run_kfold(cfg, folds=2, out_dir=tmp_path / "kf", subject_independent=False, progress=False,
                  log=lambda s: None)
    assert s["folds"] == 2 and 0.0 <= s["accuracy"]["mean"] <= 1.0
    res = json.loads((tmp_path / "kf" / "fold1" / "result.json").read_text())
    assert res["n"] == 8 and res["recall_weighted"] == pytest.approx(res["accuracy"])
    assert len(s["confusion_matrix_normalized_mean"]) == 3
