import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_root, write_fer_csv, write_folder

from ferbench.data import canonical_name, carve_splits, kfold, load_dataset
from ferbench.data.fer2013 import ferplus_majority
from ferbench.errors import DataError


def test_fer2013_csv_and_gz(tmp_path: Path) -> None:
    write_fer_csv(tmp_path / "a" / "fer2013" / "fer2013.csv", {"Training": 14, "PublicTest": 7})
    write_fer_csv(tmp_path / "b" / "fer2013" / "fer2013.csv.gz", {"Training": 14, "PublicTest": 7}, gz=True)
    a = load_dataset("fer2013", tmp_path / "a")
    b = load_dataset("fer2013", tmp_path / "b")
    assert a.images.shape == (21, 48, 48, 1) and a.images.dtype.is_floating_point is False
    assert a.counts() == {"Training": [2] * 7, "PublicTest": [1] * 7}
    assert (a.images == b.images).all() and (a.labels == b.labels).all()
    assert a.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_fer2013_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fer2013: none of fer2013/fer2013.csv"):
        load_dataset("fer2013", tmp_path)


def test_no_data_root_at_all_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --data-root, $FERBENCH_DATA, ./data or ../shared/data the error names the places searched."""
    from ferbench.data.root import CKPLUS_DIRS, find_in_roots

    monkeypatch.delenv("FERBENCH_DATA", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(DataError) as e:
        find_in_roots(CKPLUS_DIRS, None, "ckplus")
    assert str(e.value) == ("ckplus: no data root found (looked for $FERBENCH_DATA, ./data, ../shared/data); "
                            "pass --data-root DIR")


def test_fer2013_wrong_columns(tmp_path: Path) -> None:
    p = tmp_path / "fer2013" / "fer2013.csv"
    p.parent.mkdir()
    p.write_text("label,pixels,Usage\n0,1 2,Training\n")
    with pytest.raises(DataError, match=r"fer2013.csv: expected columns emotion,pixels,Usage, found label,pixels,Usage"):
        load_dataset("fer2013", tmp_path)


def test_fer2013_bad_pixel_count_names_row(tmp_path: Path) -> None:
    p = write_fer_csv(tmp_path / "fer2013" / "fer2013.csv", {"Training": 3})
    lines = p.read_text().splitlines()
    lab, pixels, usage = lines[2].split(",")
    lines[2] = f"{lab},{' '.join(pixels.split()[:2303])},{usage}"  # file row 3
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"fer2013.csv row 3: 2303 pixel values, expected 2304"):
        load_dataset("fer2013", tmp_path, use_cache=False)


def test_folder_dataset_synonyms_and_splits(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", ["Anger", "happiness", "surprised", "Neutral"], n=10, mode="RGB")
    ds = load_dataset(f"folder:{root}")
    assert ds.classes == ["angry", "happy", "surprise", "neutral"]
    assert ds.images.shape == (40, 32, 32, 3)
    assert set(ds.split_names) == {"train", "val", "test"}
    assert sum(sum(v) for v in ds.counts().values()) == 40


def test_folder_with_split_subdirs(tmp_path: Path) -> None:
    write_folder(tmp_path / "ds" / "train", ["sad", "happy"], n=8)
    write_folder(tmp_path / "ds" / "test", ["sad", "happy"], n=3)
    ds = load_dataset(f"folder:{tmp_path / 'ds'}")
    assert set(ds.split_names) == {"train", "val", "test"}
    assert len(ds.split("test")) == 6


def test_unknown_class_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "ds", ["happy", "bored"], n=2)
    with pytest.raises(DataError, match=r"bored: unknown class folder 'bored'"):
        load_dataset(f"folder:{tmp_path / 'ds'}")


def test_unreadable_image_named(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", ["happy", "sad"], n=2)
    (root / "sad" / "zz_broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"zz_broken.png: unreadable image"):
        load_dataset(f"folder:{root}")


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "fer2013" / "fer2013.csv"
    p.parent.mkdir()
    p.write_text("emotion,pixels\n0,1\n")
    r = subprocess.run([sys.executable, "-m", "ferbench.cli.main", "data", "info", "fer2013", "--data-root",
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "expected columns emotion,pixels,Usage" in r.stderr


def test_taxonomy_synonyms() -> None:
    assert canonical_name("Happiness") == "happy"
    assert canonical_name("surprised") == "surprise"
    assert canonical_name("anger") == "angry"
    assert canonical_name("SADNESS") == "sad"
    assert canonical_name("bored") is None


def test_ferplus_majority_rule() -> None:
    votes = np.array([
        [6, 2, 0, 0, 1, 0, 0, 0, 1, 0],   # neutral: 6 > 0.5 * 8 (the single votes are dropped)
        [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],   # tie, 4 not > 5 → unknown
        [0, 0, 0, 0, 0, 0, 0, 3, 0, 0],   # contempt
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],   # everything ≤ 1 → unknown
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
    ])
    assert ferplus_majority(votes).tolist() == [0, 8, 7, 8, 9]


def test_subject_independent_splits_and_kfold() -> None:
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(40), 6).astype(str)
    labels = rng.integers(0, 3, len(subjects))
    s = carve_splits(labels, groups=subjects, seed=0)
    for a in ("train", "val", "test"):
        for b in ("train", "val", "test"):
            if a < b:
                assert not set(subjects[s == a]) & set(subjects[s == b])
    folds = kfold(labels, 5, seed=10, groups=subjects)
    assert len(folds) == 5
    for tr, te in folds:
        assert not set(subjects[tr]) & set(subjects[te])
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(labels)))


real = pytest.mark.skipif(real_data_root() is None, reason="real datasets (../shared/data) not present")


@real
def test_real_counts_match_data_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERBENCH_CACHE")  # the user's real cache: this is what makes re-loads fast
    root = real_data_root()
    fer = load_dataset("fer2013", root)
    assert fer.counts() == {
        "Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
        "PublicTest": [467, 56, 496, 895, 653, 415, 607],
        "PrivateTest": [491, 55, 528, 879, 594, 416, 626],
    }
    t0 = time.perf_counter()
    again = load_dataset("fer2013", root)
    assert time.perf_counter() - t0 < 3.0, "second (cached) load of FER2013 must take < 3 s"
    assert (again.images == fer.images).all()
    fp = load_dataset("ferplus", root)
    assert len(fp) == 31412
    got = dict(zip(fp.classes, np.bincount(fp.labels.numpy()).tolist(), strict=True))
    assert got == {"neutral": 11012, "happy": 9045, "surprise": 3960, "sad": 3749, "angry": 2660, "fear": 677,
                   "disgust": 161, "contempt": 148}
    assert fp.soft_labels is not None and np.allclose(fp.soft_labels.sum(1).numpy(), 1.0)
    ck = load_dataset("ckplus", root)
    assert len(ck) == 981 and len(set(ck.subjects)) == 118
    assert dict(zip(ck.classes, np.bincount(ck.labels.numpy()).tolist(), strict=True)) == {
        "angry": 135, "disgust": 177, "fear": 75, "happy": 207, "sad": 84, "surprise": 249, "contempt": 54}


def test_split_all_is_every_sample_and_unknown_splits_list_it(tiny_root: Path) -> None:
    from ferbench.data import load_dataset
    from ferbench.errors import DataError

    ds = load_dataset("fer2013", tiny_root)
    assert len(ds.split("all")) == len(ds) == 280
    assert ds.split("all").counts() == ds.counts()
    with pytest.raises(DataError, match=r"no split 'nope' \(splits: .*PrivateTest.*, all\)"):
        ds.split("nope")
