"""The CLI behaves like the tools practitioners already use (timm, Ultralytics, fer).

--version / -h, --x/--no-x flags, --device, shipped model names everywhere, cheap checks before any heavy
import, plain log lines when the output is not a terminal, predict sources (globs, http URLs, streams)
and its automatic runs/predict/N folder, a fast `models list`, and `import ferbench` without side effects.
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ferbench.cli.main import app
from ferbench.errors import FerbenchError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TINY = ["model.name=fer_vgg_s", "preprocessing.channels=1", "preprocessing.mean=[0.5]", "preprocessing.std=[0.5]",
        "train.batch_size=16", "train.lr=3e-3", "train.augment=light", "train.early_stopping=0", "eval.batch_size=64"]
# flags that trigger an action rather than switch a setting (ecosystem style: no --no-x twin)
ACTION_FLAGS = {"help", "version", "dry_run", "per_class", "no_detect", "synthetic"}


def cli(*args: str, cwd: Path | None = None) -> Any:
    """Run the CLI in-process (stdout is not a terminal, as in ``ferbench … > log``)."""
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)


def run_py(code_or_args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with this checkout's ``src`` first on the path."""
    e = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    e["PYTHONPATH"] = str(SRC)
    e.update(env or {})
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=e,
                          cwd=cwd or REPO, timeout=timeout)


def imported_modules(stderr: str) -> set[str]:
    """Top-level module names from ``python -X importtime`` output."""
    return {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)\s*$", stderr, re.M)}


def face_photo() -> np.ndarray:
    """A real face photo (scikit-image's astronaut, RGB uint8 (512, 512, 3))."""
    skd = pytest.importorskip("skimage.data")
    return skd.astronaut()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_deploy import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("run"))


# -- conventions -------------------------------------------------------------------------------------------
def test_version_and_short_help() -> None:
    from ferbench import __version__

    r = cli("--version")
    assert r.exit_code == 0 and r.output.strip() == f"ferbench {__version__}"
    for args in (["-h"], ["predict", "-h"], ["models", "list", "-h"], ["data", "info", "-h"]):
        r = cli(*args)
        assert r.exit_code == 0 and "Usage:" in r.output, args


def _commands(cmd: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}".strip())


def test_on_off_flags_have_a_negative_twin() -> None:
    seen = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        for p in cmd.params:
            if isinstance(p, typer.core.TyperOption) and p.is_flag and p.name not in ACTION_FLAGS:
                seen += 1
                assert p.secondary_opts, f"ferbench {path} {p.opts[0]}: on/off flag without --no-… twin"
    assert seen >= 5
    r = cli("train", "-h")
    assert "--resume" in r.output and "--no-resume" in r.output


def test_help_paragraphs_wrap_to_the_terminal_not_to_the_source_lines() -> None:
    """At 80 columns every command's description fills its lines: a line break in the middle of a paragraph
    (the docstring's own line ends, which Typer keeps) would leave a short line followed by more text."""
    import inspect

    runner = CliRunner()
    checked = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        if not path or hasattr(cmd, "commands"):
            continue
        out = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "80"}).output
        desc = out.split("Usage:", 1)[1].split("╭", 1)[0].splitlines()[2:]  # between the usage line and the panels
        text = [ln.strip() for ln in desc]
        for i, ln in enumerate(text[:-1]):
            if ln and text[i + 1]:  # a line inside a paragraph (the next one continues it)
                nxt = text[i + 1].split()[0]
                assert len(ln) + 1 + len(nxt) > 78, f"ferbench {path} --help: short line {ln!r}, then {nxt!r}"
        checked += len(inspect.cleandoc(cmd.help or "").split("\n\n")) > 1
    assert checked >= 10  # commands whose help has more than one paragraph


def test_quickstart_help_states_the_measured_time() -> None:
    r = cli("quickstart", "-h")
    assert r.exit_code == 0 and "6 min 54 s" in r.output and "15 min" not in r.output


def test_shipped_names_and_extensions_agree() -> None:
    from ferbench.data import images
    from ferbench.deploy import sources
    from ferbench.deploy.recognizer import SHIPPED
    from ferbench.persist.checkpoint import shipped_models

    assert sorted(SHIPPED) == shipped_models()
    assert sources.IMAGE_EXTS == set(images.IMAGE_EXTS) and sources.VIDEO_EXTS == set(images.VIDEO_EXTS)


# -- --device ----------------------------------------------------------------------------------------------
def test_device_resolution() -> None:
    import torch

    from ferbench.device import check_device_name, resolve_device
    from ferbench.errors import FerbenchError

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert check_device_name("CUDA:1") == "cuda:1"
    with pytest.raises(FerbenchError, match="choose auto, cpu, cuda"):
        check_device_name("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(FerbenchError, match="no CUDA GPU is available"):
            resolve_device("cuda")


def test_bad_device_fails_fast_everywhere(tmp_path: Path) -> None:
    for args in (["train", "quickstart.yaml", "--device", "tpu"],
                 ["evaluate", "default", "--data", "fer2013", "--split", "x", "--device", "tpu"],
                 ["predict", str(tmp_path), "--device", "tpu"], ["serve", "--device", "tpu"]):
        r = cli(*args)
        assert r.exit_code != 0 and "choose auto, cpu, cuda" in str(r.exception or r.output), args


def test_train_device_cpu_writes_one_line_per_epoch(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.config import config_hash, load_config

    sets = [x for s in TINY for x in ("--set", s)]
    r = cli("train", "protocols/seed000.yaml", "--out", str(tmp_path / "run"), "--data-root", str(tiny_root),
            "--device", "cpu", "--set", "train.epochs=2", *sets)
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if re.search(r"\bepoch [12]/2\b", x)]
    assert len(lines) == 2, r.output  # one plain line per epoch, not a progress bar
    for x in lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch", x)
        for key in ("train_loss", "val_loss", "val_acc", "lr", "img/s"):
            assert key in x, (key, x)
    assert "━" not in r.output  # no rich bar in a log file
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert re.search(r"^\s+device: cpu$", cfg, re.M)
    hist = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(h["images_per_s"] > 0 for h in hist)
    # where it runs is not part of the experiment: same hash, so run names and sweep keys do not change
    base = load_config("protocols/seed000.yaml")
    assert config_hash(base) == config_hash(load_config("protocols/seed000.yaml", ["train.device=cpu"]))
    # nor is the optimizer kernel (fused computes the same update): a study can switch it on mid-way
    assert config_hash(base) == config_hash(load_config("protocols/seed000.yaml", ["train.fused_optimizer=true"]))
    assert config_hash(base) != config_hash(load_config("protocols/seed000.yaml", ["train.lr=0.5"]))


def test_quickstart_reports_ckplus_beside_privatetest(tiny_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for ci, c in enumerate(["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]):
        (tiny_root / "CK+48" / c).mkdir(parents=True)
        for subject in range(8):  # CK+48 file names: S<subject>_<sequence>_<frame>
            Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(
                tiny_root / "CK+48" / c / f"S{subject:03d}_001_{ci:08d}.png")
    r = cli("quickstart", "--out", str(tmp_path / "qs"), "--data-root", str(tiny_root), "--set", "train.epochs=1",
            "--set", "train.batch_size=16")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "qs" / "eval_ckplus_test.json").read_text())
    assert ev["dataset"] == "ckplus" and ev["dropped_classes"] == ["contempt"] and ev["n"] % 6 == 0 and ev["n"] > 0
    last = r.output.strip().splitlines()[-1]
    assert re.match(r"PrivateTest accuracy 0\.\d{4}, balanced 0\.\d{4}; CK\+48 test \(never trained on\) "
                    r"[01]\.\d{4}, balanced [01]\.\d{4}; report: ", last), last
    assert f"ckplus/test (cross-domain, 6 shared classes, n={ev['n']})" in r.output
    assert "ckplus/test" in (tmp_path / "qs" / "report" / "report.md").read_text()
    # the same command on CK+48 itself: its train/val/test, its test split scored once, named in the summary
    r = cli("quickstart", "--out", str(tmp_path / "qck"), "--data-root", str(tiny_root), "--set", "train.epochs=1",
            "--set", "train.batch_size=16", "--set", "data.name=ckplus")
    assert r.exit_code == 0, r.output
    assert re.match(r"CK\+48 test accuracy [01]\.\d{4}, balanced [01]\.\d{4}; report: ",
                    r.output.strip().splitlines()[-1]), r.output
    assert r.output.count("ckplus/test (in-domain") == 1 and not (tmp_path / "qck" / "eval_ckplus_test.json").exists()


# -- shipped names and cheap checks ----------------------------------------------------------------------
def test_evaluate_accepts_the_shipped_default(tiny_root: Path) -> None:
    r = cli("evaluate", "default", "--data", "fer2013", "--split", "PrivateTest", "--data-root", str(tiny_root),
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "fer_vgg_m on fer2013/PrivateTest (n=70)" in r.output and "balanced_accuracy" in r.output
    r = cli("evaluate", "default", "--data", "fer2013", "--data-root", str(tiny_root), "--device", "cpu")
    assert r.exit_code == 0 and "fer_vgg_m on fer2013/PrivateTest (n=70)" in r.output  # no --split: the test split


def test_predict_missing_file_exits_2_before_loading_anything(tmp_path: Path) -> None:
    p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", "predict", str(tmp_path / "nope.jpg")])
    assert p.returncode == 2
    err = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
    assert err == [f"error: {tmp_path / 'nope.jpg'}: no such file or directory"]
    assert "torch" not in imported_modules(p.stderr) and "cv2" not in imported_modules(p.stderr)
    r = cli("predict", str(tmp_path / "*.png"))
    assert r.exit_code != 0 and "no image or video matches this pattern" in str(r.exception)


@pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) for m in ("litert_torch", "ai_edge_torch")),
                    reason="a TFLite converter is installed here")
def test_export_tflite_checks_its_dependency_first() -> None:
    from ferbench.deploy.formats import TFLITE_HINT

    p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", "export", "default", "--format", "tflite"])
    err = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
    assert p.returncode == 2 and err == [f"error: {TFLITE_HINT}"]
    assert "torch" not in imported_modules(p.stderr)  # nothing loaded: no checkpoint, no validation images


def test_export_help_says_where_it_writes() -> None:
    r = cli("export", "-h")
    assert "RUN_DIR/best.onnx" in r.output and "./NAME.onnx" in r.output


# -- predict sources and outputs ---------------------------------------------------------------------------
def _crops(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = folder / f"c{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
        out.append(p)
    return out


def test_predict_json_and_csv_together_and_glob(run_dir: Path, tmp_path: Path) -> None:
    _crops(tmp_path / "crops")
    (tmp_path / "crops" / "notes.txt").write_text("not an image")
    j, c = tmp_path / "r.json", tmp_path / "r.csv"
    r = cli("predict", str(tmp_path / "crops" / "*.png"), "--model", str(run_dir), "--no-detect", "--json", str(j),
            "--csv", str(c), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert len(json.loads(j.read_text())["images"]) == 3
    rows = list(csv.reader(c.read_text().splitlines()))
    assert len(rows) == 4 and [Path(x[0]).name for x in rows[1:]] == ["c0.png", "c1.png", "c2.png"]


def test_predict_without_output_goes_to_runs_predict_n(run_dir: Path, tmp_path: Path) -> None:
    (p,) = _crops(tmp_path / "in", 1)
    r = cli("predict", str(p), "--model", str(tmp_path / "nope.onnx"), cwd=tmp_path)
    assert r.exit_code != 0 and not (tmp_path / "runs").exists()  # a failed load leaves no empty folder
    for n in (1, 2):
        r = cli("predict", str(p), "--model", str(run_dir), "--no-detect", cwd=tmp_path)
        assert r.exit_code == 0, r.output
        res = json.loads((tmp_path / "runs" / "predict" / str(n) / "predictions.json").read_text())
        assert res["images"][0]["source"] == str(p) and f"results saved to {Path('runs/predict') / str(n)}" in r.output
    r = cli("predict", str(p), "--model", str(run_dir), "--no-detect", "--no-save", cwd=tmp_path)
    assert r.exit_code == 0 and not (tmp_path / "runs" / "predict" / "3").exists()


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server on a temporary folder (there is no internet here)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(root), **k)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", root
    finally:
        srv.shutdown()
        srv.server_close()


def test_predict_http_url_downloads_and_detects_a_real_face(http_folder: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_folder
    cv2.imwrite(str(root / "astronaut.jpg"), cv2.cvtColor(face_photo(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "res.json"
    r = cli("predict", f"{base}/astronaut.jpg", f"{base}/missing.jpg", "--json", str(out), "--device", "cpu")
    assert r.exit_code == 1, r.output  # one URL failed (404), the other was processed
    assert f"{base}/missing.jpg: HTTP 404" in r.output
    res = json.loads(out.read_text())
    (img,) = res["images"]
    assert img["source"] == f"{base}/astronaut.jpg" and len(img["faces"]) >= 1
    assert (tmp_path / "downloads" / "astronaut.jpg").is_file()


def test_predict_stream_url_is_handed_to_opencv(run_dir: Path, tmp_path: Path) -> None:
    r = cli("predict", "rtsp://127.0.0.1:9/none", "--model", str(run_dir), "--json", str(tmp_path / "r.json"))
    assert r.exit_code == 1
    assert "rtsp://127.0.0.1:9/none: cannot read video (unreachable stream or unsupported protocol)" in r.output
    r = cli("predict", "gopher://x/y", "--model", str(run_dir))
    assert r.exit_code != 0 and "unsupported URL scheme 'gopher'" in str(r.exception)


def _video(path: Path, n: int = 12) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 72))
    for i in range(n):
        frame = np.full((72, 96, 3), 20 * (i % 10), np.uint8)
        cv2.circle(frame, (10 + 5 * i, 36), 8, (0, 0, 255), -1)
        w.write(frame)
    w.release()
    return path


def test_video_predict_logs_every_n_frames(run_dir: Path, tmp_path: Path) -> None:
    v = _video(tmp_path / "clip.mp4")
    r = cli("predict", str(v), "--model", str(run_dir), "--no-detect", "--log-every", "5",
            "--annotate", str(tmp_path / "ann"))
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if "clip.mp4: frame" in x]
    assert [re.search(r"frame (\d+/\d+)", x).group(1) for x in lines] == ["5/12", "10/12"]  # type: ignore[union-attr]
    assert all("frames/s" in x for x in lines)


# -- fast, side-effect-free entry points ------------------------------------------------------------------
def test_models_list_reads_the_shipped_table_without_torch() -> None:
    p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", "models", "list"], env={"COLUMNS": "60"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "torch" not in imported_modules(p.stderr) and "timm" not in imported_modules(p.stderr)
    assert re.search(r"ferbench models \(\d+\)", p.stdout)
    # piped: no number is cut even with a narrow COLUMNS
    assert "20,189,511" in p.stdout and "…" not in p.stdout


def test_misspelt_model_name_fails_before_torch_loads(tmp_path: Path) -> None:
    """``models info`` and ``train`` refuse a name the zoo lacks from the shipped table: one line, exit 2, no torch."""
    for args in (["models", "info", "resnet18_dx"],
                 ["train", "quickstart", "--set", "model.name=resnet18_dx", "--out", str(tmp_path / "r")]):
        p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", *args])
        lines = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
        assert p.returncode == 2 and lines == [
            "error: unknown model 'resnet18_dx'. Did you mean: resnet18_dd, resnet18, resnet18_s003?"], p.stderr[-2000:]
        assert "torch" not in imported_modules(p.stderr), args
    # a sweep refuses the whole study before its first trial runs; crossdomain before its first training
    study = tmp_path / "typo.yaml"
    study.write_text("name: typo\nbase: quickstart.yaml\ngrid:\n  model.name: [lenet5, resnet18_dx]\n")
    for args, prefix in ((["sweep", str(study), "--out", str(tmp_path / "s")], "trial [0-9a-f]{12} "
                          r"\(model.name=resnet18_dx\): "),
                         (["crossdomain", "--train", "fer2013", "--test", "ckplus", "--config", "quickstart", "--set",
                           "model.name=resnet18_dx", "--out", str(tmp_path / "x")], "")):
        p = run_py(["-m", "ferbench.cli.main", *args])
        assert p.returncode == 2 and re.fullmatch(f"error: {prefix}unknown model 'resnet18_dx'. Did you mean: "
                                                  r"resnet18_dd, resnet18, resnet18_s003\?\n", p.stderr), p.stderr
    assert not any(tmp_path.glob("[rsx]"))
    # the package itself is lazy: importing it loads no torch (its names load the zoo on first use)
    assert run_py(["-c", "import sys, ferbench.models; print('torch' in sys.modules)"]).stdout.split() == ["False"]


def test_misspelt_dataset_name_fails_before_torch_loads(tmp_path: Path) -> None:
    """Every command that takes a dataset name refuses an unknown one from the registry alone: one line, exit 2,
    no torch (the registry loads its adapters only to read data)."""
    known = "choose one of fer2013, ferplus, ckplus, folder:PATH"
    for args in (["data", "info", "fer2031"], ["data", "show", "fer2031", "--out", str(tmp_path / "g.png")],
                 ["evaluate", "default", "--data", "fer2031", "--split", "test"],
                 ["train", "quickstart", "--set", "data.name=fer2013+fer2031", "--out", str(tmp_path / "r")],
                 ["crossdomain", "--train", "fer2013", "--test", "ckplus,fer2031", "--config", "quickstart",
                  "--out", str(tmp_path / "x")]):
        p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", *args])
        lines = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
        assert p.returncode == 2 and lines == [f"error: unknown dataset 'fer2031'; {known}"], (args, p.stderr[-2000:])
        assert "torch" not in imported_modules(p.stderr), args
    assert not any(tmp_path.iterdir())


def test_absent_data_fails_before_torch_loads(tmp_path: Path) -> None:
    """Commands that read a dataset find out it is absent from the registry's file list, before the heavy
    imports, with the loader's own one-line message."""
    empty = tmp_path / "empty"
    empty.mkdir()
    fer = ("error: fer2013: none of fer2013/fer2013.csv, fer2013/fer2013.csv.gz, fer2013.csv, fer2013.csv.gz "
           f"found under {empty}; pass --data-root DIR")
    for args, msg in (
            (["quickstart", "--data-root", str(empty), "--out", str(tmp_path / "q")], fer),
            (["train", "quickstart", "--data-root", str(empty), "--out", str(tmp_path / "t")], fer),
            (["evaluate", "default", "--data", "ckplus", "--split", "test", "--data-root", str(empty)],
             f"error: ckplus: none of ckplus48/CK+48, CK+48, ckplus48 found under {empty}; pass --data-root DIR"),
            (["evaluate", "default", "--data", f"folder:{tmp_path / 'nope'}", "--split", "test"],
             f"error: {tmp_path / 'nope'}: no such directory"),
            (["crossdomain", "--train", "fer2013", "--test", "ckplus", "--config", "quickstart", "--data-root",
              str(empty), "--out", str(tmp_path / "x")], fer)):
        p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", *args])
        lines = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
        assert p.returncode == 2 and lines == [msg], (args, p.stderr[-2000:])
        assert "torch" not in imported_modules(p.stderr), args
    assert sorted(x.name for x in tmp_path.iterdir()) == ["empty"]


def test_dataset_files_check_agrees_with_the_loaders(tiny_root: Path) -> None:
    from ferbench.data import load_dataset
    from ferbench.data.registry import check_dataset_files
    from ferbench.errors import DataError

    check_dataset_files("fer2013", tiny_root)  # there: no error, nothing read
    for name in ("ferplus", "ckplus", "fer2013+ckplus"):  # FER+ needs its votes file too; a union every member
        with pytest.raises(DataError) as ahead:
            check_dataset_files(name, tiny_root)
        with pytest.raises(DataError) as loading:
            load_dataset(name, tiny_root)
        assert str(ahead.value) == str(loading.value), name


def test_missing_checkpoint_fails_before_torch_loads(tmp_path: Path) -> None:
    for args in (["evaluate", "defualt", "--data", "fer2013", "--split", "test"],
                 ["calibrate", "defualt", "--data", "fer2013"], ["export", "defualt", "--format", "onnx"]):
        p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", *args])
        lines = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
        assert p.returncode == 2 and len(lines) == 1, (args, p.stderr[-2000:])
        assert lines[0].startswith("error: defualt: no checkpoint found (expected a shipped model name [default, "), args
        assert "torch" not in imported_modules(p.stderr), args
    img = tmp_path / "astronaut.jpg"  # a real photo: the model reference is what fails
    cv2.imwrite(str(img), face_photo()[..., ::-1])
    for args in (["serve", "--model", "defualt"], ["predict", str(img), "--model", "defualt"]):
        p = run_py(["-X", "importtime", "-m", "ferbench.cli.main", *args])
        lines = [x for x in p.stderr.splitlines() if not x.startswith("import time:")]
        assert p.returncode == 2 and lines == [
            "error: defualt: no such model (expected 'default', a run dir, a .safetensors or a .onnx file)"], args
        assert "torch" not in imported_modules(p.stderr), args


def test_registry_loaders_take_the_adapters_own_options() -> None:
    """The registry's built-in loaders import their adapter on call; their signatures are the adapters' (a union
    passes each member only the options its loader takes)."""
    import inspect

    from ferbench.data.fer2013 import load_fer2013, load_ferplus
    from ferbench.data.folder import load_ckplus
    from ferbench.data.registry import get_spec

    for name, real in (("fer2013", load_fer2013), ("ferplus", load_ferplus), ("ckplus", load_ckplus)):
        ours, theirs = inspect.signature(get_spec(name).loader), inspect.signature(real)
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()], name


def test_model_name_check_defers_to_the_registry_when_the_table_is_stale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbench.models import model_info, table

    with pytest.raises(FerbenchError, match="unknown model 'resnet18_dx'. Did you mean: resnet18_dd"):
        table.check_model_name("resnet18_dx")
    table.check_model_name("resnet18_s001")  # an alias is a name
    stale = tmp_path / "cost_table.json"
    stale.write_text('{"sources_sha1": "0"}')
    monkeypatch.setattr(table, "COST_TABLE_SOURCES", stale)
    table.check_model_name("resnet18_dx")  # cannot tell from a stale table: the registry answers later
    with pytest.raises(FerbenchError, match="unknown model 'resnet18_dx'. Did you mean: resnet18_dd"):
        model_info("resnet18_dx")


def test_shipped_cost_table_covers_the_registry_and_matches_a_fresh_count() -> None:
    from ferbench.models import list_models, model_info
    from ferbench.models.cost import model_cost
    from ferbench.models.table import COST_TABLE, COST_TABLE_SOURCES, models_sources_sha1, shipped_rows

    assert json.loads(COST_TABLE_SOURCES.read_text())["sources_sha1"] == models_sources_sha1(), (
        "models/ changed since the shipped cost table was counted: run "
        "`ferbench models list --recompute --csv src/ferbench/models/cost_table.csv`")
    rows = {r["name"]: r for r in shipped_rows("*") or []}
    networks = {model_info(n).network for n in list_models("*", include_aliases=True)}
    assert COST_TABLE.is_file() and set(rows) == networks
    for name in networks:  # the aliases column is the registry's
        assert set(str(rows[name]["aliases"] or "").split()) == set(model_info(name).aliases), name
    # a paper's name (an alias) selects its network, as in the registry
    assert [r["name"] for r in shipped_rows("resnet50_vf") or []] == ["resnet50"]
    for name in ("lenet5", "fer_vgg_s"):
        fresh = model_cost(name).as_row()
        for k in ("params", "params_224"):
            assert rows[name][k] == fresh[k], (name, k)
        for k in ("gflops_48", "gflops_224"):
            assert rows[name][k] == pytest.approx(fresh[k], abs=1e-4), (name, k)


def test_import_ferbench_changes_no_environment_and_loads_no_torch() -> None:
    code = ("import os, sys, ferbench; print('HF_HUB_OFFLINE' in os.environ, 'torch' in sys.modules, "
            "'typer' in sys.modules)")
    p = run_py(["-c", code])
    assert p.returncode == 0 and p.stdout.split() == ["False", "False", "False"], p.stderr
    # building models keeps the hub offline (set before timm loads huggingface_hub) ...
    code = "import os, ferbench.models; import huggingface_hub.constants as c; print(os.environ.get('HF_HUB_OFFLINE'), c.HF_HUB_OFFLINE)"
    assert run_py(["-c", code]).stdout.split() == ["1", "True"]


def test_hub_offline_respects_the_users_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as c

    from ferbench.models._offline import ensure_hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    ensure_hub_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and c.HF_HUB_OFFLINE is False  # the user's value wins
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    ensure_hub_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and c.HF_HUB_OFFLINE is True  # an already imported hub too


def test_console_is_wide_when_piped() -> None:
    from rich.table import Table

    from ferbench.progress import PIPE_WIDTH, console

    con = console()  # pytest captures stdout: not a terminal
    assert con.width == PIPE_WIDTH
    t = Table()
    for i in range(12):
        t.add_column(f"column {i}", justify="right")
    t.add_row(*[f"{25_000 + i:,}" for i in range(12)])
    with con.capture() as cap:
        con.print(t)
    assert all(f"{25_000 + i:,}" in cap.get() for i in range(12))


def test_epoch_progress_lines_mode_on_a_terminal() -> None:
    """``"lines"`` (what a sweep asks for) prints one stamped line per epoch through ``say`` even on a terminal,
    where ``True`` would start a bar; a LineLog's own ``line`` is not stamped twice."""
    import io

    from ferbench.progress import EpochProgress, LineLog

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    row = {"epoch": 3, "time_s": 1.0, "train_loss": 1.0, "val_accuracy": 0.5}
    got: list[str] = []
    p = EpochProgress("lines", 60, 2, say=got.append, stream=Tty())
    assert not p.bar and p.lines
    p.epoch_done(row)
    p.close()
    assert len(got) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch 3/60 .*val_acc 0.5000 .*", got[0])
    out = io.StringIO()
    EpochProgress("lines", 60, 2, say=LineLog(out).line).epoch_done(row)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch 3/60 [^:]*\n", out.getvalue())  # one stamp
    bar = EpochProgress(True, 60, 2, say=got.append, stream=Tty())
    assert bar.bar is True and not bar.lines
    bar.close()


def test_sweep_trial_numbers() -> None:
    from ferbench.cli.sweep import _trial_numbers

    rec = {"test_accuracy": 0.61234, "epochs": 12, "train_time_s": 118.4,
           "history": [{"images_per_s": 1400.0}, {"images_per_s": 1500.0}]}
    assert _trial_numbers(rec) == ", test 0.6123, 12 epochs, 118 s, 1450 img/s"


def test_sweep_writes_plain_lines_per_trial_and_epoch_when_piped(tiny_root: Path, tmp_path: Path) -> None:
    from test_sweep import _study

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n")
    r = cli("sweep", str(p), "--out", str(tmp_path / "study"), "--data-root", str(tiny_root))
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if re.search(r"trial \d \(study of 2\) done", x)]
    assert len(lines) == 2, r.output
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", x) and "img/s" in x and "2 epochs" in x for x in lines)
    epochs = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch ([12])/2 ", r.output, re.M)
    assert epochs == ["1", "2", "1", "2"], r.output  # two trials, each epoch once, one timestamp per line
    assert "━" not in r.output


def test_a_stale_cost_table_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ferbench.models import table as m

    table, stamp = tmp_path / "cost_table.csv", tmp_path / "cost_table.json"
    shutil.copy(m.COST_TABLE, table)
    monkeypatch.setattr(m, "COST_TABLE", table)
    monkeypatch.setattr(m, "COST_TABLE_SOURCES", stamp)
    assert m.shipped_rows("*") is None  # no stamp
    stamp.write_text(json.dumps({"sources_sha1": "0" * 40}))
    assert m.shipped_rows("*") is None  # models/ changed since: `models list` counts afresh
    stamp.write_text(json.dumps({"sources_sha1": m.models_sources_sha1()}))
    assert len(m.shipped_rows("*") or []) == len(table.read_text().splitlines()) - 1
