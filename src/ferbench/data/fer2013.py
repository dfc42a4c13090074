"""FER2013 (Kaggle csv: ``emotion,pixels,Usage``) and FER+ (``fer2013new.csv`` votes joined by row)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import torch

from ferbench.data.cache import load_cached, save_cached, source_key
from ferbench.data.dataset import FerDataset
from ferbench.data.root import FER2013_FILES, FERPLUS_FILES, find_in_roots
from ferbench.errors import DataError

# csv label order → canonical names (docs/protocol.md §7)
FER2013_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# fer2013new.csv vote columns, in file order; the first 8 are the FER+ classes
FERPLUS_VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                        "unknown", "NF"]
FERPLUS_CLASSES = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]


def _open_text(path: Path) -> io.TextIOBase:
    """Text reader; bytes that are not UTF-8 become surrogates, so the row holding them can be named."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _pixel_problem(p: str) -> str | None:
    """Why one ``pixels`` field is not 2304 integers in 0..255 (None when it is). Slow path: errors only."""
    if _not_utf8(p):
        return "bytes that are not UTF-8 text in the pixels field"
    vals = p.split()
    if len(vals) != 2304:
        return f"{len(vals)} pixel values, expected 2304 (48×48)"
    for k, v in enumerate(vals):
        if not v.isdigit() or not v.isascii():
            return f"pixel {k + 1} is {v[:20]!r}, not an integer 0..255"
        if int(v) > 255:
            return f"pixel {k + 1} is {v}, outside 0..255"
    return None


def find_fer2013_csv(data_root: str | Path | None = None) -> Path:
    return find_in_roots(FER2013_FILES, data_root, "fer2013")


def parse_fer2013_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse the Kaggle csv.

    Returns:
        images uint8 ``(N, 48, 48)``, labels int64 ``(N,)`` in csv order, usage str ``(N,)``.

    Raises:
        DataError naming the file (and row) for missing columns, bad pixel counts, bad labels.
    """
    try:
        f = _open_text(path)
        reader = csv.reader(f)
        header = next(reader, None)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    need = ["emotion", "pixels", "Usage"]
    if header is None or any(c not in header for c in need):
        raise DataError(f"{path}: expected columns {','.join(need)}, found {','.join(header or [])}")
    ie, ip, iu = (header.index(c) for c in need)
    width = max(ie, ip, iu) + 1
    labels, usage, pix, row_nos = [], [], [], []
    try:
        for row_no, row in enumerate(reader, start=2):  # row 1 is the header
            if not row:
                continue
            if len(row) < width:
                raise DataError(f"{path} row {row_no}: {len(row)} field(s), expected {','.join(header)}")
            try:
                lab = int(row[ie])
            except ValueError:
                what = "bytes that are not UTF-8 text" if _not_utf8(row[ie]) else repr(row[ie][:20])
                raise DataError(f"{path} row {row_no}: bad emotion value ({what}; expected 0..6)") from None
            if not 0 <= lab < 7:
                raise DataError(f"{path} row {row_no}: emotion {lab} outside 0..6")
            p = row[ip]
            if p.count(" ") != 2303 and (why := _pixel_problem(p)):  # double spaces alone are fine
                raise DataError(f"{path} row {row_no}: {why}")
            labels.append(lab)
            usage.append(row[iu])
            pix.append(p)
            row_nos.append(row_no)
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not labels:
        raise DataError(f"{path}: no data rows")
    bad_usage = next((u for u in set(usage) if _not_utf8(u)), None)
    if bad_usage is not None:
        raise DataError(f"{path} row {row_nos[usage.index(bad_usage)]}: bytes that are not UTF-8 text in the "
                        f"Usage field")
    images = np.empty((len(pix), 48, 48), dtype=np.uint8)
    for i in range(0, len(pix), 2048):  # chunks keep the temporary Python strings to ~100 MB
        chunk = pix[i:i + 2048]
        try:
            # numpy's C text parser: 6x faster than str.split + np.array; ValueError on a non-integer token,
            # out-of-range values saturate to the int64 limits (caught by the range check)
            flat = np.fromstring(" ".join(chunk), dtype=np.int64, sep=" ")
            bad = flat.size != 2304 * len(chunk) or flat.min() < 0 or flat.max() > 255
        except (ValueError, OverflowError):
            bad = True
        if bad:  # name the first offending row
            for j, p in enumerate(chunk):
                if why := _pixel_problem(p):
                    raise DataError(f"{path} row {row_nos[i + j]}: {why}")
            raise DataError(f"{path}: pixel values outside 0..255")  # not reached: a row is always named
        images[i:i + 2048] = flat.astype(np.uint8).reshape(-1, 48, 48)
    return images, np.asarray(labels, dtype=np.int64), np.asarray(usage)


def load_fer2013(data_root: str | Path | None = None, *, use_cache: bool = True) -> FerDataset:
    """FER2013: 35 887 grey 48×48 images, 7 classes, splits Training / PublicTest / PrivateTest."""
    path = find_fer2013_csv(data_root)
    key = source_key([path])
    cached = load_cached("fer2013", key) if use_cache else None
    if cached is None:
        images, labels, usage = parse_fer2013_csv(path)
        if use_cache:
            save_cached("fer2013", key, {"images": images, "labels": labels, "usage": usage.astype("U16")}, {})
    else:
        images, labels, usage = cached["images"], cached["labels"], cached["usage"]
    return FerDataset(
        name="fer2013",
        classes=list(FER2013_CLASSES),
        images=torch.from_numpy(np.ascontiguousarray(images))[..., None],
        labels=torch.from_numpy(labels),
        splits=usage.astype(str),
        source=str(path),
        rows=np.arange(len(labels)),
    )


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FER+ majority rule (docs/protocol.md §3.1) on vote counts ``(N, 10)`` → label ``(N,)``.

    Votes of ≤ 1 are zeroed (outliers); if the top remaining count exceeds half of the remaining
    votes it wins (ties → first column), else the image is "unknown". Returns the column index
    0..9; 8 (unknown) and 9 (NF) mean "drop".
    """
    v = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = v.sum(1)
    top = v.argmax(1)
    ok = v.max(1) > 0.5 * total
    return np.where(ok & (total > 0), top, 8)


def load_ferplus_votes(data_root: str | Path | None = None) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``fer2013new.csv``: (path, usage ``(N,)``, has_image ``(N,)`` bool, votes int ``(N, 10)``)."""
    path = find_in_roots(FERPLUS_FILES, data_root, "ferplus")
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        need = ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{path}: missing columns {','.join(missing)}")
        cols = [header.index(c) for c in FERPLUS_VOTE_COLUMNS]
        iu, ii = header.index("Usage"), header.index("Image name")
        usage, has_img, votes = [], [], []
        for row_no, row in enumerate(reader, start=2):
            try:
                votes.append([int(row[c]) for c in cols])
            except (ValueError, IndexError):
                raise DataError(f"{path} row {row_no}: bad vote counts") from None
            usage.append(row[iu])
            has_img.append(bool(row[ii].strip()))
    return path, np.asarray(usage), np.asarray(has_img), np.asarray(votes, dtype=np.int64)


def load_ferplus(data_root: str | Path | None = None, *, use_cache: bool = True) -> FerDataset:
    """FER+: FER2013 pixels with majority-vote labels over 8 classes, plus vote distributions.

    Split names follow FER2013 (Training / PublicTest / PrivateTest; FER+ calls them
    train / valid / test).
    """
    fer = load_fer2013(data_root, use_cache=use_cache)
    vpath, usage, has_img, votes = load_ferplus_votes(data_root)
    if len(usage) != len(fer):
        raise DataError(f"{vpath}: {len(usage)} rows but {fer.source} has {len(fer)}; rows must align")
    lab = ferplus_majority(votes)
    keep = np.flatnonzero(has_img & (lab < 8))
    soft = votes[:, :8].astype(np.float32)
    soft = soft / np.clip(soft.sum(1, keepdims=True), 1, None)
    ds = fer.subset(keep)
    ds.name = "ferplus"
    ds.classes = list(FERPLUS_CLASSES)
    ds.labels = torch.from_numpy(lab[keep])
    ds.soft_labels = torch.from_numpy(soft[keep])
    ds.source = f"{fer.source} + {vpath}"
    return ds


def fer2013_ferplus_soft_labels(fer: FerDataset, data_root: str | Path | None = None) -> torch.Tensor:
    """FER+ vote distributions for FER2013 rows, in FER2013's 7 classes ``(N, 7)`` float32.

    Rows FER+ dropped (no image, or no emotion votes) get the one-hot FER2013 label.
    """
    _, _, has_img, votes = load_ferplus_votes(data_root)
    order = [FERPLUS_CLASSES.index(c) for c in FER2013_CLASSES]
    v = votes[:, order].astype(np.float32)[fer.rows]
    s = v.sum(1, keepdims=True)
    onehot = np.eye(7, dtype=np.float32)[fer.labels.numpy()]
    ok = (s[:, 0] > 0) & has_img[fer.rows]
    out = np.where(ok[:, None], v / np.clip(s, 1, None), onehot)
    return torch.from_numpy(out)
