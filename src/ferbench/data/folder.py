"""ImageFolder-style datasets (``PATH/<class>/*`` or ``PATH/<split>/<class>/*``) and CK+48."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferbench.data.cache import load_cached, save_cached, source_key
from ferbench.data.dataset import FerDataset
from ferbench.data.root import CKPLUS_DIRS, find_in_roots
from ferbench.data.splits import carve_splits
from ferbench.data.taxonomy import CANONICAL, canonical_name
from ferbench.errors import DataError, FerbenchError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}


def _class_dirs(root: Path) -> list[tuple[str, Path]]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        c = canonical_name(d.name)
        if c is None:
            raise DataError(f"{d}: unknown class folder {d.name!r} (known: {', '.join(CANONICAL)} and synonyms)")
        out.append((c, d))
    return out


def scan_folder(root: Path) -> tuple[list[Path], list[str], list[str]]:
    """List image files under ``root``: (files, canonical class per file, split per file)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if subdirs and all(p.name.lower() in SPLIT_DIRS for p in subdirs):
        layout = [(SPLIT_DIRS[p.name.lower()], p) for p in sorted(subdirs)]
    else:
        layout = [("all", root)]
    files, classes, splits = [], [], []
    for split, sroot in layout:
        for cname, cdir in _class_dirs(sroot):
            for f in sorted(cdir.rglob("*")):
                if f.suffix.lower() in IMAGE_EXTS:
                    files.append(f)
                    classes.append(cname)
                    splits.append(split)
    if not files:
        raise DataError(f"{root}: no images found (expected {root}/<class>/*.png|jpg|tif)")
    return files, classes, splits


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """Read one image as uint8 ``(size, size, channels)``; unreadable or over-budget → DataError naming the file.

    Decoding goes through the shared decoder (pixel budget checked on the header first, 16-bit scaled).
    """
    from ferbench.data.images import ImageTooLarge, decode_pil

    try:
        a = decode_pil(path, str(path), mode="L" if channels == 1 else "RGB")
    except ImageTooLarge as e:
        raise DataError(str(e)) from None
    except FerbenchError as e:
        raise DataError(f"{path}: unreadable image ({str(e).removeprefix(f'{path}: ')})") from None
    except OSError as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__})") from None
    if a.shape[:2] != (size, size):
        a = np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return a[..., None] if channels == 1 else a


def _probe(files: list[Path]) -> tuple[int, int]:
    """Common size and channel count of the first images (grey if all are grey); headers only."""
    from ferbench.data.images import image_size

    sizes, chans = [], 1
    for f in files[:50]:
        try:
            w, _, mode = image_size(f, str(f))
        except FerbenchError as e:
            raise DataError(f"{f}: unreadable image ({str(e).removeprefix(f'{f}: ')})") from None
        except OSError as e:
            raise DataError(f"{f}: unreadable image ({type(e).__name__})") from None
        sizes.append(w)
        if mode not in ("L", "I;16", "I;16B", "I;16L", "1", "I", "F", "LA"):
            chans = 3
    return max(set(sizes), key=sizes.count), chans


def load_folder(path: str | Path, *, image_size: int | None = None, channels: int | None = None,
                seed: int = 0, use_cache: bool = True, name: str | None = None) -> FerDataset:
    """Any ImageFolder tree. Images are resized to ``image_size`` (default: the most common side).

    Without split sub-folders the data is carved into train/val/test 70/15/15, stratified.
    """
    root = Path(path)
    files, cls, splits = scan_folder(root)
    size, chans = _probe(files)
    size = image_size or size
    chans = channels or chans
    classes = [c for c in CANONICAL if c in set(cls)]
    key = source_key(files, extra=f"{size}-{chans}")
    cached = load_cached("folder", key) if use_cache else None
    if cached is None:
        images = np.stack([decode_image(f, size, chans) for f in files])
        if use_cache:
            save_cached("folder", key, {"images": images}, {"root": str(root)})
    else:
        images = cached["images"]
    labels = np.array([classes.index(c) for c in cls], dtype=np.int64)
    ds = FerDataset(
        name=name or f"folder:{root}", classes=classes, images=torch.from_numpy(images),
        labels=torch.from_numpy(labels), splits=np.asarray(splits), source=str(root),
        rows=np.arange(len(files)), files=[str(f) for f in files],
    )
    if set(splits) == {"all"}:
        ds.splits = carve_splits(labels, seed=seed)
    elif "val" not in set(splits):
        train = np.flatnonzero(ds.splits == "train")
        sub = carve_splits(labels[train], fractions=(0.85, 0.15, 0.0), seed=seed)
        ds.splits[train] = sub
    return ds


_CK_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)")


def load_ckplus(data_root: str | Path | None = None, *, seed: int = 0, use_cache: bool = True) -> FerDataset:
    """CK+48: 981 grey 48×48 frames, 7 classes (with contempt, no neutral), subject-independent splits.

    Splits train/val/test (70/15/15 of subjects, seeded) keep every subject on one side.
    """
    root = find_in_roots(CKPLUS_DIRS, data_root, "ckplus")
    ds = load_folder(root, image_size=48, channels=1, use_cache=use_cache, name="ckplus")
    subjects = []
    for f in ds.files or []:
        m = _CK_NAME.match(Path(f).name)
        if not m:
            raise DataError(f"{f}: file name does not match S<subject>_<seq>_<frame>")
        subjects.append(m.group(1))
    ds.subjects = np.asarray(subjects)
    ds.splits = carve_splits(ds.labels.numpy(), groups=ds.subjects, seed=seed)
    return ds
