"""Decoded-image cache: uint8 arrays in one ``.npz``-free folder, written atomically.

Keyed by the source files' size and mtime, so editing the data invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ferbench.persist.atomic import atomic_write_text, atomic_write_with

CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$FERBENCH_CACHE`` or ``~/.cache/ferbench``."""
    return Path(os.environ.get("FERBENCH_CACHE", Path.home() / ".cache" / "ferbench"))


def source_key(paths: list[Path], extra: str = "") -> str:
    """Hash of (path, size, mtime) of every source file plus ``extra``."""
    h = hashlib.sha1(f"v{CACHE_VERSION}{extra}".encode())
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def load_cached(name: str, key: str) -> dict[str, Any] | None:
    """Arrays + meta saved by :func:`save_cached`, or ``None`` when absent/stale."""
    d = cache_dir() / f"{name}-{key}"
    meta_path = d / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    out: dict[str, Any] = {"meta": meta}
    for arr in meta["arrays"]:
        out[arr] = np.load(d / f"{arr}.npy", allow_pickle=False)
    return out


def save_cached(name: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Save arrays (``.npy``, no pickle) then ``meta.json`` last, each atomically."""
    d = cache_dir() / f"{name}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    for k, a in arrays.items():
        atomic_write_with(d / f"{k}.npy", lambda tmp, a=a: np.save(tmp, a, allow_pickle=False), suffix=".npy")
    atomic_write_text(d / "meta.json", json.dumps({**meta, "arrays": list(arrays)}))
