"""Where datasets are found: --data-root, then $FERBENCH_DATA, then ./data, then ../shared/data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ferbench.errors import DataError

# Where each built-in dataset's files may sit under a data root (first found wins)
FER2013_FILES = ("fer2013/fer2013.csv", "fer2013/fer2013.csv.gz", "fer2013.csv", "fer2013.csv.gz")
FERPLUS_FILES = ("ferplus/fer2013new.csv", "fer2013new.csv")
CKPLUS_DIRS = ("ckplus48/CK+48", "CK+48", "ckplus48")


def candidate_roots(data_root: str | Path | None = None) -> list[Path]:
    """Data roots in priority order (only existing directories)."""
    cands: list[Path] = []
    if data_root:
        p = Path(data_root).expanduser()
        if not p.is_dir():
            raise DataError(f"--data-root {p}: no such directory")
        return [p]
    if os.environ.get("FERBENCH_DATA"):
        cands.append(Path(os.environ["FERBENCH_DATA"]).expanduser())
    cands += [Path("data"), Path("..") / "shared" / "data"]
    return [c for c in cands if c.is_dir()]


def find_in_roots(relpaths: Sequence[str], data_root: str | Path | None, what: str) -> Path:
    """First existing ``root/relpath`` over the candidate roots; a one-line error when none exists."""
    roots = candidate_roots(data_root)
    for r in roots:
        for rel in relpaths:
            if (r / rel).exists():
                return r / rel
    if not roots:
        raise DataError(f"{what}: no data root found (looked for $FERBENCH_DATA, ./data, ../shared/data); "
                        "pass --data-root DIR")
    looked = ", ".join(str(r) for r in roots)
    raise DataError(f"{what}: none of {', '.join(relpaths)} found under {looked}; pass --data-root DIR")
