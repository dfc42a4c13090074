import json
from pathlib import Path

import pytest
import torch

from ferbench.config import load_config
from ferbench.errors import ConfigError, FerbenchError
from ferbench.loader import load_checkpoint
from ferbench.train.loop import train

TINY = [
    "model.name=fer_vgg_s", "preprocessing.channels=1", "preprocessing.mean=[0.5]", "preprocessing.std=[0.5]",
    "train.batch_size=16", "train.lr=3e-3", "train.augment=light", "train.early_stopping=0",
    "train.scheduler=plateau", "eval.batch_size=64",
]


def _sets(root: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", *TINY, *extra]


def _crash_run(monkeypatch: pytest.MonkeyPatch, run_dir: Path, sets: list[str], at_batch: int) -> None:
    """Train until the ``at_batch``-th augmented batch, then die there (like kill -9)."""
    import ferbench.train.loop as loop

    real_aug, calls = loop.augment_batch, {"n": 0}

    def crashing(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == at_batch:
            raise KeyboardInterrupt
        return real_aug(*a, **k)

    monkeypatch.setattr(loop, "augment_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        train("protocols/seed000.yaml", run_dir, overrides=sets, progress=False)
    monkeypatch.setattr(loop, "augment_batch", real_aug)


def test_train_writes_run_directory(tiny_root: Path, tmp_path: Path) -> None:
    run = train("protocols/seed000.yaml", tmp_path / "run", overrides=_sets(tiny_root, "train.epochs=5"),
                progress=False)
    for f in ("config.yaml", "metrics.jsonl", "best.safetensors", "best.json", "last.json",
              "eval_PublicTest.json", "eval_PrivateTest.json"):
        assert (run / f).exists(), f
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5]
    side = json.loads((run / "best.json").read_text())
    assert side["architecture"]["name"] == "fer_vgg_s" and side["classes"][3] == "happy"
    assert side["preprocessing"]["size"] == 48 and "PrivateTest_accuracy" in side["metrics"]
    model, meta = load_checkpoint(run)
    best = max(h["val_accuracy"] for h in hist)
    assert not model.training and meta["epoch"] == next(h["epoch"] for h in hist if h["val_accuracy"] == best)
    ev = json.loads((run / "eval_PrivateTest.json").read_text())
    assert ev["n"] == 70 and 0 <= ev["accuracy"] <= 1
    # a learnable toy problem: a few epochs must beat chance (1/7) clearly
    assert ev["accuracy"] > 0.3


@pytest.mark.parametrize("precision, model", [("fp32", "fer_vgg_s"), ("bf16", "lenet5")])
def test_resume_after_crash_equals_uninterrupted(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 precision: str, model: str) -> None:
    # bf16 uses lenet5: on CPUs without native bf16 the fer_vgg_s convolutions take ~100 s in bf16
    sets = _sets(tiny_root, "train.epochs=4", f"train.precision={precision}", f"model.name={model}")
    full = train("protocols/seed000.yaml", tmp_path / "full", overrides=sets, progress=False)
    assert json.loads((full / "last.json").read_text())["precision"] == precision

    # dies in the middle of epoch 3, like kill -9
    _crash_run(monkeypatch, tmp_path / "crashed", sets, 2 * (140 // 16) + 2)
    partial = [json.loads(x) for x in (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in partial] == [1, 2]
    with pytest.raises(FerbenchError, match="--resume"):
        train("protocols/seed000.yaml", tmp_path / "crashed", overrides=sets, progress=False)
    resumed = train("protocols/seed000.yaml", tmp_path / "crashed", overrides=sets, resume=True, progress=False)
    a = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in b] == [1, 2, 3, 4]  # nothing lost, nothing counted twice
    for x, y in zip(a, b, strict=True):
        assert x["val_loss"] == pytest.approx(y["val_loss"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
    ea = json.loads((full / "eval_PrivateTest.json").read_text())
    eb = json.loads((resumed / "eval_PrivateTest.json").read_text())
    assert ea["accuracy"] == eb["accuracy"] and ea["confusion_matrix"] == eb["confusion_matrix"]


def test_two_phase_freezes_then_unfreezes(tiny_root: Path, tmp_path: Path) -> None:
    run = train("protocols/seed000.yaml", tmp_path / "tp", progress=False, overrides=_sets(
        tiny_root, "train.epochs=3", "model.policy=two-phase", "train.phase1_epochs=1", "train.phase2_lr=1e-3",
        "train.class_weights=conservative"))
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["phase"] for h in hist] == [1, 2, 2]
    assert hist[1]["lr"] == pytest.approx(1e-3)


def test_policies_select_parameters() -> None:
    from ferbench.models import create_model
    from ferbench.train.policies import apply_policy

    m = create_model("resnet18", num_classes=7, in_chans=1)
    total = sum(p.numel() for p in m.parameters())
    assert apply_policy(m, "full") == total
    assert apply_policy(m, "head-only") == 512 * 7 + 7
    last = apply_policy(m, "last-stage")
    assert 512 * 7 + 7 < last < total
    assert all(p.requires_grad == ("layer4" in n or ".fc." in n) for n, p in m.named_parameters())


def test_config_overrides_and_errors() -> None:
    cfg = load_config("protocols/seed000.yaml", ["train.lr=0.01", "model.kwargs.drop_rate=0.1"])
    assert cfg["train"]["lr"] == 0.01 and cfg["train"]["eps"] == 1e-7
    assert cfg["model"]["kwargs"] == {"drop_rate": 0.1}
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config("protocols/seed000.yaml", ["train.lrr=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")


def test_unknown_model_name_suggests() -> None:
    from ferbench.models import create_model

    with pytest.raises(FerbenchError, match="unknown model 'resnet81'.*resnet18"):
        create_model("resnet81")


def test_augmentation_is_batched_and_bounded() -> None:
    from ferbench.train.augment import AugmentConfig, augment_batch

    x = torch.rand(16, 1, 48, 48)
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x.clone(), AugmentConfig.preset("keras"), g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    same = augment_batch(x.clone(), AugmentConfig.preset("none"), g)
    assert torch.equal(same, x)


def test_ema_model_is_usable_early(tiny_root: Path, tmp_path: Path) -> None:
    """EMA (decay 0.998) warms up: after 8 short epochs (64 steps) the averaged model is as good as the raw one.

    Without warm-up the average keeps most of the random init (and its BatchNorm statistics) for thousands of
    steps and predicts a single class.
    """
    run = train("protocols/seed000.yaml", tmp_path / "ema", progress=False,
                overrides=_sets(tiny_root, "train.epochs=8", "train.ema=0.998"))
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ev = json.loads((run / "eval_PrivateTest.json").read_text())
    assert ev["accuracy"] > 0.3 and max(h["val_accuracy"] for h in hist) > 0.3
    pred_classes = [c for c, v in ev["per_class"].items() if v["recall"] > 0]
    assert len(pred_classes) > 1


def test_steps_in_epoch_never_leaves_a_single_sample_batch() -> None:
    from ferbench.train.loop import steps_in_epoch

    assert steps_in_epoch(784, 16, drop_last=False) == 49      # exact
    assert steps_in_epoch(790, 16, drop_last=False) == 50      # trailing batch of 6 is trained on
    assert steps_in_epoch(785, 16, drop_last=False) == 49      # trailing batch of 1 would break BatchNorm
    assert steps_in_epoch(785, 16, drop_last=True) == 49
    assert steps_in_epoch(10, 16, drop_last=True) == 1         # the only (partial) batch is kept
    assert steps_in_epoch(1, 16, drop_last=False) == 1


def test_batchnorm_after_pooling_trains_when_last_batch_would_be_one(tiny_root: Path, tmp_path: Path) -> None:
    # 140 training rows, batch 139: without the rule the second step gets one sample and BatchNorm1d raises
    # "Expected more than 1 value per channel when training" (seen on a random CK+ fold of ESR-4).
    run = train("protocols/seed000.yaml", tmp_path / "run",
                overrides=_sets(tiny_root, "train.epochs=1", "train.batch_size=139", "train.drop_last=false",
                                "model.name=esr_4_lab", "preprocessing.size=48"), progress=False)
    assert (run / "best.safetensors").exists()


def test_resume_can_switch_on_the_fused_optimizer(tiny_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # an execution detail: a run killed while on torch's default Adam continues with the fused kernel (the
    # saved optimizer state would otherwise bring back the old kernel flags), in the same run dir
    import ferbench.train.loop as loop

    sets = _sets(tiny_root, "train.epochs=2", "model.name=lenet5", "train.optimizer=adam")
    _crash_run(monkeypatch, tmp_path / "r", sets, 140 // 16 + 2)  # dies early in epoch 2
    kernels: list[object] = []
    real = loop._restore

    def spy(r, tensors, meta):  # noqa: ANN001, ANN202
        out = real(r, tensors, meta)
        kernels.extend(g["fused"] for g in r.opt.param_groups)
        return out

    monkeypatch.setattr(loop, "_restore", spy)
    run = train("protocols/seed000.yaml", tmp_path / "r", overrides=[*sets, "train.fused_optimizer=true"],
                resume=True, progress=False)
    assert kernels and all(k is True for k in kernels)
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2]


def test_cross_datasets_are_scored_beside_the_test_split(tiny_root: Path, tmp_path: Path) -> None:
    from conftest import write_folder

    from ferbench.config import config_hash

    other = tmp_path / "other"
    for split in ("train", "test"):
        write_folder(other / split, ["happy", "sad", "contempt"], n=3, size=48)
    cross = f'eval.cross=[{{data: "folder:{other}", split: test}}, {{data: ckplus, split: test}}]'
    lines: list[str] = []
    run = train("protocols/seed000.yaml", tmp_path / "run", overrides=_sets(tiny_root, "train.epochs=2", cross),
                progress=False, log=lines.append)
    key = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"folder:{other}_test")
    ev = json.loads((run / f"eval_{key}.json").read_text())
    # contempt is not a FER2013 class: its 3 test images are dropped, the 6 others scored in happy/sad
    assert ev["n"] == 6 and ev["dropped_classes"] == ["contempt"] and ev["classes"] == ["happy", "sad"]
    side = json.loads((run / "best.json").read_text())
    assert side["metrics"][f"{key}_accuracy"] == ev["accuracy"] and "PrivateTest_accuracy" in side["metrics"]
    assert any(s.startswith("fer2013/PrivateTest (in-domain, n=70): accuracy") for s in lines), lines
    assert any(s.startswith(f"folder:{other}/test (cross-domain, 2 shared classes, n=6): accuracy") for s in lines)
    # CK+48 is not under this data root: one line, and the run is still complete
    assert any(s.startswith("ckplus/test: not scored (") for s in lines) and (run / "eval_PrivateTest.json").exists()
    # a finished run re-run with another eval.cross scores what the new command asks for (nothing is trained)
    lines.clear()
    train("protocols/seed000.yaml", run, overrides=_sets(tiny_root, "train.epochs=2"), resume=True, progress=False,
          log=lines.append)
    assert not any("cross-domain" in s or "not scored" in s for s in lines), lines
    # which datasets are scored afterwards changes no weight: same run name, same sweep key, resumable
    base = load_config("protocols/seed000.yaml", _sets(tiny_root))
    assert config_hash(load_config("protocols/seed000.yaml", _sets(tiny_root, cross))) == config_hash(base)


def test_misspelt_cross_dataset_fails_before_training(tiny_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FerbenchError, match=r"^unknown dataset 'ckplsu'; choose one of"):
        train("protocols/seed000.yaml", tmp_path / "run",
              overrides=_sets(tiny_root, "eval.cross=[{data: ckplsu}]"), progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_time_limited_run_trains_on_only_with_a_larger_limit(tiny_root: Path, tmp_path: Path) -> None:
    # a limit this small stops after the first epoch (the next would not fit)
    sets = _sets(tiny_root, "train.epochs=3", "train.time_limit_min=0.0001")
    run = train("protocols/seed000.yaml", tmp_path / "run", overrides=sets, progress=False)

    def epochs() -> list[int]:
        return [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]

    assert epochs() == [1] and json.loads((run / "last.json").read_text())["stopped"].startswith("time limit")
    lines: list[str] = []  # the same command again: the limit is the run's total, so it stays finished
    train("protocols/seed000.yaml", run, overrides=sets, resume=True, progress=False, log=lines.append)
    assert epochs() == [1] and any("larger --set train.time_limit_min" in s for s in lines), lines
    lines.clear()  # a larger limit (here: none) trains on from epoch 2, nothing counted twice
    train("protocols/seed000.yaml", run, overrides=_sets(tiny_root, "train.epochs=3"), resume=True, progress=False,
          log=lines.append)
    assert epochs() == [1, 2, 3] and any(s.startswith(f"resuming {run} after epoch 1 (time limit") for s in lines)
    assert json.loads((run / "last.json").read_text())["stopped"] == "reached 3 epochs"
    assert "  time_limit_min: null\n" in (run / "config.yaml").read_text()  # the run folder records the new limit


def test_fer2013_split_names_follow_another_dataset(tmp_path: Path) -> None:
    """A FER2013 protocol (``Training``/``PublicTest``/``PrivateTest``) run on a folder dataset trains on its
    ``train``/``val``/``test``; the run's config says so; a cross entry naming the run's own test split is
    not scored twice. Names no dataset uses for the role stay as written (and fail with the split list)."""
    import yaml
    from conftest import write_folder

    from ferbench.train.build import fill_split_defaults

    root = write_folder(tmp_path / "faces", ["angry", "happy", "sad"], n=10, size=48)
    name = f"folder:{root}"
    logs: list[str] = []
    run = train("protocols/seed000.yaml", out_dir=tmp_path / "run", progress=False, log=logs.append,
                overrides=[*TINY, f"data.name={name}", "train.epochs=1",
                           f"eval.cross=[{{data: '{name}', split: test}}]"])
    d = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert (d["train_split"], d["val_split"], d["test_split"]) == ("train", "val", "test")
    assert (run / "eval_test.json").is_file() and not list(run.glob("eval_folder_*.json"))
    assert sum("(in-domain, n=" in x for x in logs) == 1 and not any("not scored" in x for x in logs), logs
    fer = load_config("protocols/seed000.yaml")
    assert fill_split_defaults(fer)["data"]["train_split"] == "Training"  # FER2013's own names stay
    odd = load_config("protocols/seed000.yaml", [f"data.name={name}", "data.val_split=holdout"])
    assert fill_split_defaults(odd)["data"]["val_split"] == "holdout"
