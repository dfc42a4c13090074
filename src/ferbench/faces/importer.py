"""``ferbench data import``: uncropped face photos (JAFFE/KDEF-style) → a cropped ImageFolder.

Input: ``PATH/<class>/*`` or ``PATH/<split>/<class>/*`` (as ``folder:PATH``). Output mirrors the
tree with one face crop per image (the largest face), so ``folder:OUT`` trains or evaluates on it.
Images with no face, or unreadable ones, are listed in ``OUT/import_log.txt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from ferbench.data.folder import scan_folder
from ferbench.data.images import read_image
from ferbench.errors import FerbenchError
from ferbench.faces.crop import crop_face
from ferbench.faces.detectors import Detector, get_detector
from ferbench.persist.atomic import atomic_write_text


@dataclass
class ImportReport:
    written: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    log: Path | None = None


def import_faces(src: str | Path, out: str | Path, detector: str | Detector = "blazeface", size: int = 96,
                 margin: float = 0.1, grey: bool = False, align: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Detect, crop (square + ``margin``, ``size``×``size``, optional eye alignment) and write PNGs.

    Args:
        src: ``folder:PATH`` or ``PATH`` with class sub-folders (optionally inside split folders).
        out: output root; ``OUT[/<split>]/<class>/<stem>.png``.
        grey: write 8-bit grey PNGs (else RGB).
    Returns:
        counts and the lists of files with no face / unreadable (also written to ``OUT/import_log.txt``).
    """
    root = Path(str(src).removeprefix("folder:"))
    files, classes, splits = scan_folder(root)
    det = get_detector(detector) if isinstance(detector, str) else detector
    out = Path(out)
    if out.resolve() == root.resolve():
        raise FerbenchError(f"--out {out}: must differ from the input folder")
    rep = ImportReport()
    for i, (f, c, s) in enumerate(zip(files, classes, splits, strict=True)):
        try:
            rgb = read_image(f)
        except FerbenchError as e:
            rep.unreadable.append(f"{f}\t{e}")
            continue
        d = det.detect(rgb)
        if len(d) == 0:
            rep.no_face.append(str(f))
        else:
            lm = None if d.landmarks is None else d.landmarks[0]
            crop = crop_face(rgb, d.boxes[0], margin, size, lm, align)
            dest = (out if s == "all" else out / s) / c / (f.stem + ".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            img = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if grey else cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(dest), img):
                raise FerbenchError(f"{dest}: cannot write")
            rep.written += 1
        if progress is not None:
            progress(i + 1, len(files))
    lines = [f"# ferbench data import {root} -> {out}: {rep.written} written, {len(rep.no_face)} no face, "
             f"{len(rep.unreadable)} unreadable"]
    lines += [f"no_face\t{p}" for p in rep.no_face] + [f"unreadable\t{p}" for p in rep.unreadable]
    out.mkdir(parents=True, exist_ok=True)
    rep.log = out / "import_log.txt"
    atomic_write_text(rep.log, "\n".join(lines) + "\n")
    return rep
