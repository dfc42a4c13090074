"""Carry the bundled datasets to an offline machine in parts small enough for a size-capped transfer.

    python scripts/offline_data.py pack --out .devdata [--data-root DIR] [--part-mb 30]
    python scripts/offline_data.py unpack .devdata/part-1 --to /tmp/ferdata      # on the other machine
    python scripts/offline_data.py unpack .devdata/part-2 --to /tmp/ferdata      # FER2013 is written with the last part
    FERBENCH_DATA=/tmp/ferdata ferbench sweep ...

For a GPU box that has its own PyTorch but no network and takes the working tree plus at most a few tens of
MB per call (the FER2013 csv is 301 MB, its gzip 94 MB). ``pack`` reads FER2013 with ferbench's own parser
and stores its pixels as one uint8 ``(N, 48, 48)`` array, xz-compressed with a delta filter (59 MB, 72 % of the
83 MB raw), cut into parts of ``--part-mb``; part 1 also holds the FER+ vote file and CK+48 (6 MB). ``unpack``
copies a part's files under ``--to``/.parts; once every part is there it checks each file's SHA-256 and the
decoded array's, and writes ``--to``/fer2013/fer2013.csv in the Kaggle format, which ferbench's loader then
parses to the same images, labels and splits. It needs only the standard library and numpy (no torch, no
ferbench), so it runs under any Python ≥ 3.10 there. Re-running either command is safe: ``pack`` rewrites
its own earlier folder (and refuses any other), ``unpack`` replaces a part sent again (a damaged copy too) and
does nothing once the csv is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
BLOB = "fer2013.pixels.xz"
FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": 9}]


class PackError(Exception):
    """A one-line problem with the data or the parts."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(out: Path, data_root: str | None, part_mb: float) -> list[Path]:
    """Write ``out``/part-1 … part-K; returns the part folders. Needs ferbench (its FER2013 parser)."""
    from ferbench.data.fer2013 import find_fer2013_csv, parse_fer2013_csv
    from ferbench.data.root import CKPLUS_DIRS, FERPLUS_FILES, find_in_roots
    from ferbench.errors import FerbenchError
    from ferbench.persist.atomic import atomic_write_bytes

    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "part-1" / MANIFEST).is_file())):
        raise PackError(f"{out}: exists and is not a folder written by `offline_data.py pack`; choose a new or "
                        "empty folder")
    try:
        csv_path = find_fer2013_csv(data_root)
        ferplus = find_in_roots(FERPLUS_FILES, data_root, "ferplus")
        ckplus = find_in_roots(CKPLUS_DIRS, data_root, "ckplus")
        images, labels, usage = parse_fer2013_csv(csv_path)
    except FerbenchError as e:
        raise PackError(str(e)) from None
    raw = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    blob = lzma.compress(raw, format=lzma.FORMAT_XZ, filters=FILTERS)
    size = max(1, int(part_mb * 1e6))
    chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
    if out.exists():
        shutil.rmtree(out)  # an earlier pack (checked above): rewritten
    dirs = [out / f"part-{k + 1}" for k in range(len(chunks))]
    manifest = {"format": 1, "source": csv_path.name, "rows": len(labels), "shape": list(images.shape),
                "pixels_sha256": _sha256(raw), "labels": labels.tolist(), "usage": [str(u) for u in usage],
                "parts": [{"part": k + 1, "file": f"{BLOB}.{k + 1:03d}", "bytes": len(c), "sha256": _sha256(c)}
                          for k, c in enumerate(chunks)]}
    for d, c, p in zip(dirs, chunks, manifest["parts"], strict=True):
        d.mkdir(parents=True)
        atomic_write_bytes(d / p["file"], c)
    first = dirs[0]
    (first / "ferplus").mkdir()
    shutil.copy2(ferplus, first / "ferplus" / "fer2013new.csv")
    shutil.copytree(ckplus, first / "ckplus48" / "CK+48")
    for d in dirs:  # every part carries the manifest, so any one tells what is still missing
        atomic_write_bytes(d / MANIFEST, json.dumps(manifest).encode())
    return dirs


def unpack(part: Path, root: Path) -> Path | None:
    """Copy ``part`` under ``root``; when all parts are there, write ``root``/fer2013/fer2013.csv and return it."""
    man_path = part / MANIFEST
    if not man_path.is_file():
        raise PackError(f"{part}: no {MANIFEST} (not a folder written by `offline_data.py pack`)")
    manifest = json.loads(man_path.read_text())
    csv_path = root / "fer2013" / "fer2013.csv"
    if csv_path.is_file():  # built by an earlier call: nothing to do
        return csv_path
    stash = root / ".parts"
    stash.mkdir(parents=True, exist_ok=True)
    for src in sorted(part.rglob("*")):  # every file, always: a part sent again replaces a damaged copy
        if src.is_dir() or src.name == MANIFEST:
            continue
        rel = src.relative_to(part)
        dest = stash / rel if rel.name.startswith(BLOB) else root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest.with_name(dest.name + ".tmp"))
        dest.with_name(dest.name + ".tmp").replace(dest)
    missing = [p["part"] for p in manifest["parts"] if not (stash / p["file"]).is_file()]
    if missing:
        print(f"{part}: staged; waiting for part(s) {', '.join(map(str, missing))} of {len(manifest['parts'])}")
        return None
    blob = bytearray()
    for p in manifest["parts"]:
        path = stash / p["file"]
        data = path.read_bytes()
        if _sha256(data) != p["sha256"]:
            raise PackError(f"{path}: SHA-256 differs from the manifest (damaged or from another pack)")
        blob += data
    try:
        raw = lzma.decompress(bytes(blob), format=lzma.FORMAT_XZ)
    except lzma.LZMAError as e:
        raise PackError(f"{stash}: the joined parts do not decompress ({e})") from None
    if _sha256(raw) != manifest["pixels_sha256"]:
        raise PackError(f"{stash}: decoded pixels differ from the packed ones")
    images = np.frombuffer(raw, dtype=np.uint8).reshape(manifest["shape"])
    write_fer2013_csv(csv_path, images, manifest["labels"], manifest["usage"])
    shutil.rmtree(stash)
    return csv_path


def write_fer2013_csv(path: Path, images: np.ndarray, labels: list[int], usage: list[str]) -> None:
    """Kaggle format: header ``emotion,pixels,Usage``; 2 304 space-separated values per row; ``\\n`` endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    flat = images.reshape(len(images), -1)
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        f.write("emotion,pixels,Usage\n")
        for y, px, u in zip(labels, flat, usage, strict=True):
            f.write(f"{int(y)},{' '.join(map(str, px.tolist()))},{u}\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write the datasets as parts (here, with ferbench installed)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--part-mb", type=float, default=30.0, help="largest part in MB (default 30)")
    u = sub.add_parser("unpack", help="stage one part; the last one writes the data root")
    u.add_argument("part", type=Path)
    u.add_argument("--to", type=Path, required=True, help="data root to build (then FERBENCH_DATA=it)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            dirs = pack(args.out, args.data_root, args.part_mb)
            for d in dirs:
                mb = sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 1e6
                print(f"{d}: {mb:.1f} MB")
        else:
            done = unpack(args.part, args.to)
            if done is not None:
                print(f"{args.to}: FER2013, FER+ votes and CK+48 in place (FERBENCH_DATA={args.to})")
    except (PackError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
