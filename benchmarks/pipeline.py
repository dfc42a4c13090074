"""The in-the-wild pipeline on real photos: detectors, tracking, crop framing, emotion accuracy, and `fer`.

    nice -n 10 .venv/bin/python benchmarks/pipeline.py [--model default] [--json runs/pipeline.json]
        [--fer-venv benchmarks/peers/.venv-fer]   # the `fer` peer, if that venv exists (see fer_peer.py)
        [--missed benchmarks/results/pipeline_missed.jpg]   # contact sheet of the faces the default missed

All numbers come from one run, so ratios compare. Inputs (all real photos, nothing synthetic):

1. **astronaut**: scikit-image's ``astronaut.png`` (public domain, NASA), scaled to 480×480 and centred
   in a 640×480 frame; the reference face box was measured once with blazeface.
2. **composites**: 1–4 faces from FER2013 PrivateTest and CK+48 (label known; CK+ contempt left out),
   upscaled to 64–200 px (bicubic) and pasted without overlap at known boxes onto real scikit-image
   photos (coffee, chelsea, rocket, hubble_deep_field, brick, grass, gravel, immunohistochemistry, moon),
   each resized to cover 640×480. The pasted square *is* the training framing (a FER2013/CK+48 crop).
3. **video**: 10 s at 25 frames/s, 640×480: 2–3 composite faces moving at constant speed (bouncing off
   the borders, crossing each other) over a real photo.

Printed (and written to ``--json``):

* per detector: median ms of ``detect`` alone and of ``Recognizer.predict`` (detect → crop → classify)
  on the astronaut frame, frames/s, faces found and IoU with the reference box;
* composites, per detector: recall and false positives per image at IoU ≥ 0.5, where a detection's
  box is first mapped to the training framing (square, ``margin``, ``shift`` fitted per detector as
  the median over matched faces) and compared with the pasted square;
* crop framing for the default detector: emotion accuracy vs ``crop_margin`` (with the fitted shift and
  with none) against the accuracy of the same faces' exact crops;
* video: frames/s detecting every frame vs detecting every k-th frame + tracking, track ids per true
  face, emotion accuracy per face-frame;
* the `fer` package (``FER().detect_emotions``, its own venv) on the same astronaut frame, composites and
  video frames: ms, recall/false positives (same matching, framing fitted for its boxes), accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _timing import timeit as _timeit  # benchmarks/ is on sys.path: scripts run as benchmarks/X.py

REF_ASTRONAUT_BOX = (178.1, 80.9, 272.1, 175.0)  # blazeface on the raw 512×512 astronaut, measured once
BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "grass", "gravel",
               "immunohistochemistry", "moon")


def astronaut_frame() -> tuple[np.ndarray, np.ndarray]:
    """The 640×480 RGB astronaut frame and its reference face box ``(4,)``."""
    from skimage import data

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    box = np.array(REF_ASTRONAUT_BOX, np.float32) * (480 / 512) + np.array([80, 0, 80, 0], np.float32)
    return frame, box


def cover(img: np.ndarray, w: int = 640, h: int = 480) -> np.ndarray:
    """Resize + centre-crop a photo to exactly ``h×w`` RGB."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = img[..., :3]
    s = max(w / img.shape[1], h / img.shape[0])
    r = cv2.resize(img, (max(w, round(img.shape[1] * s)), max(h, round(img.shape[0] * s))),
                   interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (r.shape[0] - h) // 2, (r.shape[1] - w) // 2
    return np.ascontiguousarray(r[y0:y0 + h, x0:x0 + w])


def backgrounds() -> dict[str, np.ndarray]:
    from skimage import data

    return {n: cover(getattr(data, n)()) for n in BACKGROUNDS}


def face_pool(data_root: str | None, classes: list[str], n: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` 48×48 grey faces (half FER2013 PrivateTest, half CK+48), labels in ``classes``' index, sources.

    FER2013's few non-face images (text, icons) stay in, counted as faces for every detector alike: FER+'s
    "not a face" votes cannot pick them out (PrivateTest's 16 images with 10 of 10 such votes, 15 of them
    without an image name in FER+, are 7 non-faces and 9 real faces, looked at one by one on 2026-12-05).
    """
    from ferbench.data import load_dataset
    from ferbench.data.taxonomy import class_mapping

    fer = load_dataset("fer2013", data_root).split("PrivateTest")
    ck = load_dataset("ckplus", data_root)
    faces, labels, src = [], [], []
    for ds, name, k in ((fer, "fer2013-PrivateTest", n - n // 2), (ck, "ckplus48", n // 2)):
        m = class_mapping(list(ds.classes), classes)
        y = ds.labels.numpy()
        ok = np.array([int(v) in m for v in y])
        idx = rng.choice(np.flatnonzero(ok), size=min(k, int(ok.sum())), replace=False)
        imgs = ds.images.numpy()
        for i in idx:
            faces.append(imgs[i, ..., 0])
            labels.append(m[int(y[i])])
            src.append(f"{name}#{int(i)}")
    return np.stack(faces), np.array(labels), src


def composites(pool: np.ndarray, labels: np.ndarray, bgs: dict[str, np.ndarray], n_images: int,
               rng: np.random.Generator) -> list[dict[str, Any]]:
    """Composite photos: 1–4 pool faces at 64–200 px, no overlap, known boxes/labels/exact crops."""
    out, k = [], 0
    names = list(bgs)
    for i in range(n_images):
        img = bgs[names[i % len(names)]].copy()
        boxes, labs, crops, srcs = [], [], [], []
        for _ in range(int(rng.integers(1, 5))):
            for _try in range(50):
                s = int(rng.integers(64, 201))
                x, y = int(rng.integers(0, 640 - s)), int(rng.integers(0, 480 - s))
                b = np.array([x, y, x + s, y + s], np.float32)
                pad = 0.15 * s
                if all(b[0] - pad > o[2] or b[2] + pad < o[0] or b[1] - pad > o[3] or b[3] + pad < o[1]
                       for o in boxes):
                    face = pool[k % len(pool)]
                    img[y:y + s, x:x + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC)[..., None]
                    boxes.append(b)
                    labs.append(int(labels[k % len(pool)]))
                    crops.append(face)
                    srcs.append(int(k % len(pool)))
                    k += 1
                    break
        out.append({"image": img, "boxes": np.stack(boxes), "labels": np.array(labs), "crops": crops,
                    "pool_index": srcs, "background": names[i % len(names)]})
    return out


def match(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> list[tuple[int, int]]:
    """Hungarian matching of boxes at IoU ≥ ``thr`` → ``[(pred_i, gt_j)]``."""
    from scipy.optimize import linear_sum_assignment

    from ferbench.faces import iou_matrix

    if len(pred) == 0 or len(gt) == 0:
        return []
    iou = iou_matrix(pred, gt)
    r, c = linear_sum_assignment(-iou)
    return [(int(i), int(j)) for i, j in zip(r, c, strict=True) if iou[i, j] >= thr]


def fit_framing(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Median ``(margin, shift)`` mapping detector boxes onto their true crop squares.

    ``pairs``: (detector box, true square). margin = (side_true / max(w, h) − 1) / 2,
    shift = (cy_true − cy_det) / max(w, h) (+ = down); horizontal offsets are ~0 for frontal faces.
    """
    if not pairs:
        return 0.1, 0.0
    ms, ss = [], []
    for d, g in pairs:
        base = max(d[2] - d[0], d[3] - d[1])
        ms.append(((g[2] - g[0]) / base - 1) / 2)
        ss.append(((g[1] + g[3]) / 2 - (d[1] + d[3]) / 2) / base)
    return float(np.median(ms)), float(np.median(ss))


def centre_pairs(dets: list[np.ndarray], comps: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(detection, true square) pairs where the detection's centre lies in the middle half of one square."""
    pairs = []
    for boxes, c in zip(dets, comps, strict=True):
        for d in boxes:
            cx, cy = (d[0] + d[2]) / 2, (d[1] + d[3]) / 2
            for g in c["boxes"]:
                q = (g[2] - g[0]) / 4
                if g[0] + q < cx < g[2] - q and g[1] + q < cy < g[3] - q:
                    pairs.append((d, g))
    return pairs


def missed_montage(dets: list[np.ndarray], comps: list[dict[str, Any]], margin: float, shift: float,
                   sources: list[str], path: Path, cols: int = 10, tile: int = 128) -> int:
    """Write an image (JPEG/PNG by suffix) of every composite face the detector missed (IoU < 0.5 after framing): each tile is
    the pasted square with half its side of background around it, labelled with its side in pixels, the
    background, its source row and the best framed IoU any detection reached; returns the count."""
    from ferbench.faces import iou_matrix

    tiles = []
    for boxes, c in zip(dets, comps, strict=True):
        fb = framed(boxes, margin, shift)
        hit = {j for _, j in match(fb, c["boxes"])}
        for j, g in enumerate(c["boxes"]):
            if j in hit:
                continue
            x0, y0, x1, y1 = (int(v) for v in g)
            p = (x1 - x0) // 2
            t = cv2.resize(c["image"][max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p], (tile, tile))
            t = np.ascontiguousarray(np.repeat(t[..., None], 3, 2) if t.ndim == 2 else t)
            best = float(iou_matrix(fb, g[None]).max()) if len(fb) else 0.0
            for k, text in enumerate((f"{x1 - x0}px {c['background'][:8]}", sources[c["pool_index"][j]],
                                      f"best IoU {best:.2f}")):
                cv2.putText(t, text, (2, 12 + 12 * k if k < 2 else tile - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                            (255, 255, 0), 1, cv2.LINE_AA)
            tiles.append(t)
    n = len(tiles)
    if tiles:
        tiles += [np.zeros_like(tiles[0])] * (-n % cols)
        sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return n


def framed(boxes: np.ndarray, margin: float, shift: float) -> np.ndarray:
    from ferbench.faces import square_box

    return np.stack([square_box(b, margin, shift) for b in boxes]) if len(boxes) else np.zeros((0, 4), np.float32)


def detection_scores(dets: list[np.ndarray], comps: list[dict[str, Any]], margin: float, shift: float,
                     sources: list[str] | None = None) -> dict[str, Any]:
    """Recall and false positives per image at IoU ≥ 0.5; with ``sources`` (the pool's ``dataset#row``
    names) also the recall per source dataset."""
    n_gt = sum(len(c["boxes"]) for c in comps)
    tp = fp = 0
    per: dict[str, list[int]] = {}  # source dataset -> [faces, found]
    for boxes, c in zip(dets, comps, strict=True):
        m = match(framed(boxes, margin, shift), c["boxes"])
        tp += len(m)
        fp += len(boxes) - len(m)
        if sources is not None:
            hit = {j for _, j in m}
            for j, k in enumerate(c["pool_index"]):
                a = per.setdefault(sources[k].split("#")[0], [0, 0])
                a[0] += 1
                a[1] += j in hit
    out = {"recall": tp / n_gt, "fp_per_image": fp / len(comps), "faces": n_gt, "images": len(comps),
           "margin": round(margin, 3), "shift": round(shift, 3)}
    if per:
        out["recall_by_source"] = {k: round(h / n, 4) for k, (n, h) in sorted(per.items())}
    return out


def video_scenes(pool: np.ndarray, labels: np.ndarray, bgs: dict[str, np.ndarray], rng: np.random.Generator,
                 seconds: float = 10.0, fps: float = 25.0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Frames (RGB 640×480), per-frame true squares ``(F, 4)``, and the faces' labels ``(F,)``."""
    n_frames = int(seconds * fps)
    names = ["coffee", "rocket", "chelsea"]
    frames, truth = [], []
    n_faces = 3
    idx = rng.choice(len(pool), n_faces, replace=False)
    sizes = rng.integers(90, 161, n_faces)
    pos = np.stack([rng.uniform(0, 640 - sizes), rng.uniform(0, 480 - sizes)], 1)
    vel = rng.uniform(-6, 6, (n_faces, 2))
    vel[np.abs(vel) < 2] = 3.0
    resized = [cv2.resize(pool[i], (int(s), int(s)), interpolation=cv2.INTER_CUBIC) for i, s in zip(idx, sizes, strict=True)]
    for f in range(n_frames):
        img = bgs[names[(f * len(names)) // n_frames]].copy()  # three scenes in a row (cuts, as in real footage)
        boxes = []
        for k in range(n_faces):
            s = int(sizes[k])
            x, y = int(pos[k, 0]), int(pos[k, 1])
            img[y:y + s, x:x + s] = resized[k][..., None]
            boxes.append([x, y, x + s, y + s])
            pos[k] += vel[k]
            for d, lim in ((0, 640 - s), (1, 480 - s)):
                if not 0 <= pos[k, d] <= lim:
                    vel[k, d] *= -1
                    pos[k, d] = np.clip(pos[k, d], 0, lim)
        frames.append(img)
        truth.append(np.array(boxes, np.float32))
    return frames, truth, labels[idx]


def video_scores(outs: list[list[Any]], truth: list[np.ndarray], labels: np.ndarray, classes: list[str],
                 margin: float, shift: float) -> tuple[float, float, float]:
    """A video's per-frame faces against its true squares → (face-frames found, emotion accuracy, track ids per
    face), each face's box framed with ``margin`` / ``shift`` and matched at IoU ≥ 0.3; both rates count every true
    face of every frame."""
    ids: dict[int, set[int]] = {j: set() for j in range(len(labels))}
    hit = correct = 0
    for faces, boxes_true in zip(outs, truth, strict=True):
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        for i, j in match(framed(boxes, margin, shift), boxes_true, 0.3):
            hit += 1
            correct += classes.index(faces[i].label) == labels[j]
            if faces[i].track_id is not None:
                ids[j].add(faces[i].track_id)
    n = len(outs) * len(labels)
    return hit / n, correct / n, float(np.mean([len(v) for v in ids.values()]))


def run_fer_peer(venv: Path, arrays: dict[str, np.ndarray], reps: int) -> dict[str, Any] | None:
    """``FER().detect_emotions`` on the same frames, in fer's own venv (benchmarks/peers/fer_pipeline_peer.py)."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"fer peer: skipped ({py} not found; build it as benchmarks/peers/fer_peer.py says)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="ferbench-pipeline-") as d:
        npz, out = Path(d) / "frames.npz", Path(d) / "fer.json"
        np.savez(npz, **arrays)
        script = Path(__file__).resolve().parent / "peers" / "fer_pipeline_peer.py"
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("PYTHONPATH", None)
        r = subprocess.run([str(py), str(script), str(npz), str(out), "--reps", str(reps)], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"fer peer failed: {r.stderr[-800:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def main() -> None:  # noqa: C901 — one linear report
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None, help="Recognizer threads (default: its own: classifier 1, detector 2 where there are 2 cores)")
    ap.add_argument("--reps", type=int, default=50, help="timed repetitions on the astronaut frame")
    ap.add_argument("--composites", type=int, default=200, help="composite photos")
    ap.add_argument("--seed", type=int, default=1,
                    help="composites/video seed (the default detector's thresholds were chosen on seed 0)")
    ap.add_argument("--detectors", default="blazeface,blazeface-fast,blazeface-accurate,blazeface-full,haar,mediapipe,mtcnn")
    ap.add_argument("--detect-every", default="3,5,3/3,5/5",
                    help="tracking rows for the video: K (detect every K-th frame) or K/C (and classify every C-th)")
    ap.add_argument("--margins", default="0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4")
    ap.add_argument("--fer-venv", type=Path, default=Path(__file__).resolve().parent / "peers" / ".venv-fer")
    ap.add_argument("--no-fer", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--missed", type=Path, default=None,
                    help="write a contact sheet (.jpg/.png) of the composite faces the default detector missed")
    args = ap.parse_args()

    from ferbench.deploy.recognizer import Recognizer
    from ferbench.deploy.video import FrameRecognizer
    from ferbench.errors import FerbenchError
    from ferbench.faces import DEFAULT_DETECTOR, crop_face, iou_matrix

    rng = np.random.default_rng(args.seed)
    t_start = time.time()
    from ferbench.device import (
        BF16_FLAGS,
        INT8_DOT_FLAGS,
        cpu_flags,
        cpu_int8_dot,
        cpu_int8_matrix,
        machine_info,
    )

    # the machine class decides the figures (int8 and bf16 instructions: 151 vs 43 FPS, deploy.md)
    simd = [f for f in ("avx2", "avx512f", *INT8_DOT_FLAGS, *BF16_FLAGS) if f in cpu_flags()]
    res: dict[str, Any] = {"model": args.model, "load_avg_start": os.getloadavg(), "cpu_count": os.cpu_count(),
                           "platform": platform.platform(), "python": sys.version.split()[0],
                           "cpu": machine_info()["cpu"], "cpu_simd": simd, "cpu_int8_dot": cpu_int8_dot(),
                           "cpu_int8_matrix": cpu_int8_matrix()}
    base = Recognizer.load(args.model, threads=args.threads)
    classes = base.classes
    res["threads"] = base.threads
    res["detector_threads"] = base.detector_threads
    res["backend"] = base.backend
    frame, ref = astronaut_frame()
    bgs = backgrounds()
    pool, pool_labels, pool_src = face_pool(args.data_root, classes, 2 * args.composites, rng)
    comps = composites(pool, pool_labels, bgs, args.composites, rng)
    n_faces = sum(len(c["boxes"]) for c in comps)
    print(f"model {args.model} ({base!r}); {len(comps)} composites with {n_faces} faces; "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; {res['cpu']} ({', '.join(simd) or 'no AVX2'})",
          flush=True)

    # ---- detectors: astronaut timing + composite detection ---------------------------------------
    det_rows, recs = [], {}
    for name in args.detectors.split(","):
        try:
            rec = Recognizer.load(args.model, detector=name, threads=args.threads)
        except FerbenchError as e:
            print(f"{name}: skipped ({e})", file=sys.stderr)
            det_rows.append({"detector": name, "skipped": str(e)})
            continue
        recs[name] = rec
        det = rec.detector
        # as many frames as the threads grid below (2 × --reps) and a longer warm-up: with 50 frames right after
        # loading, this figure moved 8.9 → 13.5 ms between two runs whose grid held at 10.5 (deploy.md, 2026-12-06)
        n = max(5, 2 * args.reps // (5 if name in ("mtcnn", "haar") else 1))
        t_det = _timeit(lambda d=det: d.detect(frame), n, warmup=10)
        t_e2e = _timeit(lambda r=rec: r.predict(frame, color="rgb"), n, warmup=10)
        found = det.detect(frame)
        iou = float(iou_matrix(found.boxes[:1], ref[None])[0, 0]) if len(found) else 0.0
        t0 = time.perf_counter()
        dets = [det.detect(c["image"]).boxes for c in comps]
        comp_ms = 1000 * (time.perf_counter() - t0) / len(comps)
        margin, shift = fit_framing(centre_pairs(dets, comps))
        row = {"detector": name, "astronaut_detect_ms": 1000 * statistics.median(t_det),
               "astronaut_e2e_ms": 1000 * statistics.median(t_e2e), "astronaut_faces": len(found),
               "astronaut_iou": iou, "composite_detect_ms": comp_ms,
               **detection_scores(dets, comps, margin, shift, pool_src)}
        row["astronaut_fps"] = 1000 / row["astronaut_e2e_ms"]
        row["_dets"] = dets
        det_rows.append(row)
        print(f"{name}: astronaut detect {row['astronaut_detect_ms']:.2f} ms, end-to-end {row['astronaut_e2e_ms']:.2f} ms "
              f"({row['astronaut_fps']:.0f} FPS), faces {len(found)}, IoU {iou:.2f}; composites recall "
              f"{100 * row['recall']:.1f} % {row.get('recall_by_source', '')}, FP/image {row['fp_per_image']:.3f} (framing m={margin:.3f}, s={shift:.3f})",
              flush=True)

    # ---- astronaut end to end: detector x threads x classifier backend ----------------------------
    grid = []
    for name in ("blazeface", "blazeface-fast"):
        for th in (1, 2):
            for be in ("onnx-int8", "onnx", "torch"):
                try:
                    r = Recognizer.load(args.model, detector=name, threads=th, backend=be)
                except FerbenchError as e:  # no int8 export beside a user checkpoint
                    print(f"astronaut end to end: {name}, {be}: skipped ({e})", flush=True)
                    continue
                ms = 1000 * statistics.median(_timeit(lambda r=r: r.predict(frame, color="rgb"), 2 * args.reps))
                grid.append({"detector": name, "threads": th, "backend": be, "astronaut_e2e_ms": ms})
                print(f"astronaut end to end: {name}, threads {th}, {be}: {ms:.2f} ms ({1000 / ms:.0f} FPS)", flush=True)
    res["astronaut_grid"] = grid

    # ---- crop framing vs accuracy (default detector) ---------------------------------------------
    exact = base.classify_arrays([c[..., None] for comp in comps for c in comp["crops"]]).argmax(1)
    y_all = np.concatenate([c["labels"] for c in comps])
    acc_exact = float((exact == y_all).mean())
    framing_rows = []
    drow = next((r for r in det_rows if r.get("detector") == DEFAULT_DETECTOR and "_dets" in r), None)
    if drow is not None:
        dets = drow["_dets"]
        fit_m, fit_s = drow["margin"], drow["shift"]
        pairs = []  # (comp index, det box, gt index) matched with the fitted framing
        for ci, (boxes, c) in enumerate(zip(dets, comps, strict=True)):
            for i, j in match(framed(boxes, fit_m, fit_s), c["boxes"]):
                pairs.append((ci, boxes[i], j))
        gt_off = np.cumsum([0] + [len(c["boxes"]) for c in comps])
        sel = np.array([gt_off[ci] + j for ci, _, j in pairs], int)
        acc_exact_matched = float((exact[sel] == y_all[sel]).mean()) if len(sel) else float("nan")
        for shift in sorted({0.0, round(fit_s, 3)}):
            for m in [float(v) for v in args.margins.split(",")] + [round(fit_m, 3)]:
                crops = [crop_face(comps[ci]["image"], b, m, shift=shift) for ci, b, _ in pairs]
                pred = base.classify_arrays(crops).argmax(1)
                framing_rows.append({"margin": m, "shift": shift, "accuracy": float((pred == y_all[sel]).mean()),
                                     "n": len(sel), "fitted": m == round(fit_m, 3)})
        best = max(framing_rows, key=lambda r: r["accuracy"])
        res["framing"] = {"detector": DEFAULT_DETECTOR, "fitted_margin": fit_m, "fitted_shift": fit_s,
                          "exact_crop_accuracy_matched": acc_exact_matched, "rows": framing_rows, "best": best,
                          "sidecar": base.preprocessing.to_dict()}
        print(f"framing ({DEFAULT_DETECTOR}): fitted margin {fit_m:.3f}, shift {fit_s:.3f}; exact crops "
              f"{100 * acc_exact_matched:.2f} % on the {len(sel)} matched faces; best "
              f"m={best['margin']} s={best['shift']} {100 * best['accuracy']:.2f} %", flush=True)
        for r in framing_rows:
            print(f"  margin {r['margin']:.3f} shift {r['shift']:.3f}: {100 * r['accuracy']:.2f} %")
        if args.missed is not None:
            n_missed = missed_montage(dets, comps, fit_m, fit_s, pool_src, args.missed)
            print(f"{n_missed} missed faces ({DEFAULT_DETECTOR}) -> {args.missed}", flush=True)

    # ---- end-to-end accuracy on composites (sidecar framing, each detector) ----------------------
    for row in det_rows:
        if "_dets" not in row:
            continue
        rec = recs[row["detector"]]
        preds = rec.predict_batch([c["image"] for c in comps], color="rgb")
        correct = tot = correct_det = n_det = 0
        for faces, c in zip(preds, comps, strict=True):
            boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
            m = dict((j, i) for i, j in match(framed(boxes, row["margin"], row["shift"]), c["boxes"]))
            for j, lab in enumerate(c["labels"]):
                tot += 1
                if j in m:
                    n_det += 1
                    ok = classes.index(faces[m[j]].label) == lab
                    correct += ok
                    correct_det += ok
        row["emotion_acc_all_faces"] = correct / tot
        row["emotion_acc_detected"] = correct_det / max(1, n_det)
    res["exact_crop_accuracy"] = acc_exact
    print(f"exact crops: {100 * acc_exact:.2f} % on all {len(y_all)} composite faces", flush=True)
    for row in det_rows:
        if "emotion_acc_all_faces" in row:
            print(f"  {row['detector']}: end-to-end {100 * row['emotion_acc_all_faces']:.2f} % of all faces "
                  f"({100 * row['emotion_acc_detected']:.2f} % of detected ones)")

    # ---- video: detect every frame vs tracking ---------------------------------------------------
    vframes, vtruth, vlabels = video_scenes(pool, pool_labels, bgs, rng)
    video_rows = []
    for spec in ["1"] + args.detect_every.split(","):
        k, c = (int(v) for v in (spec.split("/") if "/" in spec else (spec, "1")))
        fr = FrameRecognizer(base, detect_every=k, smooth=0.6 if k > 1 else 0.0, classify_every=c)
        outs = []
        t0 = time.perf_counter()
        for f in vframes:
            outs.append(fr(f, "rgb"))
        dt = time.perf_counter() - t0
        found, acc, ids = video_scores(outs, vtruth, vlabels, classes, drow["margin"] if drow else 0.1,
                                       drow["shift"] if drow else 0.0)
        row = {"detect_every": k, "classify_every": c, "tracking": k > 1, "smooth": fr.smooth, "frames": len(vframes),
               "ms_per_frame": 1000 * dt / len(vframes), "fps": len(vframes) / dt, "face_frames_found": found,
               "emotion_acc": acc, "track_ids_per_face": ids if k > 1 else None}
        video_rows.append(row)
        print(f"video detect every {k}{' + tracking' if k > 1 else ''}, classify every {c}: "
              f"{row['ms_per_frame']:.2f} ms/frame "
              f"({row['fps']:.0f} FPS), face-frames found {100 * row['face_frames_found']:.1f} %, "
              f"emotion acc {100 * row['emotion_acc']:.1f} %, ids/face {row['track_ids_per_face']}", flush=True)
    res["video"] = video_rows

    # ---- fer peer ----------------------------------------------------------------------------------
    fer = None
    if not args.no_fer:
        fer = run_fer_peer(args.fer_venv, {"astronaut": frame, "composites": np.stack([c["image"] for c in comps]),
                                           "video": np.stack(vframes[:100])}, args.reps)
    if fer is not None:
        fdets = [np.array(b, np.float32).reshape(-1, 4) for b in fer["composite_boxes"]]
        fm, fs = fit_framing(centre_pairs(fdets, comps))
        fer_row = {"detector": "fer (FER().detect_emotions, OpenCV Haar)", **detection_scores(fdets, comps, fm, fs, pool_src),
                   "astronaut_e2e_ms": fer["astronaut_ms"], "astronaut_fps": 1000 / fer["astronaut_ms"],
                   "astronaut_faces": len(fer["astronaut_boxes"]), "video_ms_per_frame": fer["video_ms"],
                   "version": fer.get("versions")}
        ab = np.array(fer["astronaut_boxes"], np.float32).reshape(-1, 4)
        fer_row["astronaut_iou"] = float(iou_matrix(ab[:1], ref[None])[0, 0]) if len(ab) else 0.0
        correct = 0
        for boxes, labs, c in zip(fdets, fer["composite_labels"], comps, strict=True):
            for i, j in match(framed(boxes, fm, fs), c["boxes"]):
                correct += labs[i] == classes[c["labels"][j]]
        fer_row["emotion_acc_all_faces"] = correct / n_faces
        res["fer"] = fer_row
        ours = next(r for r in det_rows if r.get("detector") == DEFAULT_DETECTOR)
        res["ratio_vs_fer_astronaut_fps"] = ours["astronaut_fps"] / fer_row["astronaut_fps"]
        print(f"fer: astronaut {fer['astronaut_ms']:.2f} ms ({fer_row['astronaut_fps']:.1f} FPS), composites recall "
              f"{100 * fer_row['recall']:.1f} %, FP/image {fer_row['fp_per_image']:.3f}, emotion acc "
              f"{100 * fer_row['emotion_acc_all_faces']:.2f} %, video {fer['video_ms']:.2f} ms/frame; "
              f"ferbench {DEFAULT_DETECTOR} / fer FPS = {res['ratio_vs_fer_astronaut_fps']:.1f}x", flush=True)

    for r in det_rows:
        r.pop("_dets", None)
    res["detectors"] = det_rows
    res["load_avg_end"] = os.getloadavg()
    res["seconds"] = time.time() - t_start

    # ---- markdown ----------------------------------------------------------------------------------
    print("\n| pipeline (astronaut 640×480) | detect ms | end-to-end ms | FPS | faces | IoU vs ref | "
          "composite recall | FP/image | emotion acc (all faces) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in det_rows:
        if "skipped" in r:
            print(f"| {r['detector']} | not installed | | | | | | | |")
            continue
        print(f"| {r['detector']} | {r['astronaut_detect_ms']:.2f} | {r['astronaut_e2e_ms']:.2f} | "
              f"{r['astronaut_fps']:.0f} | {r['astronaut_faces']} | {r['astronaut_iou']:.2f} | "
              f"{100 * r['recall']:.1f} % | {r['fp_per_image']:.3f} | {100 * r['emotion_acc_all_faces']:.2f} % |")
    if fer is not None:
        r = res["fer"]
        print(f"| fer `FER().detect_emotions` | | {r['astronaut_e2e_ms']:.2f} | {r['astronaut_fps']:.0f} | "
              f"{r['astronaut_faces']} | {r['astronaut_iou']:.2f} | {100 * r['recall']:.1f} % | "
              f"{r['fp_per_image']:.3f} | {100 * r['emotion_acc_all_faces']:.2f} % |")
    print(f"\nexact crops (no detection): {100 * acc_exact:.2f} %")
    print("\n| astronaut end to end | threads | classifier backend | ms | FPS |\n|---|---:|---|---:|---:|")
    for g in grid:
        print(f"| {g['detector']} | {g['threads']} | {g['backend']} | {g['astronaut_e2e_ms']:.2f} | "
              f"{1000 / g['astronaut_e2e_ms']:.0f} |")
    print("\n| video 640×480, 250 frames | ms/frame | FPS | face-frames found | emotion acc | track ids per face |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in video_rows:
        name = "detect every frame" if r["detect_every"] == 1 else f"detect every {r['detect_every']} + track, EMA {r['smooth']}"
        if r.get("classify_every", 1) > 1:
            name += f", classify every {r['classify_every']}"
        print(f"| {name} | {r['ms_per_frame']:.2f} | {r['fps']:.0f} | {100 * r['face_frames_found']:.1f} % | "
              f"{100 * r['emotion_acc']:.1f} % | {'' if r['track_ids_per_face'] is None else r['track_ids_per_face']} |")
    if fer is not None:
        print(f"| fer `detect_emotions` (first 100 frames) | {fer['video_ms']:.2f} | {1000 / fer['video_ms']:.0f} | | | |")
    print(f"\nload average start {res['load_avg_start'][0]:.2f}, end {res['load_avg_end'][0]:.2f}; {res['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
