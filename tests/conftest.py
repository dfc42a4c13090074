"""Shared fixtures: tiny synthetic datasets (plumbing only) and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: one thread is faster than waking an OpenMP team
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def all_cores() -> object:
    """PyTorch on every core for the test (real-data passes over whole splits), back to one thread after.

    The suite runs torch on one thread (tiny tensors); a full FER2013 PrivateTest pass with h-flip TTA
    (7 178 forwards of ``fer_vgg_m``) took 60 s on one thread of the 2-core CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def real_data_root() -> Path | None:
    """The real datasets, if present (../shared/data next to the repo, or $FERBENCH_DATA)."""
    for cand in (os.environ.get("FERBENCH_DATA"), REPO.parent / "shared" / "data", REPO / "data"):
        if cand and (Path(cand) / "fer2013").is_dir():
            return Path(cand)
    return None


def write_fer_csv(path: Path, n_per_split: dict[str, int], seed: int = 0, gz: bool = False) -> Path:
    """A FER2013-format csv whose class is encoded by a bright patch position (learnable)."""
    import gzip

    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for split, n in n_per_split.items():
        for i in range(n):
            lab = i % 7
            img = rng.integers(0, 60, (48, 48))
            r, c = divmod(lab, 3)
            img[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 150
            lines.append(f"{lab},{' '.join(map(str, img.ravel()))},{split}")
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data root with a tiny learnable fer2013.csv (Training 140, PublicTest 70, PrivateTest 70)."""
    write_fer_csv(tmp_path / "fer2013" / "fer2013.csv", {"Training": 140, "PublicTest": 70, "PrivateTest": 70})
    return tmp_path


def write_folder(root: Path, classes: list[str], n: int = 6, size: int = 32, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            a = rng.integers(0, 255, shape).astype(np.uint8)
            Image.fromarray(a, mode=mode).save(root / c / f"S{ci:03d}_{i:03d}_{i:08d}.png")
    return root
