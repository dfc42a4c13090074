"""The dataset registry (one table, adapters that register themselves) and union datasets."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbench.data import load_dataset, split_name
from ferbench.data import registry as reg
from ferbench.data.union import member_counts, parse_dataset_names
from ferbench.errors import DataError

CK_FOLDERS = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]


def write_ckplus(root: Path, n_subjects: int = 24, seed: int = 0) -> Path:
    """A CK+48-layout tree (``ckplus48/CK+48/<class>/S<subj>_<seq>_<frame>.png``): every subject shows 3
    expressions, 2 frames each; the class is a bright patch (as the tiny FER2013 csv)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "ckplus48" / "CK+48"
    for s in range(n_subjects):
        for k in range(3):
            ci = (s + 2 * k) % len(CK_FOLDERS)
            d = base / CK_FOLDERS[ci]
            d.mkdir(parents=True, exist_ok=True)
            for f in range(2):
                a = rng.integers(0, 60, (48, 48))
                r, c = divmod(ci, 3)
                a[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 150
                Image.fromarray(a.astype(np.uint8), mode="L").save(d / f"S{s:03d}_{k + 1:03d}_{f:08d}.png")
    return root


def write_ferplus_votes(root: Path, n: int, seed: int = 0) -> Path:
    """``ferplus/fer2013new.csv`` for ``n`` FER2013 rows (random votes, 10 per image; row 0 not a face)."""
    rng = np.random.default_rng(seed)
    cols = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    lines = [cols]
    for i in range(n):
        v = rng.multinomial(10, [0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.0])
        if i == 0:
            v = np.array([0] * 9 + [10])
        lines.append(f"Training,fer{i:07d}.png," + ",".join(map(str, v)))
    p = root / "ferplus" / "fer2013new.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def two_root(tiny_root: Path) -> Path:
    """tiny FER2013 (280 rows) + a tiny CK+48 (24 subjects × 6 frames = 144) under one data root."""
    return write_ckplus(tiny_root)


# ---- the registry -----------------------------------------------------------------------------------------

def test_registry_table_roles_and_names() -> None:
    assert reg.get_spec("fer2013").splits == {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    assert reg.get_spec("FERPlus".replace("P", "p")).splits["val"] == "PublicTest"
    assert reg.get_spec("CK+").name == "ckplus" and reg.get_spec("ck+48").subjects
    assert "subjects" in reg.get_spec("ckplus").split_origin
    assert reg.get_spec("folder:/x").argument
    assert split_name("fer2013", "test") == "PrivateTest" and split_name("ckplus", "val") == "val"
    assert split_name("fer2013+ckplus", "train") == "train"
    assert reg.display_name("ckplus") == "CK+48" and reg.display_name("fer2013+ckplus") == "FER2013+CK+48"
    assert reg.display_name("folder:/some/where/jaffe") == "jaffe"
    # label maps land in the canonical taxonomy, in the adapters' label order
    assert reg.get_spec("fer2013").classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert reg.get_spec("ferplus").label_map["happiness"] == "happy"
    assert reg.get_spec("ckplus").classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    assert [s.name for s in reg.get_spec("fer2013").soft_labels] == ["ferplus_votes"]
    rows = {r["name"]: r for r in reg.registry_table()}
    assert {"fer2013", "ferplus", "ckplus", "folder:PATH"} <= set(rows)
    assert rows["ferplus"]["image_source"] == rows["fer2013"]["image_source"] == "fer2013"


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'rafdb'; choose one of fer2013, ferplus, ckplus, folder:PATH"):
        load_dataset("rafdb")
    with pytest.raises(DataError, match=r"give it as folder:PATH"):
        load_dataset("folder")
    with pytest.raises(DataError, match=r"split role 'dev': choose one of train, val, test"):
        split_name("fer2013", "dev")


def test_register_rejects_bad_specs() -> None:
    ok = dict(display_name="X", loader=lambda root: None, splits={"train": "a", "val": "b", "test": "c"})
    with pytest.raises(DataError, match=r"'fer2013' is already registered"):
        reg.register_dataset(reg.DatasetSpec(name="fer2013", **ok))
    with pytest.raises(DataError, match=r"missing test"):
        reg.register_dataset(reg.DatasetSpec(name="xx", display_name="X", loader=ok["loader"],
                                             splits={"train": "a", "val": "b"}))
    with pytest.raises(DataError, match=r"targets 'bored', not a canonical class"):
        reg.register_dataset(reg.DatasetSpec(name="xx", label_map={"Bored": "bored"}, **ok))
    assert not reg.is_dataset_name("xx")


ADAPTER = '''
"""A toy dataset adapter: the whole file a new dataset needs."""
import numpy as np
import torch

from ferbench.data.dataset import FerDataset
from ferbench.data.registry import DatasetSpec, register_dataset


def load_toyset(data_root=None, *, use_cache=True, colour=False):
    n = 30
    rng = np.random.default_rng(0)
    c = 3 if colour else 1
    return FerDataset(
        name="toyset", classes=["happy", "sad", "neutral"],
        images=torch.from_numpy(rng.integers(0, 255, (n, 32, 32, c)).astype(np.uint8)),
        labels=torch.arange(n) % 3, splits=np.array(["tr", "dev", "eval"] * 10), source="toy",
        rows=np.arange(n))


register_dataset(DatasetSpec(
    name="toyset", display_name="Toy", loader=load_toyset,
    splits={"train": "tr", "val": "dev", "test": "eval"},
    label_map={"Joy": "happy", "Sorrow": "sad", "Calm": "neutral"}, aliases=("toy",)))
'''


@pytest.fixture
def toy_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A new adapter file dropped into a folder on ``ferbench.data.adapters``' search path."""
    from ferbench.data import adapters

    d = tmp_path / "extra_adapters"
    d.mkdir()
    (d / "toyset.py").write_text(textwrap.dedent(ADAPTER))
    monkeypatch.setattr(adapters, "__path__", [*adapters.__path__, str(d)])
    reg.rediscover()
    yield d
    reg.unregister_dataset("toyset")
    sys.modules.pop("ferbench.data.adapters.toyset", None)
    reg.rediscover()


def test_a_new_dataset_is_one_adapter_file(toy_adapter: Path, tiny_root: Path) -> None:
    assert not any(s.name == "toyset" for s in reg._REGISTRY.values())  # nothing imported it yet
    ds = load_dataset("toy")  # alias → found by scanning the adapters package
    assert ds.classes == ["happy", "sad", "neutral"] and len(ds) == 30
    assert split_name("toyset", "val") == "dev" and reg.display_name("toyset") == "Toy"
    # and it joins unions like any built-in dataset: roles mapped, images resized to the first member's side
    u = load_dataset(["fer2013", "toyset"], tiny_root)
    assert u.images.shape[1:] == (48, 48, 1)
    assert member_counts(u) == {"fer2013": {"train": 140, "val": 70, "test": 70},
                                "toyset": {"train": 10, "val": 10, "test": 10}}
    assert u.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    toy = u.subset(np.flatnonzero(u.sources == "toyset"))
    assert [u.classes[i] for i in toy.labels[:3].tolist()] == ["happy", "sad", "neutral"]
    # a colour member makes the union RGB (grey replicated)
    c = load_dataset(["fer2013", "toyset"], tiny_root, colour=True)
    assert c.images.shape[-1] == 3
    fer_part = c.images[torch.from_numpy(np.flatnonzero(c.sources == "fer2013"))]
    assert (fer_part[..., 0] == fer_part[..., 2]).all()


def test_adapter_returning_wrong_classes_is_caught(toy_adapter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_dataset("toyset")
    spec = reg.get_spec("toyset")
    import dataclasses

    def bad(data_root=None, **k):
        ds = spec.loader(data_root)
        ds.classes = ["sad", "happy", "neutral"]
        return ds

    reg.register_dataset(dataclasses.replace(spec, loader=bad), replace=True)
    with pytest.raises(DataError, match=r"its label map says \['happy', 'sad', 'neutral'\]"):
        load_dataset("toyset")


# ---- unions -----------------------------------------------------------------------------------------------

def test_parse_names() -> None:
    assert parse_dataset_names("ck+") == ["ck+"]
    assert parse_dataset_names("fer2013+ck+") == ["fer2013", "ck+"]
    assert parse_dataset_names(["fer2013", "ckplus"]) == ["fer2013", "ckplus"]
    assert parse_dataset_names("folder:/a+b+ckplus") == ["folder:/a+b", "ckplus"]
    with pytest.raises(DataError, match="empty member"):
        parse_dataset_names("fer2013++ckplus")


def test_union_taxonomy_sources_and_labels(two_root: Path) -> None:
    fer = load_dataset("fer2013", two_root)
    ck = load_dataset("ckplus", two_root)
    u = load_dataset("fer2013+ckplus", two_root)
    assert u.name == "fer2013+ckplus" and len(u) == len(fer) + len(ck) == 280 + 144
    # the union of canonical classes, in canonical order: FER2013's neutral and CK+'s contempt both kept
    assert u.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
    assert u.sources.tolist() == ["fer2013"] * 280 + ["ckplus"] * 144
    # every sample keeps its class name and its pixels
    names_u = [u.classes[i] for i in u.labels.tolist()]
    names = [fer.classes[i] for i in fer.labels.tolist()] + [ck.classes[i] for i in ck.labels.tolist()]
    assert names_u == names
    assert (u.images == torch.cat([fer.images, ck.images])).all()
    assert u.counts()["train"][u.classes.index("contempt")] == int(
        ((ck.labels == ck.classes.index("contempt")) & torch.from_numpy(ck.splits == "train")).sum())
    assert u.rows[-1] == ck.rows[-1] and u.files is None
    # list form = "+" form
    v = load_dataset(["fer2013", "ck+"], two_root)
    assert v.classes == u.classes and (v.labels == u.labels).all() and (v.splits == u.splits).all()


def test_union_splits_are_roles_and_subject_disjoint(two_root: Path) -> None:
    ck = load_dataset("ckplus", two_root)
    u = load_dataset("fer2013+ckplus", two_root)
    assert u.split_names == ["train", "val", "test"]
    fer_part = u.sources == "fer2013"
    assert (u.splits[fer_part] == np.repeat(["train", "val", "test"], [140, 70, 70])).all()
    # CK+'s subject-disjoint carve-out is kept as is, and no subject spans two roles in the union
    assert (u.splits[~fer_part] == ck.splits).all()
    subj = u.subjects
    assert subj is not None and subj[~fer_part].tolist() == [f"ckplus:{s}" for s in ck.subjects]
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(subj[u.splits == a]) & set(subj[u.splits == b])
    # FER2013 has no subject ids: one group per image, so subject-aware k-fold stays valid
    assert len(set(subj[fer_part])) == 280 and subj[0] == "fer2013:#0"
    from ferbench.data import kfold

    for tr, te in kfold(u.labels.numpy(), 3, groups=subj):
        assert not set(subj[tr]) & set(subj[te])


def test_intersection_taxonomy(two_root: Path) -> None:
    u = load_dataset("fer2013+ckplus", two_root, taxonomy="intersection")
    assert u.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise"]
    fer = load_dataset("fer2013", two_root)
    n_neutral = int((fer.labels == fer.classes.index("neutral")).sum())
    ck = load_dataset("ckplus", two_root)
    n_contempt = int((ck.labels == ck.classes.index("contempt")).sum())
    assert len(u) == 280 + 144 - n_neutral - n_contempt
    with pytest.raises(DataError, match="taxonomy 'both'"):
        load_dataset("fer2013+ckplus", two_root, taxonomy="both")


def test_union_refusals(two_root: Path) -> None:
    with pytest.raises(DataError, match=r"fer2013 and ferplus share images"):
        load_dataset("fer2013+ferplus", two_root)
    with pytest.raises(DataError, match=r"'ckplus' appears twice"):
        load_dataset(["ckplus", "ck+"], two_root)
    with pytest.raises(DataError, match=r"unknown dataset 'affectnet'"):
        load_dataset("fer2013+affectnet", two_root)


def test_sampling_weights(two_root: Path) -> None:
    u = load_dataset("fer2013+ckplus", two_root, sampling_weights={"fer2013": 1.0, "CK+": 5.0})
    assert u.sample_weights is not None and u.sample_weights.dtype == torch.float32
    assert u.sample_weights.shape == (len(u),)
    assert u.sample_weights[u.sources == "fer2013"].eq(1.0).all()
    assert u.sample_weights[u.sources == "ckplus"].eq(5.0).all()
    # the training split keeps them; draws follow n_d·w_d / Σ n·w
    tr = u.split("train")
    assert tr.sample_weights.shape == (len(tr),) and (tr.sources == u.sources[u.splits == "train"]).all()
    n_ck = int((tr.sources == "ckplus").sum())
    expect = 5 * n_ck / (140 + 5 * n_ck)
    draws = torch.multinomial(tr.sample_weights, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    share = float(torch.from_numpy(tr.sources == "ckplus")[draws].float().mean())
    assert abs(share - expect) < 0.01
    # unnamed members weigh 1; a single dataset gets a constant tensor
    assert load_dataset("fer2013+ckplus", two_root).sample_weights.eq(1.0).all()
    assert load_dataset("fer2013", two_root).sample_weights is None
    assert load_dataset("ckplus", two_root, sampling_weights={"ckplus": 2}).sample_weights.eq(2.0).all()
    with pytest.raises(DataError, match=r"sampling_weights: 'ferplus' is not one of the datasets \(fer2013, ckplus\)"):
        load_dataset("fer2013+ckplus", two_root, sampling_weights={"ferplus": 2.0})
    with pytest.raises(DataError, match=r"sampling_weights.ckplus: -1 must be a positive number"):
        load_dataset("fer2013+ckplus", two_root, sampling_weights={"ckplus": -1})


def test_union_soft_labels_from_registered_sources(two_root: Path) -> None:
    write_ferplus_votes(two_root, 280)
    u = load_dataset("fer2013+ckplus", two_root, soft_labels=True)
    assert u.soft_labels is not None and u.soft_labels.shape == (len(u), 8)
    assert torch.allclose(u.soft_labels.sum(1), torch.ones(len(u)))
    ck = u.sources == "ckplus"
    # CK+ has no distributions: one-hot at its label; FER2013 rows carry the FER+ votes (not a face → one-hot)
    assert (u.soft_labels[ck].argmax(1) == u.labels[ck]).all() and u.soft_labels[ck].max(1).values.eq(1).all()
    fer_soft = u.soft_labels[~ck]
    assert fer_soft[0].max() == 1 and fer_soft[0].argmax() == u.labels[0]
    assert (fer_soft[1:].max(1).values < 1).float().mean() > 0.9
    assert fer_soft[:, u.classes.index("contempt")].eq(0).all()  # FER2013's 7-class distributions
    # without soft_labels=True none are invented
    assert load_dataset("fer2013+ckplus", two_root).soft_labels is None


def test_cli_data_list_shows_the_registry() -> None:
    from typer.testing import CliRunner

    from ferbench.cli.main import app

    r = CliRunner().invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "ckplus (ck+, ckplus48, ck+48)" in r.output and "Training / PublicTest / PrivateTest" in r.output
    assert "ferplus_votes" in r.output and "folder:PATH" in r.output


def test_trainer_trains_on_a_weighted_union_with_soft_labels(two_root: Path, tmp_path: Path) -> None:
    """``data.name: a+b`` end to end: role splits, per-dataset sampling weights, soft labels where they exist."""
    import json

    from ferbench.persist import read_sidecar
    from ferbench.train.loop import train

    write_ferplus_votes(two_root, 280)  # FER+ votes for the tiny FER2013 rows: their label distributions
    run = train({"model": {"name": "lenet5"},
                 "data": {"name": ["fer2013", "ckplus"], "root": str(two_root), "soft_labels": True,
                          "sampling_weights": {"ckplus": 3.0}},
                 "preprocessing": {"size": 48, "channels": 1},
                 "train": {"epochs": 1, "batch_size": 32, "augment": "none", "sampler": "weighted",
                           "precision": "fp32"}}, out_dir=tmp_path / "run", progress=False, log=lambda s: None)
    meta = read_sidecar(run)
    assert meta["dataset"] == "fer2013+ckplus" and len(meta["classes"]) == 8
    ev = json.loads((run / "eval_test.json").read_text())
    assert ev["split"] == "test" and sum(ev["per_class"][c]["support"] for c in ev["per_class"]) > 0
    assert (run / "eval_val.json").exists()
