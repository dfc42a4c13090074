"""The default CNN detector on a real photo, tracking in video, temporal smoothing, threads, Recognizer API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ferbench.deploy.recognizer import FacePrediction, Prediction, Recognizer
from ferbench.deploy.video import FrameRecognizer, annotated_name, process_video
from ferbench.device import cpu_int8_matrix
from ferbench.errors import FerbenchError
from ferbench.faces import DEFAULT_DETECTOR, IouTracker, get_detector, iou_matrix
from ferbench.faces.blazeface import BlazeFaceDetector, litert_available, ssd_anchors

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) gives the real test photos")

# BlazeFace short-range on scikit-image's astronaut.png (512×512), measured once (2026-12-02) and written here.
ASTRONAUT_FACE = (178.1, 80.9, 272.1, 175.0)


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer.load("default")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def astronaut_face(size: int) -> np.ndarray:
    """The astronaut's head (RGB), resized to ``size``²."""
    return cv2.resize(skimage_data.astronaut()[40:220, 135:315], (size, size), interpolation=cv2.INTER_AREA)


def test_anchor_counts_match_the_model_outputs() -> None:
    assert ssd_anchors(128, (8, 16, 16, 16), 2).shape == (896, 2)
    assert ssd_anchors(192, (4,), 1).shape == (2304, 2)
    # a grown input (the scan pass): the graph's outputs for a 208x272 input have 3 094 rows (measured)
    d = BlazeFaceDetector("short")
    reg, cls = d._runner()(np.zeros((1, 208, 272, 3), np.float32))
    assert reg.shape == (3094, 16) and cls.shape == (3094,)
    assert ssd_anchors((208, 272), (8, 16, 16, 16), 2).shape == (3094, 2)


def test_scan_pass_at_the_models_own_size_is_the_plain_pass(astronaut: np.ndarray) -> None:
    # the grown-input decoding (non-square anchors, per-axis scaling) reduces to the letterboxed pass at 128 px
    img = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    d = BlazeFaceDetector("short", min_confidence=0.3)
    a, b = d._pass(img), d._scan_pass(img, 128)
    assert len(a[1]) >= 3
    np.testing.assert_allclose(a[0], b[0], atol=1e-3)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    np.testing.assert_allclose(a[2], b[2], atol=1e-3)
    with pytest.raises(FerbenchError, match="scan must be at least"):
        BlazeFaceDetector("short", scan=64)


def test_skipped_mirror_look_never_changes_the_decision() -> None:
    # every candidate of the default detector on real photos: the two-look decision with the mirror pass
    # skipped where the crop alone decides equals the decision with both passes always taken
    d = get_detector(DEFAULT_DETECTOR)
    base = BlazeFaceDetector("short", scan=272, min_confidence=0.3)
    n = skipped = 0
    for name in ("astronaut", "coffee", "chelsea", "hubble_deep_field", "rocket"):
        img = cover(getattr(skimage_data, name)())
        cands = base.detect(img)  # the default detector's candidates before the second look
        for box, first in zip(cands.boxes, cands.scores, strict=True):
            x, ref = d._look_inputs(img, box)
            crop = d._look_score(x, ref)
            mref = np.array([128 - ref[2], ref[1], 128 - ref[0], ref[3]], np.float32)
            mirror = d._look_score(np.ascontiguousarray(x[:, :, ::-1]), mref)
            full = (first + (crop + mirror) / 2) / 2
            fast = d._verified(img, box, float(first))
            assert (fast >= d.verify) == (full >= d.verify)
            skipped += fast == (first + crop) / 2 and mirror != crop
            n += 1
    assert n >= 5 and skipped >= 1  # real candidates, and the shortcut is taken


def test_default_detector_finds_the_astronaut(astronaut: np.ndarray) -> None:
    d = get_detector(DEFAULT_DETECTOR).detect(astronaut)
    assert len(d) == 1
    assert iou_matrix(d.boxes, np.array([ASTRONAUT_FACE]))[0, 0] >= 0.6
    assert 0.5 <= d.scores[0] <= 1.0  # a probability, not a level weight
    (re, le, nose, mouth, _), = d.landmarks
    assert re[0] < le[0] and re[1] < mouth[1] and ASTRONAUT_FACE[0] < nose[0] < ASTRONAUT_FACE[2]
    # every BlazeFace flavour agrees on this photo; nothing on a real photo without a face
    for name in ("blazeface-fast", "blazeface-accurate", "blazeface-full"):
        assert iou_matrix(get_detector(name).detect(astronaut).boxes[:1], np.array([ASTRONAUT_FACE]))[0, 0] >= 0.6
    assert len(get_detector(DEFAULT_DETECTOR).detect(skimage_data.coffee())) == 0


def test_back_camera_graph_decodes_on_its_strides(astronaut: np.ndarray) -> None:
    # the 256-px back-camera graph (strides 16/32, 896 anchors): its own input and a grown 512-px scan
    # (padded to multiples of 32, not 16) both put the astronaut's face where the short-range graph does
    for scan in (None, 512):
        d = BlazeFaceDetector("back", scan=scan).detect(astronaut)
        assert len(d) == 1 and iou_matrix(d.boxes, np.array([ASTRONAUT_FACE]))[0, 0] >= 0.6
    with pytest.raises(FerbenchError, match="unknown model 'side'; choose one of short, full, back"):
        BlazeFaceDetector("side")


def cover(img: np.ndarray) -> np.ndarray:
    """``img`` resized to cover 640×480 and centre-cropped (as benchmarks/pipeline.py frames its backgrounds)."""
    h, w = img.shape[:2]
    s = max(640 / w, 480 / h)
    big = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    y, x = (big.shape[0] - 480) // 2, (big.shape[1] - 640) // 2
    big = big[y:y + 480, x:x + 640]
    return np.repeat(big[..., None], 3, 2) if big.ndim == 2 else big


def test_second_look_rejects_face_like_textures_and_keeps_a_small_face(astronaut: np.ndarray) -> None:
    # Galaxies in Hubble's deep field look like small faces to the 3x3 tiles; at their own scale they do not.
    sky = cover(skimage_data.hubble_deep_field())
    tiles_only = BlazeFaceDetector("short", tiles=3, min_confidence=0.3)
    assert len(tiles_only.detect(sky)) >= 5
    assert len(get_detector(DEFAULT_DETECTOR).detect(sky)) == 0
    # ...while a real 80-px face on that sky, too small for the whole-frame pass, is kept
    scene = sky.copy()
    scene[300:380, 400:480] = astronaut_face(80)
    assert len(get_detector("blazeface-fast").detect(scene)) == 0
    d = get_detector(DEFAULT_DETECTOR).detect(scene)
    assert len(d) == 1  # the face inside the pasted head (hair and helmet around it)
    x0, y0, x1, y1 = d.boxes[0]
    assert 400 <= x0 < x1 <= 480 and 300 <= y0 < y1 <= 380 and x1 - x0 >= 30
    with pytest.raises(FerbenchError, match="verify must be a probability"):
        BlazeFaceDetector("short", verify=1.5)


def test_trusted_candidates_skip_the_second_look(astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[float] = []
    real = BlazeFaceDetector._verified

    def counted(self: BlazeFaceDetector, rgb: np.ndarray, box: np.ndarray, first: float) -> float:
        looks.append(first)
        return real(self, rgb, box, first)

    monkeypatch.setattr(BlazeFaceDetector, "_verified", counted)
    every = BlazeFaceDetector("short", scan=272, min_confidence=0.3, verify=0.65).detect(astronaut)
    n_every = len(looks)
    looks.clear()
    trusted = BlazeFaceDetector("short", scan=272, min_confidence=0.3, verify=0.65, trust=0.8).detect(astronaut)
    # the astronaut's face scores >= 0.8 at the first look: kept with that score, no second look for it
    assert len(trusted) == len(every) == 1 and trusted.scores[0] >= 0.8 and len(looks) == n_every - 1
    assert all(f < 0.8 for f in looks)
    np.testing.assert_allclose(trusted.boxes, every.boxes, atol=1e-4)
    with pytest.raises(FerbenchError, match="trust must be a probability"):
        BlazeFaceDetector("short", trust=0.0)


def test_weak_candidates_below_look_from_are_dropped_without_a_look(astronaut: np.ndarray,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[float] = []
    real = BlazeFaceDetector._verified

    def counted(self: BlazeFaceDetector, rgb: np.ndarray, box: np.ndarray, first: float) -> float:
        looks.append(round(first, 6))
        return real(self, rgb, box, first)

    monkeypatch.setattr(BlazeFaceDetector, "_verified", counted)
    kw = {"scan": 272, "min_confidence": 0.05, "verify": 0.65, "trust": 0.8}  # 0.05: many weak candidates
    every = BlazeFaceDetector("short", **kw).detect(astronaut)
    all_looks = sorted(looks)
    looks.clear()
    floored = BlazeFaceDetector("short", look_from=0.45, **kw).detect(astronaut)
    # NMS is unchanged (it still merges from min_confidence), so the looks are exactly the first-look scores >= 0.45
    assert sorted(looks) == [f for f in all_looks if f >= 0.45] and len(looks) < len(all_looks)
    assert len(floored) == len(every) == 1
    np.testing.assert_allclose(floored.boxes, every.boxes, atol=1e-4)
    assert get_detector(DEFAULT_DETECTOR).look_from == 0.45
    with pytest.raises(FerbenchError, match="look_from must be a probability"):
        BlazeFaceDetector("short", look_from=1.5)


def test_known_boxes_keep_a_tracked_face_without_a_second_look(astronaut: np.ndarray,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[float] = []

    def failing(self: BlazeFaceDetector, rgb: np.ndarray, box: np.ndarray, first: float) -> float:
        looks.append(first)
        return 0.0  # every second look fails

    monkeypatch.setattr(BlazeFaceDetector, "_verified", failing)
    d = BlazeFaceDetector("short", scan=272, min_confidence=0.3, verify=0.65, trust=1.0, look_from=0.45)
    assert len(d.detect(astronaut)) == 0 and looks  # no face survives a failed second look...
    looks.clear()
    box = np.array([ASTRONAUT_FACE], np.float32) + 3.0  # a tracker's box, a few pixels off
    kept = d.detect(astronaut, known=box)
    assert len(kept) == 1 and all(abs(f - float(kept.scores[0])) > 1e-6 for f in looks)  # ...unless it is known
    assert kept.boxes[0] == pytest.approx(np.array(ASTRONAUT_FACE), abs=6)
    far = np.array([[0, 0, 60, 60]], np.float32)  # a known box elsewhere changes nothing
    assert len(d.detect(astronaut, known=far)) == 0
    assert len(d.detect(astronaut, known=np.zeros((0, 4), np.float32))) == 0


def test_video_loop_gives_the_detector_its_tracks(rec: Recognizer, astronaut: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray | None] = []
    real = BlazeFaceDetector.detect

    def spy(self: BlazeFaceDetector, image: np.ndarray, known: np.ndarray | None = None) -> object:
        seen.append(None if known is None else np.asarray(known).copy())
        return real(self, image, known)

    monkeypatch.setattr(BlazeFaceDetector, "detect", spy)
    fr = FrameRecognizer(rec, detect_every=2)
    frame = cover(astronaut)
    for _ in range(5):
        fr(frame, "rgb")
    assert len(seen) == 3 and seen[0] is None  # frames 0, 2, 4; nothing is tracked before the first
    assert all(k is not None and k.shape == (1, 4) for k in seen[1:])


@pytest.mark.parametrize("background", ["hubble_deep_field", "coffee"])
def test_accurate_detector_finds_a_head_too_small_for_the_default(background: str) -> None:
    # a 48-px head in a 640x480 frame is 20 px in the default's 272-px scan, 36 px in blazeface-accurate's 480-px one
    scene = cover(getattr(skimage_data, background)())
    scene[300:348, 400:448] = astronaut_face(48)
    assert len(get_detector(DEFAULT_DETECTOR).detect(scene)) == 0
    d = get_detector("blazeface-accurate").detect(scene)
    assert len(d) == 1
    x0, y0, x1, y1 = d.boxes[0]
    assert 400 <= x0 < x1 <= 448 and 300 <= y0 < y1 <= 348 and x1 - x0 >= 18


@pytest.mark.skipif(not litert_available(), reason="ai-edge-litert not installed")
def test_opencv_backend_gives_the_same_boxes(astronaut: np.ndarray) -> None:
    a = BlazeFaceDetector("short", backend="litert").detect(astronaut)
    b = BlazeFaceDetector("short", backend="opencv").detect(astronaut)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


@pytest.mark.skipif(not litert_available(), reason="ai-edge-litert not installed")
def test_litert_interpreter_prints_nothing_to_stderr(astronaut: np.ndarray, capfd: pytest.CaptureFixture[str]) -> None:
    # TFLite writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to fd 2 for every interpreter;
    # `ferbench predict` printed it before each run's results. A grown scan input builds a second interpreter.
    capfd.readouterr()
    d = BlazeFaceDetector("short", backend="litert", scan=272)
    assert len(d.detect(astronaut)) == 1
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and err == ""
    import sys
    print("still here", file=sys.stderr)  # fd 2 restored after the silenced call
    assert capfd.readouterr().err == "still here\n"


def crossing_video(n: int = 45) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Two real faces (110 px) on a real photo moving across each other; per frame (x of face A, x of face B)."""
    face = astronaut_face(110)
    bg = cv2.resize(skimage_data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    frames, xs = [], []
    for i in range(n):
        f = bg.copy()
        xa, xb = int(40 + 440 * i / (n - 1)), int(480 - 440 * i / (n - 1))
        f[60:170, xa:xa + 110] = face
        f[190:300, xb:xb + 110] = face[:, ::-1]
        frames.append(f)
        xs.append((xa, xb))
    return frames, xs


def test_two_crossing_faces_keep_two_stable_track_ids(rec: Recognizer) -> None:
    frames, xs = crossing_video()
    step = FrameRecognizer(rec, detect_every=3, smooth=0.6)
    seen: set[int] = set()
    id_of: dict[str, set[int]] = {"a": set(), "b": set()}
    for f, (xa, xb) in zip(frames, xs, strict=True):
        faces = step(f, "rgb")
        assert len(faces) == 2
        for x in faces:
            seen.add(x.track_id)
            cy = (x.box[1] + x.box[3]) / 2
            who, x_true = ("a", xa) if cy < 180 else ("b", xb)
            id_of[who].add(x.track_id)
            assert abs((x.box[0] + x.box[2]) / 2 - (x_true + 55)) < 30  # the box follows its own face
    assert len(seen) == 2 and len(id_of["a"]) == 1 and len(id_of["b"]) == 1 and id_of["a"] != id_of["b"]


def test_classify_every_k_frames_keeps_boxes_moving_and_labels_between(rec: Recognizer) -> None:
    frames = crossing_video()[0][:12]
    every = [step(f, "rgb") for step in [FrameRecognizer(rec, detect_every=3, smooth=0.0)] for f in frames]
    rows: list[int] = []
    clf = rec.classifier
    rec.classifier = lambda x: (rows.append(x.shape[0]), clf(x))[1]  # type: ignore[assignment]
    try:
        step = FrameRecognizer(rec, detect_every=3, smooth=0.0, classify_every=4)
        sparse = [step(f, "rgb") for f in frames]
    finally:
        rec.classifier = clf
    assert rows == [2, 2, 2]  # frames 0, 4, 8: both faces in one pass; nothing in between
    for i, (a, b) in enumerate(zip(every, sparse, strict=True)):
        assert [x.box for x in a] == [x.box for x in b]  # boxes still move every frame
        if i % 4 == 0:
            assert [x.probs for x in a] == [x.probs for x in b]
        else:  # probabilities held from the last classified frame
            assert [x.probs for x in b] == [x.probs for x in sparse[i - i % 4]]
    with pytest.raises(FerbenchError, match="classify_every must be >= 1"):
        FrameRecognizer(rec, classify_every=0)


def test_tracker_drops_a_lost_track_and_never_reuses_ids() -> None:
    t = IouTracker(max_missed=1)
    grey = np.zeros((100, 100), np.uint8)
    a = t.update(np.array([[10, 10, 30, 30]]), np.array([0.9]), None, grey, 0)
    assert [x.track_id for x in a] == [1]
    assert t.update(np.zeros((0, 4)), np.zeros(0), None, grey, 3) == []  # missed once: kept, not shown
    assert len(t.tracks) == 1
    t.update(np.zeros((0, 4)), np.zeros(0), None, grey, 6)  # missed twice: dropped
    assert t.tracks == []
    b = t.update(np.array([[10, 10, 30, 30]]), np.array([0.9]), None, grey, 9)
    assert [x.track_id for x in b] == [2]


def jittered(face: np.ndarray, n: int = 40, seed: int = 0) -> list[np.ndarray]:
    """``face`` (48×48 grey) upscaled to ~140 px on a real photo, each frame shifted/scaled by a few pixels
    with sensor-like noise (a hand-held camera)."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(skimage_data.rocket(), (640, 480), interpolation=cv2.INTER_AREA)
    out = []
    for _ in range(n):
        f = bg.copy()
        s = int(rng.integers(132, 149))
        x, y = int(rng.integers(242, 259)), int(rng.integers(162, 179))
        f[y:y + s, x:x + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC)[..., None]
        f = np.clip(f.astype(np.int16) + rng.normal(0, 10, f.shape).astype(np.int16), 0, 255).astype(np.uint8)
        out.append(f)
    return out


@pytest.mark.data
def test_smoothing_reduces_label_flips(rec: Recognizer) -> None:
    from test_faces import fer_faces

    faces = fer_faces(list(range(400)))
    p = rec.classify_arrays([f[..., None] for f in faces])
    top2 = np.sort(p, 1)[:, -2:]
    ambiguous = [faces[i] for i in np.flatnonzero(top2[:, 1] - top2[:, 0] < 0.08)[:3]]  # the model hesitates
    assert len(ambiguous) == 3

    def flips(frames: list[np.ndarray], smooth: float) -> int:
        step = FrameRecognizer(rec, detect_every=1, smooth=smooth)
        labels = []
        for f in frames:
            out = step(f, "rgb")
            assert len(out) <= 1 and all(x.track_id == 1 for x in out)  # one face, one id throughout
            labels += [x.label for x in out]
        assert len(labels) >= 0.75 * len(frames)
        return sum(a != b for a, b in zip(labels, labels[1:], strict=False))

    seqs = [jittered(f) for f in ambiguous]
    raw = sum(flips(q, 0.0) for q in seqs)
    smooth = sum(flips(q, 0.8) for q in seqs)
    assert raw >= 6, "the jittered sequences should make the unsmoothed labels flip"
    assert smooth <= raw / 2
    with pytest.raises(FerbenchError, match="smooth must be in"):
        FrameRecognizer(rec, smooth=1.0)


def test_video_file_has_track_ids_in_jsonl_and_a_browser_codec(rec: Recognizer, tmp_path: Path) -> None:
    frames, _ = crossing_video(24)
    src = tmp_path / "two.mp4"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for f in frames:
        w.write(f[..., ::-1])
    w.release()
    seen: list[tuple[int, int | None]] = []
    s = process_video(rec, src, tmp_path / "two.jsonl", tmp_path / annotated_name("two"), detect_every=2,
                      progress=lambda d, n, r: seen.append((d, n)))
    assert s.frames == 24 and s.frames_with_face == 24
    assert seen[-1] == (24, 24) and len(seen) == 24  # progress: done/total each frame
    rows = [json.loads(x) for x in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert {f["track_id"] for r in rows for f in r["faces"]} == {1, 2}
    lms = [v for r in rows for f in r["faces"] if f.get("landmarks") for pt in f["landmarks"] for v in pt]
    assert lms and all(len(repr(v).split(".")[-1]) == 1 for v in lms)  # one decimal, as on still images
    cap = cv2.VideoCapture(str(tmp_path / annotated_name("two")))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 24


def test_classifier_threads_default_follows_the_cpus_int8_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbench.device as device
    from ferbench.deploy import recognizer

    monkeypatch.setattr(device.platform, "machine", lambda: "x86_64")
    # (flags, int8 dot products, int8 matrix units)
    for flags, dot, matrix in ((frozenset({"avx", "avx2", "fma"}), False, False),
                               (frozenset({"avx2", "avx512_vnni"}), True, False),
                               (frozenset({"avx2", "avx_vnni"}), True, False),
                               (frozenset({"amx_int8", "avx512_vnni", "avx2"}), True, True),
                               (frozenset(), True, True)):  # no /proc/cpuinfo: as before, one thread
        monkeypatch.setattr(device, "cpu_flags", lambda f=flags: f)
        assert device.cpu_int8_dot() is dot, flags
        assert device.cpu_int8_matrix() is matrix, flags
    monkeypatch.setattr(device.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"fp", "asimd"}))
    assert device.cpu_int8_dot() and device.cpu_int8_matrix()
    monkeypatch.setattr(recognizer, "cpu_int8_matrix", lambda: False)
    monkeypatch.setattr(recognizer.os, "cpu_count", lambda: 2)
    assert recognizer.default_threads() == 2
    monkeypatch.setattr(recognizer.os, "cpu_count", lambda: 1)
    assert recognizer.default_threads() == 1
    monkeypatch.setattr(recognizer, "cpu_int8_matrix", lambda: True)
    monkeypatch.setattr(recognizer.os, "cpu_count", lambda: 2)
    assert recognizer.default_threads() == 1


def test_threads_setting_is_honoured(astronaut: np.ndarray) -> None:
    old = torch.get_num_threads()
    try:
        for n in (2, 1):
            r = Recognizer.load("default", threads=n)
            assert r.threads == n and r.detector.threads == n and f"threads={n}" in repr(r)
            r.predict(astronaut, color="rgb")
            assert torch.get_num_threads() == n
        # unset: the classifier one thread where int8 has matrix units (else two), the detector two where the
        # machine has them (measured faster)
        r = Recognizer.load("default")
        assert r.threads == r.classifier.threads == (1 if cpu_int8_matrix() else min(2, os.cpu_count() or 1))
        assert r.detector.threads == r.detector_threads == min(2, os.cpu_count() or 1)
        # onnxruntime does not spin after a run (it took the cores from the next frame's detector)
        opts = r.classifier.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        haar = Recognizer.load("default", detector="haar", threads=1).detector
        seen = []
        orig = haar._cascade

        def spy():  # the cascade runs while OpenCV is capped at the Recognizer's threads
            seen.append(cv2.getNumThreads())
            return orig()

        haar._cascade = spy
        before = cv2.getNumThreads()
        haar.detect(astronaut)
        assert seen == [1] and cv2.getNumThreads() == before  # restored afterwards
        with pytest.raises(FerbenchError, match="threads must be >= 1"):
            Recognizer.load("default", threads=0)
    finally:
        torch.set_num_threads(old)


def test_cli_threads_option_reaches_the_recognizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ferbench.cli.main import app

    img = tmp_path / "astro.png"
    cv2.imwrite(str(img), skimage_data.astronaut()[..., ::-1])
    got = {}
    load = Recognizer.load

    def spy(*a, **k):
        r = load(*a, **k)
        got["threads"] = r.threads
        return r

    monkeypatch.setattr(Recognizer, "load", spy)
    res = CliRunner().invoke(app, ["predict", str(img), "--threads", "2", "--json", str(tmp_path / "o.json")])
    assert res.exit_code == 0, res.output
    assert got["threads"] == 2
    text = (tmp_path / "o.json").read_text()
    faces = json.loads(text)["images"][0]["faces"]
    assert len(faces) == 1 and 0.5 <= faces[0]["score"] <= 1.0
    lm = faces[0]["landmarks"]  # 5 points, one decimal in the file (not float32 noise like 203.10000610351562)
    assert len(lm) == 5 and all(len(repr(v).split(".")[-1]) == 1 for pt in lm for v in pt), lm


def test_recognizer_one_image_or_a_list(rec: Recognizer, astronaut: np.ndarray) -> None:
    one = rec.predict(astronaut, color="rgb")
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], FacePrediction)
    calls = []
    clf = rec.classifier
    rec.classifier = lambda x: (calls.append(x.shape[0]), clf(x))[1]  # type: ignore[assignment]
    try:
        many = rec.predict([astronaut, skimage_data.coffee(), astronaut], color="rgb")
    finally:
        rec.classifier = clf
    assert calls == [2]  # all faces of all images in one forward pass
    assert [len(x) for x in many] == [1, 0, 1]
    assert many[0][0].label == one[0].label and many[0][0].box == one[0].box
    crop = astronaut[80:176, 178:272]
    p = rec.classify(crop, color="rgb")
    assert isinstance(p, Prediction) and p.label in rec.classes
    assert rec.classify([crop], color="rgb")[0].probs == pytest.approx(p.probs)


def test_auto_detector_classifies_face_crops_whole(astronaut: np.ndarray) -> None:
    r = Recognizer.load("default", detector="auto")
    small = cv2.resize(astronaut[80:176, 178:272], (48, 48))
    (f,) = r.predict(small, color="rgb")
    assert f.box == (0, 0, 48, 48) and f.score is None
    big = r.predict(astronaut, color="rgb")
    assert len(big) == 1 and big[0].score is not None  # a photo: detected
    square_no_face = cv2.resize(skimage_data.coffee(), (300, 300))
    assert r.predict(square_no_face, color="rgb")[0].box == (0, 0, 300, 300)
    assert r.predict(skimage_data.coffee(), color="rgb") == []  # not square, no face: nothing


def test_draw_and_repr(rec: Recognizer, astronaut: np.ndarray) -> None:
    out = rec.draw(astronaut, color="rgb")
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert not np.array_equal(out, astronaut) and np.array_equal(out[400:], astronaut[400:])  # box drawn at the face
    r = repr(rec)
    assert r.startswith("Recognizer(model='default', arch=fer_vgg_m, backend=onnx") and "detector=blazeface" in r
    assert "input=48x48x1" in r


def test_haar_score_is_none_not_a_level_weight(astronaut: np.ndarray) -> None:
    faces = Recognizer.load("default", detector="haar").predict(astronaut, color="rgb")
    assert len(faces) == 1 and faces[0].score is None
