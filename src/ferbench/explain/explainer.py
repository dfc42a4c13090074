"""Explain a checkpoint on face images: load the model, read and crop faces, compute maps + top-k.

The model sees exactly what predict/serve give it: the sidecar's :class:`Preprocessing`. Maps are
drawn over that same view (the normalisation undone), so every pixel of the overlay is one the
model was fed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.data.preprocess import Preprocessing
from ferbench.data.taxonomy import canonical_name
from ferbench.errors import FerbenchError
from ferbench.explain.cam import METHODS, TargetLayer, attribution_maps

DETECT_MODES = ("auto", "none", "blazeface", "blazeface-accurate", "blazeface-full", "haar", "mediapipe", "mtcnn")


@dataclass
class Face:
    """One face to explain.

    Attributes:
        source: where it came from (``photo.jpg``, ``photo.jpg#face2``).
        image: uint8 ``(H, W, 3)`` RGB face crop (any size; the preprocessing resizes it).
    """

    source: str
    image: np.ndarray


@dataclass
class Explanation:
    """Maps and predictions for a batch of faces.

    Attributes:
        sources: ``N`` names.
        views: float32 ``(N, S, S, 3)`` in [0, 1]: the model input with the normalisation undone.
        maps: float32 ``(N, S, S)`` in [0, 1]: importance of each input pixel for ``targets``.
        probs: float32 ``(N, K)`` softmax probabilities.
        targets: int64 ``(N,)`` explained class per face.
        classes: ``K`` class names.
        method: explanation method.
        layers: CAM layer per member (empty for gradient methods).
    """

    sources: list[str]
    views: np.ndarray
    maps: np.ndarray
    probs: np.ndarray
    targets: np.ndarray
    classes: list[str]
    method: str
    layers: list[TargetLayer] = field(default_factory=list)

    def top(self, i: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of face ``i`` as ``(name, probability)``."""
        order = np.argsort(-self.probs[i], kind="stable")[:k]
        return [(self.classes[j], float(self.probs[i, j])) for j in order]


@dataclass
class ClassMaps:
    """Mean maps per class.

    Attributes:
        classes: ``K`` model class names.
        maps: float32 ``(K, S, S)``: mean of the per-image [0, 1] maps of the correctly classified
            images of each class (zeros where none).
        views: float32 ``(K, S, S, 3)``: mean model view (face) of the same images.
        counts: int64 ``(K,)``: images averaged per class (at most ``limit`` of the correct ones).
        correct: int64 ``(K,)``: correctly classified images of the class in the split.
        totals: int64 ``(K,)``: images of the class in the split.
        method, layers, model_name, dataset, split: provenance for titles and reports.
    """

    classes: list[str]
    maps: np.ndarray
    views: np.ndarray
    counts: np.ndarray
    correct: np.ndarray
    totals: np.ndarray
    method: str
    layers: list[str]
    model_name: str
    dataset: str
    split: str


def load_model(ref: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``"default"``, a run dir, a ``.safetensors`` (+ sidecar) or an ensemble JSON → ``(model, sidecar)``."""
    from ferbench.loader import load_checkpoint

    if str(ref) in ("default", "default-ferplus"):
        from ferbench.deploy.formats import resolve_model_ref

        _, path = resolve_model_ref(str(ref))  # one-line FerbenchError when not shipped
        return load_checkpoint(path)
    if Path(ref).suffix == ".onnx":
        raise FerbenchError(f"{ref}: explanations need gradients; pass the PyTorch checkpoint "
                            "(run dir or .safetensors), not the ONNX export")
    return load_checkpoint(ref)


def parse_target(target: str | int | None, classes: Sequence[str]) -> int | None:
    """``"predicted"``/``None`` → ``None``; a class name (any synonym) or index → its index.

    Unknown names raise a one-line error listing the model's classes.
    """
    if target is None or str(target).lower() in ("predicted", "pred", ""):
        return None
    t = str(target).strip()
    if t.isdigit() and int(t) < len(classes):
        return int(t)
    names = [c.lower() for c in classes]
    if t.lower() in names:
        return names.index(t.lower())
    canon = canonical_name(t)
    if canon is not None and canon in names:
        return names.index(canon)
    raise FerbenchError(f"--target {target!r}: not a class of this model ({', '.join(classes)}) "
                        "nor 'predicted'")


def model_view(x: torch.Tensor, pre: Preprocessing) -> np.ndarray:
    """Undo the normalisation: ``(N, C, S, S)`` model input → float32 ``(N, S, S, 3)`` in [0, 1]."""
    mean = torch.tensor(pre.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype).view(1, -1, 1, 1)
    v = (x * std + mean).clamp(0, 1)
    if v.shape[1] == 1:
        v = v.expand(-1, 3, -1, -1)
    return v.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)


def to_input(images: Sequence[np.ndarray] | torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 faces (a ``(N, H, W, C)`` tensor or a list of ``(H, W, C)`` arrays of any size) → model input."""
    if isinstance(images, torch.Tensor):
        return pre(images).contiguous()
    if not len(images):
        raise FerbenchError("explain: no images")
    return torch.cat([pre(torch.from_numpy(np.array(im, dtype=np.uint8))[None]) for im in images]).contiguous()


@torch.no_grad()
def _probs(model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(x[i:i + batch_size]).float(), 1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).cpu().numpy().astype(np.float32)


def _baseline(pre: Preprocessing) -> torch.Tensor:
    """A black image in model-input space, the integrated-gradients baseline: ``(1, C, S, S)``."""
    return pre(torch.zeros(1, pre.size, pre.size, pre.channels, dtype=torch.uint8))


def explain_images(model: nn.Module, meta: dict[str, Any], images: Sequence[np.ndarray] | torch.Tensor,
                   method: str = "gradcam", target: str | int | None = None,
                   sources: Sequence[str] | None = None, target_layer: str | None = None,
                   batch_size: int = 32, on_batch: Callable[[int], None] | None = None) -> Explanation:
    """Explain a checkpoint's decision on face crops.

    Args:
        model: classifier from :func:`load_model` (eval mode).
        meta: its sidecar (``classes``, ``preprocessing``).
        images: uint8 faces: a ``(N, H, W, C)`` tensor or a list of ``(H, W, C)`` arrays.
        method: one of :data:`~ferbench.explain.cam.METHODS`.
        target: ``None``/``"predicted"`` (each face's top class), a class name or index.
        sources: names for the faces (default ``"0"``, ``"1"``, …).
        target_layer: dotted layer path overriding the registry's (CAM methods).
        batch_size: faces per backward pass.
        on_batch: called with the number of faces done after each batch (progress bars).

    Returns:
        :class:`Explanation` with maps at the model's input size.
    """
    if method not in METHODS:
        raise FerbenchError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")
    classes = list(meta["classes"])
    pre = Preprocessing.from_dict(meta["preprocessing"])
    fixed = parse_target(target, classes)
    x = to_input(images, pre)
    probs = _probs(model, x, batch_size)
    targets = probs.argmax(1) if fixed is None else np.full(len(x), fixed)
    maps, layers = [], []
    for i in range(0, len(x), batch_size):
        m, layers = attribution_maps(model, x[i:i + batch_size], torch.from_numpy(targets[i:i + batch_size]),
                                     method, target_layer, _baseline(pre), batch_size)
        maps.append(m)
        if on_batch is not None:
            on_batch(min(i + batch_size, len(x)))
    names = list(sources) if sources is not None else [str(i) for i in range(len(x))]
    return Explanation(names, model_view(x, pre), np.concatenate(maps), probs, targets.astype(np.int64),
                       classes, method, layers)


def _is_face_crop(image: np.ndarray, input_size: int) -> bool:
    """Small images (shorter side ≤ 2× the model input, e.g. FER2013's 48 px) are taken as face crops."""
    return min(image.shape[:2]) <= 2 * input_size


@functools.lru_cache(maxsize=4)
def _detector(name: str) -> Any:
    from ferbench.faces import get_detector

    return get_detector(name)


def faces_from_image(image: np.ndarray, source: str, pre: Preprocessing, detector: str = "auto",
                     notes: list[str] | None = None) -> list[Face]:
    """The faces of one uint8 RGB image.

    ``detector``: ``"none"`` = the image is a face crop; ``"auto"`` = small images are face crops and
    larger ones go through ``ferbench.faces``' default (blazeface) detector (whole image when no face is found or
    the detector package is missing); a detector name = always detect, no face → no entry.
    One-line remarks are appended to ``notes``.
    """
    notes = notes if notes is not None else []
    if detector not in DETECT_MODES:
        raise FerbenchError(f"unknown --detector {detector!r}; choose one of {', '.join(DETECT_MODES)}")
    if detector == "none" or (detector == "auto" and _is_face_crop(image, pre.size)):
        return [Face(source, image)]
    try:
        from ferbench.faces import crop_face
    except ImportError:
        notes.append("no face detector available (ferbench.faces): photos are explained as whole images")
        return [Face(source, image)]
    found = _detector("blazeface" if detector == "auto" else detector).detect(image)
    if len(found) == 0:
        if detector == "auto":
            notes.append(f"{source}: no face found; explaining the whole image")
            return [Face(source, image)]
        notes.append(f"{source}: no face found; skipped")
        return []
    faces = [crop_face(image, box, pre.crop_margin, shift=pre.crop_shift) for box in found.boxes]
    if len(faces) == 1:
        return [Face(source, faces[0])]
    return [Face(f"{source}#face{i + 1}", f) for i, f in enumerate(faces)]


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image files; missing paths raise one line."""
    from ferbench.data.images import IMAGE_EXTS

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise FerbenchError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FerbenchError(f"{p}: no such file or folder")
    return out


def read_faces(paths: Sequence[str | Path], pre: Preprocessing, detector: str = "auto",
               notes: list[str] | None = None) -> list[Face]:
    """Read image files/folders and return their faces; unreadable files are noted and skipped."""
    from ferbench.data.images import read_image

    notes = notes if notes is not None else []
    faces: list[Face] = []
    for f in image_files(paths):
        try:
            image = read_image(f)
        except FerbenchError as e:
            notes.append(f"{e}; skipped")
            continue
        faces += faces_from_image(image, str(f), pre, detector, notes)
    return faces
