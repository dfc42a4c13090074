"""Bad input, one row each: exit code, one line naming the problem, no traceback, nothing lost.

Each CLI row is a :class:`Case` in ``CASES``: ``setup(tmp)`` writes the inputs and returns the argv after
``ferbench``. The runner snapshots every file under ``tmp`` before the command and checks afterwards that each
one still exists with the same bytes (nothing the user owns is overwritten or lost). To add a row, append a
``Case``. Rows whose right answer is a result rather than an error (16-bit PNGs, non-UTF-8 names, double
spaces) are the plain tests after the list; the server's rows are ``SERVER_CASES``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_fer_csv
from PIL import Image
from test_deploy import make_checkpoint

from ferbench.loader import save_checkpoint
from ferbench.models import create_model


# -- helpers ------------------------------------------------------------------------------------------------
def face_photo(side: int = 256) -> np.ndarray:
    """A real photo with one face (skimage's astronaut), RGB uint8 ``(side, side, 3)``."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BILINEAR))


def save_png(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def bomb_png(path: Path, side: int = 7000) -> Path:
    """A 1-bit PNG of ``side``² pixels (49 MP for 7000): a few KB on disk, 147 MB as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (side, side)).save(path, optimize=True)
    return path


def snapshot(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, str, str]:
    """``ferbench ARGV`` in this process → (exit code, stdout, stderr)."""
    from ferbench.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ferbench", *argv])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model"))


def _csv_row(path: Path, row: int, text: str | bytes) -> None:
    """Replace line ``row`` (1 = header) of a csv with ``text``."""
    lines = path.read_bytes().split(b"\n")
    lines[row - 1] = text if isinstance(text, bytes) else text.encode()
    path.write_bytes(b"\n".join(lines))


def fer_csv_with(row3: Callable[[str], str | bytes]) -> Callable[[Path, Path], list[str]]:
    """Setup: a valid FER2013 csv whose row 3 becomes ``row3(original row 3)``."""
    def setup(tmp: Path, _: Path) -> list[str]:
        p = write_fer_csv(tmp / "data" / "fer2013" / "fer2013.csv", {"Training": 5, "PublicTest": 2})
        _csv_row(p, 3, row3(p.read_text().split("\n")[2]))
        return ["data", "info", "fer2013", "--data-root", str(tmp / "data")]
    return setup


def _pixels(row: str) -> list[str]:
    return row.split(",")[1].split(" ")


# -- the rows -----------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One bad input: ``setup(tmp, model_dir)`` writes it and returns the argv; the run must end with ``code``
    and exactly one ``error:`` line on stderr containing ``message``."""

    id: str
    setup: Callable[[Path, Path], list[str]]
    message: str
    code: int = 2


def _annotate_into_input(tmp: Path, model: Path) -> list[str]:
    save_png(tmp / "in" / "face.png", face_photo())
    return ["predict", str(tmp / "in"), "--annotate", str(tmp / "in"), "--model", str(model)]


def _annotate_into_file_folder(tmp: Path, model: Path) -> list[str]:
    save_png(tmp / "in" / "face.png", face_photo())
    return ["predict", str(tmp / "in" / "face.png"), "--annotate", str(tmp / "in"), "--model", str(model)]


def _annotate_inside_input(tmp: Path, model: Path) -> list[str]:
    save_png(tmp / "in" / "face.png", face_photo())
    return ["predict", str(tmp / "in"), "--annotate", str(tmp / "in" / "out"), "--model", str(model)]


def _csv_over_input(tmp: Path, model: Path) -> list[str]:
    save_png(tmp / "in" / "face.png", face_photo())
    return ["predict", str(tmp / "in" / "face.png"), "--csv", str(tmp / "in" / "face.png"), "--model", str(model)]


def _folder_with_bomb(tmp: Path, _: Path) -> list[str]:
    for i in range(3):
        save_png(tmp / "ds" / "happy" / f"{i}.png", face_photo(48))
        save_png(tmp / "ds" / "sad" / f"{i}.png", face_photo(48)[::-1])
    bomb_png(tmp / "ds" / "sad" / "bomb.png")
    return ["data", "info", f"folder:{tmp / 'ds'}"]


def _predict_bomb(tmp: Path, model: Path) -> list[str]:
    save_png(tmp / "in" / "face.png", face_photo())
    bomb_png(tmp / "in" / "bomb.png")
    return ["predict", str(tmp / "in"), "--model", str(model), "--json", str(tmp / "out.json")]


def _import_bomb(tmp: Path, _: Path) -> list[str]:
    save_png(tmp / "raw" / "happy" / "face.png", face_photo())
    bomb_png(tmp / "raw" / "happy" / "bomb.png")
    return ["data", "import", f"folder:{tmp / 'raw'}", "--out", str(tmp / "crops")]


def _explain_bomb(tmp: Path, model: Path) -> list[str]:
    bomb_png(tmp / "in" / "bomb.png")
    return ["explain", str(model), str(tmp / "in" / "bomb.png"), "--out", str(tmp / "maps")]


CASES = [
    Case("predict --annotate = the input folder", _annotate_into_input, "is the input folder"),
    Case("predict --annotate = an input file's folder", _annotate_into_file_folder, "is the input folder"),
    Case("predict --annotate inside the input folder", _annotate_inside_input, "is inside the input folder"),
    Case("predict --csv = an input file", _csv_over_input, "face.png: is one of the inputs; refusing to overwrite"),
    Case("fer2013 csv: pixel 'abc'",
         fer_csv_with(lambda r: r.split(",")[0] + ",abc " + " ".join(_pixels(r)[1:]) + ",Training"),
         "fer2013.csv row 3: pixel 1 is 'abc', not an integer 0..255"),
    Case("fer2013 csv: pixel '1.5'",
         fer_csv_with(lambda r: r.split(",")[0] + ",1.5 " + " ".join(_pixels(r)[1:]) + ",Training"),
         "fer2013.csv row 3: pixel 1 is '1.5', not an integer 0..255"),
    Case("fer2013 csv: pixel 300",
         fer_csv_with(lambda r: r.split(",")[0] + ",300 " + " ".join(_pixels(r)[1:]) + ",Training"),
         "fer2013.csv row 3: pixel 1 is 300, outside 0..255"),
    Case("fer2013 csv: 2303 pixels", fer_csv_with(lambda r: r.split(",")[0] + "," + " ".join(_pixels(r)[1:])
                                                  + ",Training"),
         "fer2013.csv row 3: 2303 pixel values, expected 2304 (48×48)"),
    Case("fer2013 csv: label-only row", fer_csv_with(lambda r: r.split(",")[0]),
         "fer2013.csv row 3: 1 field(s), expected emotion,pixels,Usage"),
    Case("fer2013 csv: non-UTF-8 bytes in pixels", fer_csv_with(lambda r: r.encode().replace(b" ", b" \xff\xfe ", 1)),
         "fer2013.csv row 3: bytes that are not UTF-8 text in the pixels field"),
    Case("fer2013 csv: non-UTF-8 emotion", fer_csv_with(lambda r: b"\xe9" + r.encode()[1:]),
         "fer2013.csv row 3: bad emotion value (bytes that are not UTF-8 text; expected 0..6)"),
    Case("fer2013 csv: emotion 'x'", fer_csv_with(lambda r: "x" + r[1:]),
         "fer2013.csv row 3: bad emotion value ('x'; expected 0..6)"),
    Case("folder: dataset with a PNG bomb", _folder_with_bomb,
         "bomb.png: 7000x7000 = 49,000,000 pixels in a"),
    # batch commands skip a bad item with one line and go on (predict exits 1 when some input was skipped)
    Case("predict: PNG bomb among faces", _predict_bomb, "bomb.png: 7000x7000 = 49,000,000 pixels in a", code=1),
    Case("data import: PNG bomb among faces", _import_bomb, "bomb.png: 7000x7000 = 49,000,000 pixels in a", code=0),
    Case("explain: PNG bomb", _explain_bomb, "bomb.png: 7000x7000 = 49,000,000 pixels in a"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.setup(tmp_path, model_dir)
    before = snapshot(tmp_path)
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == case.code, (out, err)
    assert len(errors) == 1 and case.message in errors[0], err
    after = snapshot(tmp_path)
    for p, digest in before.items():
        assert after.get(p) == digest, f"{p} was changed or removed"


def test_predict_bomb_keeps_the_good_image(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, _ = run_cli(_predict_bomb(tmp_path, model_dir), monkeypatch, capsys)
    res = json.loads((tmp_path / "out.json").read_text())
    by_name = {Path(r["source"]).name: r for r in res["images"]}
    assert code == 1 and by_name["face.png"]["error"] is None and "decompression bomb" in by_name["bomb.png"]["error"]
    assert "face.png: " in out


# -- rows whose right answer is a result --------------------------------------------------------------------
def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    import cv2

    from ferbench.data.folder import decode_image
    from ferbench.data.images import read_image

    rgb = face_photo()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "g16.png"), grey.astype(np.uint16) * 257)  # 16-bit grey PNG of the face
    cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1].astype(np.uint16) * 257)  # 16-bit colour
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], grey)
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png"), rgb)
    np.testing.assert_array_equal(decode_image(tmp_path / "g16.png", 256, 1)[..., 0], grey)


def test_16bit_face_is_found_like_the_8bit_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    grey = cv2.cvtColor(face_photo(512), cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "a8.png"), grey)
    cv2.imwrite(str(tmp_path / "a16.png"), grey.astype(np.uint16) * 257)
    code, out, err = run_cli(["predict", str(tmp_path / "a8.png"), str(tmp_path / "a16.png")], monkeypatch, capsys)
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert code == 0, err
    assert "no face" not in lines[str(tmp_path / "a16.png")]
    assert lines[str(tmp_path / "a16.png")] == lines[str(tmp_path / "a8.png")]


def test_non_utf8_file_name_with_csv(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    raw = os.fsencode(tmp_path / "in") + b"/caf\xe9.png"  # Latin-1 name: not UTF-8
    (tmp_path / "in").mkdir()
    with open(raw, "wb") as f:
        Image.fromarray(face_photo()).save(f, "PNG")
    save_png(tmp_path / "in" / "ok.png", face_photo())
    code, out, err = run_cli(["predict", str(tmp_path / "in"), "--csv", str(tmp_path / "p.csv"),
                              "--model", str(model_dir)], monkeypatch, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "caf\\xe9.png: " in out  # shown escaped on the console
    rows = (tmp_path / "p.csv").read_bytes().splitlines()
    assert len(rows) == 3 and rows[1].startswith(raw + b",0,")  # the name's own bytes: it can be matched back
    assert rows[2].startswith(os.fsencode(tmp_path / "in" / "ok.png") + b",0,")


def test_results_before_a_failure_are_kept(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from ferbench.deploy.recognizer import Recognizer

    for i in range(3):
        save_png(tmp_path / "in" / f"{i}.png", face_photo(128))
    real = Recognizer.predict_batch
    calls = []

    def flaky(self: Recognizer, *a: object, **k: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash on the third batch")
        return real(self, *a, **k)

    monkeypatch.setattr(Recognizer, "predict_batch", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_cli(["predict", str(tmp_path / "in"), "--batch-size", "1", "--json", str(tmp_path / "p.json"),
                 "--model", str(model_dir)], monkeypatch, capsys)
    res = json.loads((tmp_path / "p.json").read_text())
    assert res["complete"] is False and [Path(r["source"]).name for r in res["images"]] == ["0.png", "1.png"]
    assert "partial: stopped after 2 of 3 images" in capsys.readouterr().out


def test_double_spaces_in_fer2013_pixels_are_read(tmp_path: Path) -> None:
    from ferbench.data.fer2013 import parse_fer2013_csv

    p = write_fer_csv(tmp_path / "fer2013.csv", {"Training": 4})
    ref, _, _ = parse_fer2013_csv(p)
    row = p.read_text().split("\n")[2]
    _csv_row(p, 3, row.replace(" ", "  ", 5).replace(",", ", ", 1))
    images, labels, usage = parse_fer2013_csv(p)
    np.testing.assert_array_equal(images, ref)
    assert list(usage) == ["Training"] * 4


def test_second_sweep_driver_reports_skipped_not_failed(tiny_root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A trial whose run dir another driver holds (flock) is 'skipped … claimed by another driver'."""
    from test_sweep import _study

    from ferbench.sweep.executors import run_dir_lock
    from ferbench.sweep.study import load_study

    study = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n")
    out = tmp_path / "study"
    held = load_study(study).trials(data_root=tiny_root)[0]
    monkeypatch.setenv("COLUMNS", "200")
    with run_dir_lock(out / "runs" / held.key):  # "the other driver"
        code, stdout, err = run_cli(["sweep", str(study), "--out", str(out), "--data-root", str(tiny_root)],
                                    monkeypatch, capsys)
    assert code == 0, err
    assert f"skipped {held.key} ({held.label()}): claimed by another driver" in stdout
    assert "failed:" not in stdout and "being trained by another" not in stdout
    assert "1 trials finished, 0 failed, 1 skipped (claimed by another driver)" in stdout
    # redirected output (a nohup'd sweep) also says which trial starts and logs its epochs, one timestamp a line
    other = next(t for t in load_study(study).trials(data_root=tiny_root) if t.key != held.key)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.search(rf"^{stamp} trial {other.key} \({re.escape(other.label())}\) starts$", stdout, re.M), stdout
    assert [int(m) for m in re.findall(rf"^{stamp} epoch (\d)/2 [\d.]+s train_loss", stdout, re.M)] == [1, 2], stdout


# -- the server's rows: HTTP status and one {"error": line} -------------------------------------------------
def _chunked(body: bytes) -> object:
    for i in range(0, len(body), 4096):
        yield body[i:i + 4096]


def _multipart(data: bytes) -> bytes:
    return (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--b--\r\n")


SERVER_CASES: list[tuple[str, Callable[[Path], dict], int, str]] = [
    ("chunked body over the limit", lambda _: {"content": _chunked(_multipart(b"\0" * 300_000)),
                                               "headers": {"content-type": "multipart/form-data; boundary=b"}},
     413, "request body over the 100,000-byte limit"),
    ("49 MP 1-bit PNG bomb", lambda t: {"files": {"file": ("bomb.png", bomb_png(t / "b.png").read_bytes(),
                                                           "image/png")}},
     413, "bomb.png: 7000x7000 = 49,000,000 pixels in a"),
    ("no file field", lambda _: {"data": {"x": "1"}}, 400, "bad request: expected multipart/form-data"),
]


@pytest.mark.parametrize(("name", "request_kwargs", "status", "message"), SERVER_CASES,
                         ids=[c[0] for c in SERVER_CASES])
def test_bad_request_to_the_server(name: str, request_kwargs: Callable[[Path], dict], status: int, message: str,
                                   tmp_path: Path, model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.deploy.serve import create_app

    client = TestClient(create_app(Recognizer.load(model_dir), max_bytes=100_000, detect=False))
    r = client.post("/predict", **request_kwargs(tmp_path))
    body = r.json()
    assert r.status_code == status and list(body) == ["error"] and "\n" not in body["error"]
    assert body["error"].startswith(message) or message in body["error"], body


# -- configs, checkpoints, run folders ------------------------------------------------------------------------
# A bad config is refused at load (the typed schema), before a run folder exists; a checkpoint whose files do
# not fit together is one line naming the file; a damaged or finished run folder is never rewritten.
def run_cli_err(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``ferbench ARGS`` (see :func:`run_cli`)."""
    code, _, err = run_cli(args, monkeypatch, capsys)
    return code, err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


BASE = "model:\n  name: lenet5\npreprocessing:\n  size: 48\n  channels: 1\ntrain:\n  epochs: 1\n"


@pytest.mark.parametrize(("yaml_text", "needle"), [
    ("train:\n  epochs: ten\n", "train.epochs"),
    ("train:\n  lr: fast\n", "train.lr"),
    ("train:\n  batch_size: 0\n", "train.batch_size"),
    ("preprocessing:\n  size: -48\n", "preprocessing.size"),
    ("data:\n  limit: 0\n", "data.limit"),
    ("data:\n  limit: -5\n", "data.limit"),
    ("train:\n  optimiser: adam\n", "optimiser"),
])
def test_bad_config_values(yaml_text: str, needle: str, tmp_path: Path, tiny_root: Path,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    code, err = run_cli_err(["train", str(cfg), "--out", str(tmp_path / "run"), "--data-root", str(tiny_root)],
                        monkeypatch, capsys)
    _assert_one_line(code, err, needle)
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_extends_cycle_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    code, err = run_cli_err(["train", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "run")], monkeypatch, capsys)
    _assert_one_line(code, err, "cycle", "a.yaml")


def _checkpoint(path: Path, **sidecar_changes: object) -> Path:
    model = create_model("lenet5", num_classes=7, in_chans=1, input_size=48)
    meta = {"architecture": {"name": "lenet5", "num_classes": 7, "kwargs": {}, "method": None},
            "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
            "preprocessing": {"size": 48, "channels": 1, "mean": [0.5], "std": [0.5]}}
    save_checkpoint(path, model, meta)
    if sidecar_changes:
        side = json.loads(path.with_suffix(".json").read_text())
        for k, v in sidecar_changes.items():
            if v is None:
                side.pop(k)
            else:
                side[k] = v
        side["weights_id"] = "edited-by-hand"  # a hand-edited .json (no longer the header's copy)
        path.with_suffix(".json").write_text(json.dumps(side))
        from safetensors.torch import load_file, save_file

        save_file(load_file(str(path)), str(path))  # a format-1-like file: no embedded sidecar
    return path


@pytest.mark.parametrize(("changes", "needle"), [
    ({"classes": None}, "'classes'"),
    ({"architecture": None}, "'architecture'"),
    ({"preprocessing": None}, "'preprocessing'"),
    ({"classes": ["a", "b", "c"]}, "3 classes but the model has 7 outputs"),
])
def test_bad_sidecars(changes: dict, needle: str, tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    ck = _checkpoint(tmp_path / "m.safetensors", **changes)
    for cmd in (["evaluate", str(ck), "--data", "fer2013", "--split", "PrivateTest", "--data-root", str(tiny_root)],
                ["export", str(ck), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]):
        code, err = run_cli_err(cmd, monkeypatch, capsys)
        _assert_one_line(code, err, needle)


def test_weights_of_another_shape(tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    ck = _checkpoint(tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    t = load_file(str(ck))
    k = next(iter(t))
    t[k] = torch.zeros(*[s + 1 for s in t[k].shape])
    save_file(t, str(ck), metadata=None)
    code, err = run_cli_err(["evaluate", str(ck), "--data", "fer2013", "--split", "PrivateTest", "--data-root",
                         str(tiny_root)], monkeypatch, capsys)
    _assert_one_line(code, err, "weights do not match lenet5", "size mismatch")


def test_stale_sidecar_after_an_interrupted_write_uses_the_weights_own(tmp_path: Path) -> None:
    from ferbench.loader import load_checkpoint

    ck = _checkpoint(tmp_path / "best.safetensors")
    old = json.loads(ck.with_suffix(".json").read_text())
    save_checkpoint(ck, create_model("lenet5", num_classes=7, in_chans=1, input_size=48),
                    {**{k: v for k, v in old.items() if k != "weights_id"}, "epoch": 2})
    ck.with_suffix(".json").write_text(json.dumps({**old, "epoch": 1}))  # the kill: .json still epoch 1's
    _, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2


def _tiny_run(tmp_path: Path, tiny_root: Path, epochs: int = 1) -> Path:
    from ferbench.train.loop import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE.replace("epochs: 1", f"epochs: {epochs}") + "  augment: none\n")
    return train(str(cfg), tmp_path / "run", overrides=[f"data.root={tiny_root}"], progress=False,
                 log=lambda s: None)


def test_damaged_resume_state(tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _tiny_run(tmp_path, tiny_root)
    (run / "last.json").write_text('{"epoch": 1, "tensors_fi')
    before = (run / "best.safetensors").read_bytes()
    code, err = run_cli_err(["train", str(tmp_path / "c.yaml"), "--out", str(run), "--resume", "--data-root",
                         str(tiny_root)], monkeypatch, capsys)
    _assert_one_line(code, err, "last.json", "damaged")
    assert (run / "best.safetensors").read_bytes() == before


def test_resuming_a_finished_run_keeps_its_config(tmp_path: Path, tiny_root: Path) -> None:
    from ferbench.train.loop import train

    run = _tiny_run(tmp_path, tiny_root)
    before = (run / "config.yaml").read_text()
    train(str(tmp_path / "c.yaml"), run, resume=True, overrides=[f"data.root={tiny_root}", "train.epochs=5"],
          progress=False, log=lambda s: None)
    assert (run / "config.yaml").read_text() == before
