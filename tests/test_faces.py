"""ferbench.faces: detector interface, Haar on a real face, square crops, alignment, data import."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import real_data_root

from ferbench.errors import FerbenchError
from ferbench.faces import crop_face, detect, get_detector, square_box
from ferbench.faces.crop import eye_angle
from ferbench.faces.detectors import MEDIAPIPE_HINT, MTCNN_HINT, Detections


def fer_faces(rows: list[int]) -> list[np.ndarray]:
    """FER2013 rows (uint8 48×48 grey) read straight from the csv head; skip when the data is absent."""
    root = real_data_root()
    if root is None:
        pytest.skip("FER2013 not found (../shared/data or $FERBENCH_DATA)")
    out = {}
    with gzip.open(root / "fer2013" / "fer2013.csv.gz", "rt") as f:
        next(f)
        for i in range(max(rows) + 1):
            line = f.readline()
            if i in rows:
                out[i] = np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48)
    return [out[i] for i in rows]


def face_scene(face: np.ndarray, side: int = 192, at: tuple[int, int] = (200, 100)) -> np.ndarray:
    """A 640×480 grey canvas with ``face`` upscaled to ``side`` at (x, y) = ``at``; uint8 RGB."""
    canvas = np.full((480, 640), 128, np.uint8)
    x, y = at
    canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)


def test_square_box_grows_by_margin_around_centre() -> None:
    b = square_box([10, 20, 50, 100], margin=0.1)  # w=40, h=80 → side 80*1.2 = 96, centre (30, 60)
    np.testing.assert_allclose(b, [30 - 48, 60 - 48, 30 + 48, 60 + 48])


def test_crop_face_is_the_exact_region_without_margin() -> None:
    img = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    crop = crop_face(img, [30, 20, 70, 60], margin=0.0)
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, img[20:60, 30:70])


def test_crop_face_pads_outside_image_and_resizes() -> None:
    img = np.full((50, 50), 200, np.uint8)
    crop = crop_face(img, [-10, -10, 30, 30], margin=0.25, size=48)
    assert crop.shape == (48, 48)
    assert (crop == 200).all()  # border replicated, no black bands
    grey3 = np.full((50, 50, 1), 7, np.uint8)
    assert crop_face(grey3, [0, 0, 50, 50], 0.0, size=20).shape == (20, 20, 1)


def test_alignment_levels_the_eyes() -> None:
    img = np.zeros((200, 200), np.uint8)
    c, r, ang = np.array([100.0, 100.0]), 40.0, np.deg2rad(25)
    e1 = c - r * np.array([np.cos(ang), np.sin(ang)])
    e2 = c + r * np.array([np.cos(ang), np.sin(ang)])
    for e in (e1, e2):
        cv2.circle(img, tuple(int(v) for v in e.round()), 5, 255, -1)
    lm = np.array([e1, e2, c, c + [0, 30], c + [0, 30]], np.float32)
    assert eye_angle(lm) == pytest.approx(25, abs=1e-4)
    crop = crop_face(img, [40, 40, 160, 160], margin=0.0, landmarks=lm, align=True)
    ys, xs = np.nonzero(crop > 128)
    left, right = ys[xs < 60].mean(), ys[xs > 60].mean()
    assert abs(left - right) < 1.5, (left, right)
    unaligned = crop_face(img, [40, 40, 160, 160], margin=0.0)
    ys, xs = np.nonzero(unaligned > 128)
    assert abs(ys[xs < 60].mean() - ys[xs > 60].mean()) > 20


def test_unknown_and_missing_detectors_are_one_line_errors() -> None:
    with pytest.raises(FerbenchError, match="unknown face detector .dlib.; choose one of blazeface, blazeface-fast, blazeface-accurate, blazeface-full, haar, mediapipe, mtcnn"):
        get_detector("dlib")
    import importlib.util

    for name, module, hint in (("mediapipe", "mediapipe", MEDIAPIPE_HINT), ("mtcnn", "facenet_pytorch", MTCNN_HINT)):
        if importlib.util.find_spec(module) is not None:
            continue  # installed here: nothing to report
        with pytest.raises(FerbenchError) as e:
            get_detector(name)
        assert str(e.value) == hint and "\n" not in hint and "pip install" in hint


def test_haar_finds_nothing_in_flat_or_noise_images() -> None:
    assert len(detect(np.full((240, 320, 3), 90, np.uint8))) == 0
    d = detect(np.zeros((10, 10), np.uint8))
    assert isinstance(d, Detections) and d.boxes.shape == (0, 4) and d.scores.shape == (0,)
    with pytest.raises(FerbenchError, match="expected a uint8 image"):
        detect(np.zeros((10, 10), np.float32))


@pytest.mark.data
def test_haar_finds_an_upscaled_fer2013_face() -> None:
    (face,) = fer_faces([0])
    scene = face_scene(face, 192, (200, 100))
    d = detect(scene, "haar")
    # Haar has no calibrated confidence: score NaN, the cascade's level weight in raw_scores
    assert len(d) == 1 and d.landmarks is None and np.isnan(d.scores[0]) and d.raw_scores[0] > 0
    x1, y1, x2, y2 = d.boxes[0]
    # the box covers the pasted face (200..392, 100..292) within a few pixels
    assert abs(x1 - 200) < 20 and abs(y1 - 100) < 20 and abs(x2 - 392) < 25 and abs(y2 - 292) < 25
    # grey input and a detector object give the same boxes
    d2 = get_detector("haar").detect(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY))
    np.testing.assert_allclose(d2.boxes, d.boxes)


@pytest.mark.data
def test_data_import_crops_faces_and_logs_misses(tmp_path: Path) -> None:
    from ferbench.data.folder import decode_image, scan_folder
    from ferbench.faces.importer import import_faces

    faces = fer_faces([0, 2])
    src = tmp_path / "photos"
    for cls, face in zip(("angry", "fear"), faces, strict=True):
        (src / cls).mkdir(parents=True)
        cv2.imwrite(str(src / cls / "a.png"), cv2.cvtColor(face_scene(face), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "angry" / "blank.png"), np.full((100, 100), 128, np.uint8))
    (src / "fear" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    rep = import_faces(f"folder:{src}", tmp_path / "out", "haar", size=64, grey=True)
    assert rep.written == 2
    assert rep.no_face == [str(src / "angry" / "blank.png")]
    assert len(rep.unreadable) == 1 and "broken.jpg" in rep.unreadable[0]
    log = (tmp_path / "out" / "import_log.txt").read_text()
    assert "no_face\t" in log and "unreadable\t" in log
    files, classes, _ = scan_folder(tmp_path / "out")  # what folder:OUT reads
    assert classes == ["angry", "fear"] and [f.name for f in files] == ["a.png", "a.png"]
    assert decode_image(files[0], 64, 1).shape == (64, 64, 1)


def test_mtcnn_runs_with_the_threads_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import torch

    seen: list[int] = []

    class FakeMTCNN:  # facenet-pytorch's interface: detect(rgb, landmarks=True) -> boxes, probs, landmarks
        def __init__(self, **kwargs: object) -> None:
            pass

        def detect(self, rgb: np.ndarray, landmarks: bool = True) -> tuple:
            seen.append(torch.get_num_threads())
            return np.array([[10.0, 10.0, 50.0, 50.0]]), np.array([0.99]), np.zeros((1, 5, 2))

    monkeypatch.setitem(sys.modules, "facenet_pytorch", types.SimpleNamespace(MTCNN=FakeMTCNN))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        d = get_detector("mtcnn", threads=1).detect(np.zeros((64, 64, 3), np.uint8))
        torch.set_num_threads(2)
        get_detector("mtcnn").detect(np.zeros((64, 64, 3), np.uint8))  # threads=None leaves the pool alone
    finally:
        torch.set_num_threads(old)
    assert seen == [1, 2] and len(d) == 1 and float(d.scores[0]) == pytest.approx(0.99)


@pytest.mark.data
def test_mtcnn_gives_boxes_and_five_landmarks() -> None:
    pytest.importorskip("facenet_pytorch", reason="optional: pip install --no-deps facenet-pytorch")
    (face,) = fer_faces([0])
    d = get_detector("mtcnn").detect(face_scene(face, 192, (200, 100)))
    assert len(d) == 1 and 0.9 <= d.scores[0] <= 1.0
    assert d.landmarks is not None and d.landmarks.shape == (1, 5, 2)
    x1, y1, x2, y2 = d.boxes[0]
    assert 180 < x1 < 230 and 270 < x2 < 400 and all(x1 < x < x2 for x in d.landmarks[0, :, 0])


@pytest.mark.data
def test_mediapipe_gives_boxes_and_eye_landmarks() -> None:
    pytest.importorskip("mediapipe", reason="optional: pip install 'ferbench[mediapipe]'")
    (face,) = fer_faces([0])
    d = get_detector("mediapipe").detect(face_scene(face, 192, (200, 100)))
    assert len(d) == 1 and 0.5 <= d.scores[0] <= 1.0
    assert d.landmarks is not None and d.landmarks.shape == (1, 5, 2)
    x1, y1, x2, y2 = d.boxes[0]
    assert 180 < x1 < 260 and 330 < x2 < 420  # pasted face spans x 200..392
    (lx, ly), (rx, ry) = d.landmarks[0, 0], d.landmarks[0, 1]
    assert x1 < lx < rx < x2 and y1 < ly < y2 and y1 < ry < y2  # eyes inside the box, left before right
