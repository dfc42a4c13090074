"""Atomic writes: a temp file in the target's folder, fsync, then ``os.replace``.

A killed process therefore leaves either the old file or the new one, never half of one. Temp files are
named ``.<target>.tmp<pid>`` so :func:`clean_temp_files` can remove the ones a killed process left behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

_TMP = re.compile(r"^\..+\.tmp(\d+)(\.\w+)?$")


def temp_path(path: Path, suffix: str = "") -> Path:
    """The temp name used for an atomic write of ``path`` by this process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")


def atomic_write_with(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` atomically (the temp file is removed on error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write_with(Path(path), lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove temp files of atomic writes whose writer process is gone; returns the removed paths.

    Called when a run or sweep starts, so a ``kill -9`` during a write leaves nothing behind for long.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and p.is_file() and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
