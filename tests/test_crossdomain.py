"""``ferbench crossdomain``: the plan (leave-one-out, cell kinds), training on a union, the matrix files, resuming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_registry_union import write_ckplus

from ferbench.errors import FerbenchError
from ferbench.sweep import crossdomain as cd

TINY = [
    "model.name=fer_vgg_s", "preprocessing.channels=1", "preprocessing.mean=[0.5]", "preprocessing.std=[0.5]",
    "train.batch_size=16", "train.lr=3e-3", "train.augment=light", "train.early_stopping=0",
    "train.scheduler=plateau", "eval.batch_size=64", "train.epochs=1",
]


def test_leave_one_out_plan_and_cell_kinds() -> None:
    # FER2013 and FER+ share pixels: holding one out holds out both; of the two, the first listed trains
    assert cd.leave_one_out_sets(["fer2013", "ferplus", "ckplus"]) == [
        ("fer2013", "ckplus"), ("ferplus", "ckplus"), ("ckplus", "fer2013")]
    assert cd.leave_one_out_sets(["FER+", "CK+", "folder:/d/jaffe"]) == [
        ("ferplus", "ckplus+folder:/d/jaffe"), ("ckplus", "ferplus+folder:/d/jaffe"), ("folder:/d/jaffe", "ferplus+ckplus")]
    with pytest.raises(FerbenchError, match="at least two distinct datasets"):
        cd.leave_one_out_sets(["ckplus", "ck+"])
    with pytest.raises(FerbenchError, match="holding out fer2013 leaves no dataset"):
        cd.leave_one_out_sets(["fer2013", "ferplus"])
    assert cd.cell_kind("fer2013+ckplus", "ckplus") == "in-domain"
    assert cd.cell_kind("fer2013", "ferplus") == "same-images"
    assert cd.cell_kind("fer2013", "ckplus") == "cross-domain"
    assert cd.slug("fer2013+ckplus") == "fer2013+ckplus"
    assert cd.slug("folder:/d/my jaffe").startswith("folder-my-jaffe-")
    cfg = cd.run_config("quickstart.yaml", "fer2013+ckplus")
    assert cfg["data"]["name"] == "fer2013+ckplus"
    assert (cfg["data"]["train_split"], cfg["data"]["val_split"], cfg["data"]["test_split"]) == ("train", "val", "test")
    assert cd.run_config("quickstart.yaml", "ckplus")["data"]["val_split"] == "val"
    assert cd.run_config("quickstart.yaml", "fer2013")["data"]["test_split"] == "PrivateTest"


def test_crossdomain_matrix_files_and_resume(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbench.report.crossdomain import render_markdown, write_report

    root = write_ckplus(tiny_root)
    out = tmp_path / "cd"
    sets = [*TINY, f"data.root={root}"]
    res = cd.run_crossdomain("quickstart.yaml", out, ["fer2013+ckplus"], [], leave_one_out=["fer2013", "ckplus"],
                             overrides=sets, data_root=root, progress=False, log=lambda s: None)
    assert res["train_sets"] == ["fer2013+ckplus", "ckplus", "fer2013"]
    assert res["test_sets"] == ["fer2013", "ckplus"] and res["held_out"] == {"fer2013": "ckplus", "ckplus": "fer2013"}
    cells = {(c["train"], c["test"]): c for c in res["cells"]}
    assert len(cells) == 6 and len(list((out / "cells").glob("*.json"))) == 6
    # the union run trained in the union taxonomy, on the role splits
    side = json.loads((out / "runs" / "fer2013+ckplus" / "best.json").read_text())
    assert side["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
    assert side["protocol"]["data"]["name"] == "fer2013+ckplus" and side["protocol"]["data"]["train_split"] == "train"
    u_ck = cells[("fer2013+ckplus", "ckplus")]
    assert u_ck["kind"] == "in-domain" and u_ck["split"] == "test" and u_ck["dropped_classes"] == []
    assert set(u_ck["per_class_recall"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"}
    # the CK+-only model has no neutral: FER2013's neutral images leave that cell, six classes are scored
    ck_fer = cells[("ckplus", "fer2013")]
    assert ck_fer["kind"] == "cross-domain" and ck_fer["dropped_classes"] == ["neutral"]
    assert ck_fer["n"] == 70 - 10 and len(ck_fer["per_class_recall"]) == 6 and ck_fer["split"] == "PrivateTest"
    for c in res["cells"]:
        assert 0.0 <= c["balanced_accuracy"] <= 1.0 and 0.0 <= c["accuracy"] <= 1.0
    # the matrix files
    paths = write_report(res, out)
    saved = json.loads((out / "crossdomain.json").read_text())
    assert saved["cells"] == json.loads(json.dumps(res["cells"]))
    md = paths["md"].read_text()
    assert "## Balanced accuracy" in md and "## Accuracy" in md and "## Leave-one-dataset-out" in md
    assert "| FER2013+CK+48 | **" in md and "| train \\ test | FER2013 (PrivateTest) | CK+48 (test) |" in md
    bal = 100 * cells[("fer2013", "ckplus")]["balanced_accuracy"]
    assert f"| CK+48 (test) | FER2013 | {cells[('fer2013', 'ckplus')]['n']} | {bal:.1f} % |" in md
    assert "## Per-class recall" in md and md.count("| cross-domain |") == 2
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a re-run trains nothing and recomputes nothing
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}

    def no_training(*a: object, **k: object) -> Path:
        raise AssertionError("finished runs must not be trained again")

    again = cd.run_crossdomain("quickstart.yaml", out, ["fer2013+ckplus"], [], leave_one_out=["fer2013", "ckplus"],
                               overrides=sets, data_root=root, log=lambda s: None, train_fn=no_training)
    assert again["cells"] == res["cells"] and render_markdown(again) == render_markdown(res)
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps
    # a lost cell is the only one recomputed
    import ferbench.evaluate.crossdata as crossdata

    calls: list[tuple[str, str]] = []
    real = crossdata.evaluate_checkpoint

    def counting(ref, data, split, *a, **k):  # noqa: ANN001, ANN202
        calls.append((str(ref), data))
        return real(ref, data, split, *a, **k)

    monkeypatch.setattr(crossdata, "evaluate_checkpoint", counting)
    (out / "cells" / "ckplus__fer2013.json").unlink()
    third = cd.run_crossdomain("quickstart.yaml", out, ["fer2013+ckplus"], [], leave_one_out=["fer2013", "ckplus"],
                               overrides=sets, data_root=root, log=lambda s: None, train_fn=no_training)
    assert [d for _, d in calls] == ["fer2013"] and calls[0][0].endswith("ckplus")
    assert third["cells"] == res["cells"]

    # another split as a column: every CK+48 image, scored in the row that never trained on CK+48, refused in
    # the rows that did (the split holds their training images); its own test split spelt out is the plain column
    calls.clear()
    fourth = cd.run_crossdomain("quickstart.yaml", out, ["fer2013+ckplus"], ["CK+@all", "ckplus@test"],
                                leave_one_out=["fer2013", "ckplus"], overrides=sets, data_root=root,
                                log=lambda s: None, train_fn=no_training)
    assert fourth["test_sets"] == ["ckplus@all", "ckplus", "fer2013"]
    assert calls == [(str(out / "runs" / "fer2013"), "ckplus")]
    every = {(c["train"], c["test"]): c for c in fourth["cells"]}[("fer2013", "ckplus@all")]
    from ferbench.data import load_dataset

    assert every["split"] == "all" and every["kind"] == "cross-domain" and every["dropped_classes"] == ["contempt"]
    assert every["n"] + every["dropped_samples"] == len(load_dataset("ckplus", root))  # FER2013 has no contempt
    assert every["n"] > cells[("fer2013", "ckplus")]["n"]
    assert (out / "cells" / "fer2013__ckplus@all.json").exists()
    assert [(c["train"], c["test"]) for c in fourth["refused"]] == [("fer2013+ckplus", "ckplus@all"),
                                                                    ("ckplus", "ckplus@all")]
    md = render_markdown(fourth)
    assert "| train \\ test | CK+48 (all) | CK+48 (test) | FER2013 (PrivateTest) |" in md
    assert "Not scored (–): FER2013+CK+48 → CK+48 (all); CK+48 → CK+48 (all): a split other than" in md
    assert cd.normalise_test("FER2013@PrivateTest") == "fer2013" and cd.normalise_test("ck+@val") == "ckplus@val"
    with pytest.raises(FerbenchError, match=r"^--test ckplus@nope: CK\+48 has no split 'nope'; choose one of train, val, "
                       r"test, all$"):
        cd.normalise_test("ckplus@nope")


def test_cli_crossdomain_bad_input_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ferbench.cli.main", "crossdomain", "--train", "fer2013",
                        "--test", "fer2013+ckplus", "--config", "quickstart.yaml", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: --test fer2013+ckplus: test on single datasets (a union is not a domain)"
    r = subprocess.run([sys.executable, "-m", "ferbench.cli.main", "crossdomain", "--train", "fer2013+rafdb",
                        "--config", "quickstart.yaml", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown dataset 'rafdb'; choose one of")
    r = subprocess.run([sys.executable, "-m", "ferbench.cli.main", "crossdomain", "--train", "fer2013",
                        "--test", "ckplus@Training", "--config", "quickstart.yaml", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: --test ckplus@Training: CK+48 has no split 'Training'; choose one of train, "
                                "val, test, all")
