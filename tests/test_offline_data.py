"""scripts/offline_data.py: the datasets carried to an offline machine in parts come back identical."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_fer_csv
from test_registry_union import write_ckplus, write_ferplus_votes


def _script():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("offline_data", REPO / "scripts" / "offline_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def full_root(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_fer_csv(root / "fer2013" / "fer2013.csv.gz", {"Training": 60, "PublicTest": 20, "PrivateTest": 20}, gz=True)
    write_ferplus_votes(root, 100)
    return write_ckplus(root, n_subjects=4)


def test_parts_rebuild_the_same_datasets(full_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ferbench.data import load_dataset

    od = _script()
    parts = od.pack(tmp_path / "pack", str(full_root), part_mb=0.05)  # 100 faces ≈ 0.17 MB xz → 4 parts
    assert len(parts) == 4
    assert (parts[0] / "ferplus" / "fer2013new.csv").is_file() and (parts[0] / "ckplus48" / "CK+48").is_dir()
    dest = tmp_path / "dest"
    for p in reversed(parts[1:]):  # any order; nothing is written until the last one arrives
        assert od.unpack(p, dest) is None
    assert "waiting for part(s) 1 of 4" in capsys.readouterr().out
    assert not (dest / "fer2013").exists()
    assert od.unpack(parts[0], dest) == dest / "fer2013" / "fer2013.csv"
    assert not (dest / ".parts").exists()
    assert od.unpack(parts[0], dest) == dest / "fer2013" / "fer2013.csv"  # again: nothing to do
    for name in ("fer2013", "ferplus", "ckplus"):
        a, b = load_dataset(name, full_root), load_dataset(name, dest)
        assert len(a) == len(b) > 0, name
        assert np.array_equal(a.images.numpy(), b.images.numpy()), name
        assert np.array_equal(a.labels.numpy(), b.labels.numpy()), name
        assert list(a.splits) == list(b.splits), name


def test_a_damaged_or_foreign_part_is_refused_in_one_line(full_root: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    od = _script()
    parts = od.pack(tmp_path / "pack", str(full_root), part_mb=0.1)
    blob = next(parts[1].glob("fer2013.pixels.xz.*"))
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    for p in parts[:-1]:
        od.unpack(p, dest)
    with pytest.raises(od.PackError, match=r"fer2013\.pixels\.xz\.002: SHA-256 differs from the manifest"):
        od.unpack(parts[-1], dest)
    assert not (dest / "fer2013").exists()
    data[10] ^= 0xFF  # the part sent again, intact: it replaces the damaged copy
    blob.write_bytes(bytes(data))
    assert od.unpack(parts[1], dest) == dest / "fer2013" / "fer2013.csv"
    assert od.main(["unpack", str(full_root), "--to", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {full_root}: no manifest.json (not a folder written by `offline_data.py pack`)"
    assert od.main(["pack", "--out", str(tmp_path / "p2"), "--data-root", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # --out pointing at a folder that is not an earlier pack (here: the data itself) is refused, nothing deleted
    n_files = sum(1 for _ in full_root.rglob("*"))
    assert od.main(["pack", "--out", str(full_root), "--data-root", str(full_root)]) == 2
    assert "is not a folder written by `offline_data.py pack`" in capsys.readouterr().err
    assert sum(1 for _ in full_root.rglob("*")) == n_files
    assert len(od.pack(tmp_path / "pack", str(full_root), part_mb=0.1)) == len(parts)  # an earlier pack: rewritten
