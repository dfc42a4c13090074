"""``ferbench predict | export | serve`` and ``ferbench data import``: use a trained model on real inputs."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer

from ferbench.errors import FerbenchError

ModelOpt = typer.Option("default", "--model", "-m",
                        help="'default' (shipped model), a run dir, a .safetensors checkpoint, or a .onnx / .tflite export.")
DetectorOpt = typer.Option("blazeface", "--detector", "-d", help="Face detector: blazeface (default, CNN), "
                           "blazeface-fast (one pass: big faces only), blazeface-accurate (finds more small faces, slower), blazeface-full, haar, mediapipe, mtcnn.")
PredictDetectorOpt = typer.Option("blazeface", "--detector", "-d", help="Face detector: blazeface (default, CNN), "
                                  "blazeface-fast (one pass: big faces only), blazeface-accurate (finds more small faces, slower), blazeface-full, haar, mediapipe, mtcnn; auto = images that "
                                  "are already face crops (small, or square with no face found) are classified whole.")
ThreadsOpt = typer.Option(None, "--threads", min=1, help="Threads for the detector and the classifier, "
                          "which run one after the other (default: detector 2 where there are 2 cores; classifier "
                          "1 where the CPU has int8 instructions (VNNI/AMX), else 2; use 1 on a busy machine).")
BackendOpt = typer.Option("auto", "--backend", help="How a PyTorch checkpoint runs: auto (onnx-int8 for "
                          "the shipped models, torch for others) | torch | onnx (fp32, exported once into "
                          "$FERBENCH_CACHE/onnx; same probabilities, 2-3x faster per face on a CPU) | onnx-int8 "
                          "(the static int8 export NAME.int8.onnx beside the checkpoint, shipped for the shipped "
                          "models; ~3x faster again on CPUs with VNNI/AMX, no faster on AVX2-only ones; accuracy within "
                          "0.1 point on their test sets).")


def shown(text: object) -> str:
    """``text`` safe for any console: bytes of non-UTF-8 file names (surrogates) become ``\\xNN``."""
    try:
        return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _err(msg: str) -> None:
    typer.secho(f"error: {shown(msg)}", fg="red", err=True)


def check_outputs(paths: list[Path], annotate: Path | None, outputs: list[Path | None]) -> None:
    """Refuse outputs that would land among the inputs (one line), before any model is loaded.

    ``--annotate`` may not be an input folder, inside one, or the folder of an input file (annotated
    ``NAME.jpg`` would overwrite ``NAME.jpg``); ``--json``/``--csv`` may not be an input file.
    """
    ins = [p.resolve() for p in paths if p.exists()]
    if annotate is not None:
        a = annotate.resolve()
        for p in ins:
            folder = p if p.is_dir() else p.parent
            if a == folder or (p.is_dir() and a.is_relative_to(p)):
                raise FerbenchError(f"--annotate {shown(annotate)}: is {'inside ' if a != folder else ''}the input "
                                    f"folder {shown(folder)}; annotated images would be written among the "
                                    f"inputs (pick another folder)")
    for o in outputs:
        if o is not None and o.resolve() in ins:
            raise FerbenchError(f"{shown(o)}: is one of the inputs; refusing to overwrite it")


def _face_line(faces: list[Any]) -> str:
    if not faces:
        return "no face"
    return "; ".join(f"{f.label} {f.confidence:.2f} box={list(f.box)}" + ("" if f.score is None else f" det={f.score}")
                     for f in faces)


def _csv_text(records: list[dict[str, Any]], classes: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "face", "x1", "y1", "x2", "y2", "det_score", "label", "confidence",
                *[f"p_{c}" for c in classes], "error"])
    for r in records:
        if r.get("error") or not r["faces"]:
            w.writerow([r["source"], "", "", "", "", "", "", "", "", *[""] * len(classes),
                        r.get("error") or "no face"])
        for i, f in enumerate(r.get("faces") or []):
            w.writerow([r["source"], i, *f["box"], "" if f["score"] is None else f["score"], f["label"],
                        f"{f['confidence']:.6f}", *[f"{f['probs'][c]:.6f}" for c in classes], ""])
    return buf.getvalue()


def _frames_csv(jsonl: Path, classes: list[str]) -> Path:
    """VIDEO.frames.jsonl → VIDEO.frames.csv: one row per face per frame, with its track_id."""
    from ferbench.persist.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", "time", "track_id", "x1", "y1", "x2", "y2", "det_score", "label", "confidence",
                *[f"p_{c}" for c in classes]])
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        for f in r["faces"]:
            w.writerow([r["frame"], r["time"], f.get("track_id", ""), *f["box"],
                        "" if f["score"] is None else f["score"], f["label"], f"{f['confidence']:.6f}",
                        *[f"{f['probs'][c]:.6f}" for c in classes]])
    out = jsonl.with_suffix(".csv")
    atomic_write_text(out, buf.getvalue())
    return out


def _unique(path: Path, used: set[Path]) -> Path:
    p, k = path, 1
    while p in used:
        p = path.with_name(f"{path.stem}_{k}{path.suffix}")
        k += 1
    used.add(p)
    return p


def predict(
    paths: list[str] = typer.Argument(None, help="Images, folders (walked recursively), globs ('crops/*.png', "
                                      "quoted), video files, http(s) URLs, rtsp:// / rtmp:// streams."),
    model: str = ModelOpt,
    detector: str = PredictDetectorOpt,
    json_out: Path | None = typer.Option(None, "--json", help="Write all results as JSON to this file."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write one row per face to this CSV file "
                                        "(combinable with --json)."),
    annotate: Path | None = typer.Option(None, "--annotate", help="Folder for annotated images / MP4s and "
                                         "per-frame JSONL of videos."),
    save: bool = typer.Option(True, "--save/--no-save", help="With no --json/--csv/--annotate: write "
                              "predictions.json (+ videos' JSONL) to the next free runs/predict/N folder."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images decoded + classified per batch."),
    no_detect: bool = typer.Option(False, "--no-detect", help="Inputs are already face crops: classify the "
                                   "whole image, no detection."),
    align: bool = typer.Option(False, "--align/--no-align", help="Rotate crops so the eyes are level (needs a "
                               "detector with landmarks: mediapipe, mtcnn)."),
    webcam: int | None = typer.Option(None, "--webcam", help="Camera index: live loop (q or Ctrl-C to stop)."),
    every: int = typer.Option(1, "--every", min=1, help="Videos: process every N-th frame."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Videos/webcam: stop after N frames."),
    detect_every: int = typer.Option(3, "--detect-every", min=1, help="Videos/webcam: run the detector on every "
                                     "K-th processed frame and track faces in between (1 = detect every frame)."),
    classify_every: int = typer.Option(1, "--classify-every", min=1, help="Videos/webcam: classify each tracked "
                                       "face on every K-th frame (it keeps its last probabilities in between; "
                                       "a new face is classified at once)."),
    smooth: float = typer.Option(0.6, "--smooth", min=0.0, max=0.99, help="Videos/webcam: per-face EMA of the "
                                 "probabilities over frames (weight of the past; 0 = off). Images: never smoothed."),
    threads: int | None = ThreadsOpt,
    log_every: int = typer.Option(100, "--log-every", min=1, help="Videos, output not a terminal: one log "
                                  "line every N processed frames."),
    device: str = typer.Option("auto", "--device", help="auto (a CUDA GPU when present) | cpu | cuda: where "
                               "a PyTorch model runs (ONNX/TFLite: CPU)."),
    backend: str = BackendOpt,
) -> None:
    """Detect faces and classify their expression in images, folders, globs, videos, URLs, streams or a webcam.

    One line per image on stdout. Missing inputs (or globs matching nothing) are reported before
    anything is loaded (exit code 2); unreadable images are reported one line each and skipped (exit
    code 1). Videos write per-frame JSONL (frame, time in seconds, faces, each face with a stable
    track_id) as VIDEO.frames.jsonl into the --annotate folder, else beside the --json/--csv file, else
    the automatic runs/predict/N folder (which also gets predictions.json); with --csv also
    VIDEO.frames.csv; with --annotate also VIDEO.annotated.mp4 (H.264) or .webm (VP9), whichever this
    OpenCV writes. URLs are downloaded into the output folder first. When the output is not a terminal,
    videos log one line every --log-every frames.
    """
    from ferbench.deploy.sources import is_url, next_run_dir, resolve_sources
    from ferbench.device import check_device_name

    device = check_device_name(device)
    if not paths and webcam is None:
        raise FerbenchError("nothing to do: give image/folder/video paths or --webcam INDEX")
    src = resolve_sources(list(paths or []))
    if src.missing:  # exit code 2 before anything heavy is imported
        for m in src.missing[:-1]:
            _err(m)
        raise FerbenchError(src.missing[-1] + (f" (and {len(src.missing) - 1} more missing inputs above)"
                                               if len(src.missing) > 1 else ""))
    local = [Path(p) for p in paths or [] if not is_url(p)] + src.images + src.videos
    check_outputs(local, annotate, [json_out, csv_out])
    from ferbench.deploy.formats import resolve_model_ref

    resolve_model_ref(model)  # a missing model too, before torch loads

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.deploy.sources import fetch_urls
    from ferbench.deploy.video import annotated_name, process_video, summary_dict
    from ferbench.device import recognizer_to
    from ferbench.progress import FrameProgress

    rec = recognizer_to(Recognizer.load(model, detector=detector, align=align, threads=threads, backend=backend),
                        device)
    # the automatic output folder is made only once the model loaded (a bad --model leaves nothing behind)
    auto_dir = next_run_dir() if save and not (json_out or csv_out or annotate) else None
    if auto_dir is not None:
        json_out = auto_dir / "predictions.json"
    detect = not no_detect
    out_dir = annotate or (json_out or csv_out or Path("predictions.json")).resolve().parent

    if webcam is not None:
        def show_line(i: int, t: float, faces: list[Any]) -> None:
            typer.echo(f"frame {i} t={t:.2f}s: {_face_line(faces)}")

        s = process_video(rec, webcam, out_dir / f"webcam{webcam}.jsonl", annotate / annotated_name(f"webcam{webcam}")
                          if annotate else None, every, max_frames, detect, show=True, on_frame=show_line,
                          detect_every=detect_every, smooth=smooth, classify_every=classify_every)
        typer.echo(json.dumps(summary_dict(s)))
        return

    problems: list[str] = []
    origin: dict[Path, str] = {}  # downloaded file -> its URL (what the results name as the source)
    if src.urls:
        origin, url_errors = fetch_urls(src, out_dir / "downloads")
        for e in url_errors:
            _err(e)
        problems += url_errors
    images, videos = src.images, [*src.videos, *src.streams]
    records: list[dict[str, Any]] = []
    video_summaries: list[dict[str, Any]] = []
    used: set[Path] = set()
    stopped: BaseException | None = None
    try:
        _predict_images(rec, images, records, problems, used, annotate, batch_size, detect, origin)
        for v in videos:
            stem = Path(str(v).split("?", 1)[0]).stem or "stream"
            jsonl = _unique(out_dir / f"{stem}.frames.jsonl", used)
            mp4 = _unique(annotate / annotated_name(stem), used) if annotate else None
            prog = FrameProgress(shown(origin.get(v, v)) if isinstance(v, Path) else v,
                                 _frame_count(v, every, max_frames), log_every, enabled=not sys.stderr.isatty())
            try:
                s = _predict_video(rec, v, jsonl, mp4, every, max_frames, detect, detect_every, smooth, prog,
                                   classify_every)
                if csv_out:
                    _frames_csv(jsonl, rec.classes)
            except FerbenchError as e:
                _err(str(e))
                problems.append(str(e))
                video_summaries.append({"source": str(v), "error": str(e)})
                continue
            finally:
                prog.close()
            typer.echo(shown(f"{origin.get(v, v)}: {s.frames} frames ({s.frames_with_face} with a face), {s.fps:.1f} frames/s "
                             f"-> {jsonl}" + (f", {mp4}" if mp4 else "")))
            video_summaries.append(summary_dict(s))
    except (Exception, KeyboardInterrupt) as e:  # keep what was computed: write it, then re-raise
        stopped = e

    from ferbench.persist.atomic import atomic_write_bytes, atomic_write_text

    done = f" (partial: stopped after {len(records)} of {len(images)} images)" if stopped else ""
    if json_out:
        atomic_write_text(json_out, json.dumps({"model": rec.source, "classes": rec.classes, "images": records,
                                                "videos": video_summaries, "complete": stopped is None}, indent=1))
        if auto_dir is None:  # the automatic folder is named once, on stderr (stdout: one line per input)
            typer.echo(shown(f"wrote {json_out}{done}"))
    if csv_out:  # file names that are not UTF-8 are written as their original bytes
        atomic_write_bytes(csv_out, _csv_text(records, rec.classes).encode("utf-8", "surrogateescape"))
        typer.echo(shown(f"wrote {csv_out}{done}"))
    if auto_dir is not None:
        typer.echo(shown(f"results saved to {auto_dir}{done}"), err=True)
    if stopped is not None:
        raise stopped
    n_in = len(images) + len(videos) + len(src.urls) - len(origin)
    if problems:
        typer.secho(f"{len(problems)} of {n_in} inputs could not be read (listed above)", fg="yellow", err=True)
        raise typer.Exit(1)


def _predict_video(rec: Any, v: Path | str, jsonl: Path, mp4: Path | None, every: int, max_frames: int | None,
                   detect: bool, detect_every: int, smooth: float, on_frame: Any = None,
                   classify_every: int = 1) -> Any:
    """One video (file or stream URL) through the tracked frame loop, with a progress bar showing frames/s on
    a terminal; ``on_frame`` (e.g. :class:`ferbench.progress.FrameProgress`) logs when it is not."""
    from rich.progress import Progress, TextColumn

    from ferbench.deploy.video import process_video

    with Progress(*Progress.get_default_columns(), TextColumn("{task.fields[fps]} frames/s"),
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(Path(str(v)).name, total=None, fps="-")
        return process_video(rec, v, jsonl, mp4, every, max_frames, detect, on_frame=on_frame,
                             detect_every=detect_every, classify_every=classify_every,
                             smooth=smooth, progress=lambda d, n, r: bar.update(task, completed=d, total=n,
                                                                                fps=f"{r:.1f}"))


BATCH_PIXELS = 64_000_000  # decoded pixels held at once by predict (a batch is cut early past this)


def _predict_images(rec: Any, images: list[Path], records: list[dict[str, Any]], problems: list[str],
                    used: set[Path], annotate: Path | None, batch_size: int, detect: bool,
                    origin: dict[Path, str] | None = None) -> None:
    """Decode and classify ``images`` in batches of ≤ ``batch_size`` files and ≤ BATCH_PIXELS pixels.

    Appends one record per image to ``records`` as soon as its batch is classified (so a later failure
    keeps them); unreadable images become records with ``error`` and a line in ``problems``. ``origin`` maps
    downloaded files to the URL the results name as their source.
    """
    origin = origin or {}
    import cv2
    from rich.progress import Progress

    from ferbench.data.images import read_image
    from ferbench.deploy.video import annotate as draw

    inputs = {f.resolve() for f in images}

    def flush(loaded: list[tuple[Path, Any]]) -> None:
        preds = rec.predict_batch([a for _, a in loaded], color="rgb", detect=detect, batch_size=256)
        for (f, rgb), faces in zip(loaded, preds, strict=True):
            typer.echo(shown(f"{origin.get(f, f)}: {_face_line(faces)}"))
            records.append({"source": origin.get(f, str(f)), "width": rgb.shape[1], "height": rgb.shape[0],
                            "no_face": not faces, "faces": [x.to_dict() for x in faces], "error": None})
            if annotate:
                annotate.mkdir(parents=True, exist_ok=True)
                dest = _unique(annotate / f"{f.stem}.jpg", used)
                if dest.resolve() in inputs:  # check_outputs makes this unreachable; never overwrite an input
                    raise FerbenchError(f"{shown(dest)}: is one of the inputs; refusing to overwrite it")
                cv2.imwrite(str(dest), draw(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces, rec.classes))

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("predict", total=len(images))
        loaded: list[tuple[Path, Any]] = []
        pixels = 0
        for f in images:
            try:
                a = read_image(f, rec.max_pixels)
            except FerbenchError as e:
                _err(str(e))
                problems.append(str(e))
                records.append({"source": origin.get(f, str(f)), "faces": [], "error": str(e)})
                bar.advance(task)
                continue
            loaded.append((f, a))
            pixels += a.shape[0] * a.shape[1]
            if len(loaded) >= batch_size or pixels >= BATCH_PIXELS:
                flush(loaded)
                bar.advance(task, len(loaded))
                loaded, pixels = [], 0
        if loaded:
            flush(loaded)
            bar.advance(task, len(loaded))


def _frame_count(source: Path | str, every: int, max_frames: int | None) -> int | None:
    """Frames the loop will process (for the progress bar / log lines); ``None`` for streams."""
    if not isinstance(source, Path):
        return max_frames
    import cv2

    cap = cv2.VideoCapture(str(source))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    if n <= 0:
        return max_frames
    n = -(-n // every)
    return min(n, max_frames) if max_frames else n


def export(
    model: str = typer.Argument("default", help="'default', a run dir or a .safetensors checkpoint."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx | onnx-int8 | tflite"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: next to the checkpoint, "
                                    "e.g. RUN_DIR/best.onnx; for a shipped model ./NAME.onnx in the current folder)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Where the datasets are (validation + "
                                          "int8 calibration images)."),
    n_val: int = typer.Option(1000, "--n-val", min=2, help="Validation images for the accuracy check."),
    n_calib: int = typer.Option(512, "--n-calib", min=1, help="Training images to calibrate int8 on."),
    weight_bits: int = typer.Option(8, "--int8-weight-bits", min=7, max=8,
                                    help="onnx-int8: 8, or 7 for x86 CPUs without VNNI (AVX2 only), where 7-bit "
                                    "weights run on onnxruntime's fast kernels (1.13x end to end measured; "
                                    "slightly less precise)."),
    synthetic: bool = typer.Option(False, "--synthetic", hidden=True,
                                   help="Tests only: noise images when no dataset is found."),
) -> None:
    """Export a checkpoint to ONNX, int8 ONNX (static QDQ) or TFLite, then check it against PyTorch.

    The check (max |Δprob| on a validation batch, accuracy before/after on a validation slice) is
    printed and stored in OUT.json beside the exported file.
    """
    from ferbench.cli.common import checkpoint_ref
    from ferbench.deploy.formats import check_format

    check_format(fmt)  # instant: before the checkpoint and 1,000 validation images are loaded
    if weight_bits != 8 and fmt != "onnx-int8":
        raise FerbenchError(f"--int8-weight-bits applies to --format onnx-int8, not {fmt}")
    ref = checkpoint_ref(model)  # a missing checkpoint too, before torch loads
    from ferbench.deploy.export import export_model

    path, chk = export_model(ref, fmt, out, data_root, n_val, n_calib, synthetic, log=typer.echo,
                             int8_weight_bits=weight_bits)
    typer.echo(f"wrote {path} ({chk['size_bytes'] / 1e6:.2f} MB) + {path.with_suffix('.json').name}")
    typer.echo(f"max |dprob| vs torch: {chk['max_abs_dprob']:.2e} (first {chk['n_check']}), "
               f"top-1 agreement {100 * chk['top1_agreement']:.2f} %")
    if chk["accuracy_torch"] is not None:
        typer.echo(f"accuracy on {chk['validation']}: torch {100 * chk['accuracy_torch']:.2f} % -> "
                   f"{fmt} {100 * chk['accuracy_export']:.2f} % ({chk['accuracy_delta_points']:+.2f} points)")
        if chk["accuracy_delta_points"] < -1.0:
            typer.secho(f"warning: {fmt} loses more than 1 accuracy point", fg="yellow", err=True)
    else:
        typer.echo("accuracy not measured (synthetic validation images)")


def serve(
    model: str = ModelOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 = all: mind who can reach it)."),
    port: int = typer.Option(8000, "--port", "-p"),
    max_bytes: int = typer.Option(10 * 1024 * 1024, "--max-bytes", min=1024, help="Largest accepted upload."),
    detector: str = DetectorOpt,
    device: str = typer.Option("auto", "--device", help="auto (a CUDA GPU when present) | cpu | cuda."),
) -> None:
    """Serve the model over HTTP: POST /predict, POST /predict/batch, GET /health, GET /models, GET / (web page),
    GET /docs and /redoc (offline). Errors are {"error": "one line"}; limits: see README "HTTP service"."""
    from ferbench.device import check_device_name

    device = check_device_name(device)
    from ferbench.deploy.formats import resolve_model_ref

    resolve_model_ref(model)  # a missing model fails before torch and the web stack load
    from ferbench.deploy.serve import serve as run

    run(model, host, port, max_bytes, detector, device=device)


def import_(
    source: str = typer.Argument(..., help="folder:PATH (or PATH) with <class>/ sub-folders of uncropped photos."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (cropped ImageFolder)."),
    detector: str = typer.Option("blazeface", "--detect", help="Face detector: blazeface (default), "
                                 "blazeface-fast, blazeface-accurate, blazeface-full, haar, mediapipe, mtcnn."),
    size: int = typer.Option(96, "--size", min=16, help="Output crop side in pixels."),
    margin: float = typer.Option(0.1, "--margin", min=0.0, help="Border around the face box (fraction of its side)."),
    grey: bool = typer.Option(False, "--grey/--colour", help="Write greyscale crops."),
    align: bool = typer.Option(False, "--align/--no-align", help="Level the eyes (detectors with landmarks)."),
) -> None:
    """Turn uncropped face photos (JAFFE/KDEF-style) into a cropped ImageFolder usable as folder:OUT."""
    from rich.progress import Progress

    from ferbench.faces.importer import import_faces

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("import", total=None)
        rep = import_faces(source, out, detector, size, margin, grey, align,
                           progress=lambda i, n: bar.update(task, completed=i, total=n))
    for p in rep.no_face:
        typer.echo(f"no face: {p}")
    for p in rep.unreadable:
        _err(p.split("\t", 1)[1])
    typer.echo(f"wrote {rep.written} crops to {out} ({len(rep.no_face)} without a face, {len(rep.unreadable)} "
               f"unreadable; log {rep.log})")


def register(app: typer.Typer) -> None:
    """Add predict/export/serve to ``app`` and ``import`` to the ``data`` group."""
    app.command("predict")(predict)
    app.command("export")(export)
    app.command("serve")(serve)
    try:
        from ferbench.cli.data import data_app
    except ImportError:  # the data group is not there: the library function still is
        return
    data_app.command("import")(import_)
