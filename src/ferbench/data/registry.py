"""The dataset registry: one table of every dataset ferbench can load.

Each :class:`DatasetSpec` says how a dataset is loaded (its adapter), which of its split names play the
train / val / test roles, its display name, how its native class names map into the canonical taxonomy
(:data:`ferbench.data.taxonomy.CANONICAL`), which images it shares with other datasets, and where soft
labels (label distributions) for it come from.

Adding a dataset is one adapter file: put ``mydata.py`` in :mod:`ferbench.data.adapters` (or ship it in
another package under the ``ferbench.datasets`` entry-point group) with a loader and one
``register_dataset(DatasetSpec(...))`` call at import time. The registry imports those modules the first
time a name is not in the table, so ``load_dataset("mydata")`` then works without any other edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferbench.data.root import CKPLUS_DIRS, FER2013_FILES, FERPLUS_FILES, find_in_roots
from ferbench.data.splits import FER2013_SPLITS
from ferbench.data.taxonomy import CANONICAL
from ferbench.errors import DataError

if TYPE_CHECKING:
    import torch

    from ferbench.data.dataset import FerDataset

ROLES: tuple[str, ...] = ("train", "val", "test")

# (data_root, **kwargs) -> FerDataset; datasets named "prefix:ARG" get ``argument=ARG`` as well.
Loader = Callable[..., "FerDataset"]
# (dataset, data_root) -> float32 (N, len(dataset.classes)) label distributions
SoftLabelFn = Callable[["FerDataset", "str | Path | None"], "torch.Tensor"]


@dataclass(frozen=True)
class SoftLabelSource:
    """Where label distributions for a dataset's images come from.

    Attributes:
        name: short id (``"ferplus_votes"``).
        description: one line for listings.
        fn: computes ``(N, K)`` distributions for a loaded dataset; ``None`` when the adapter already
            attaches them (``FerDataset.soft_labels``).
    """

    name: str
    description: str
    fn: SoftLabelFn | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One row of the registry.

    Attributes:
        name: registry key (lower case), e.g. ``"fer2013"``; for ``argument`` datasets the prefix
            (``"folder"`` → names ``folder:PATH``).
        display_name: name for tables and figures (``"FER2013"``).
        loader: the adapter, called ``loader(data_root, **kwargs)`` (plus ``argument=ARG`` when
            ``argument`` is true); returns a :class:`FerDataset` in canonical class names.
        splits: role (``train``/``val``/``test``) → the dataset's split name.
        split_origin: how the splits arise: ``"official"``, or how they are carved.
        label_map: native class name → canonical name, in label-index order; ``None`` when the classes
            are read from the data (folder names matched by :func:`~ferbench.data.taxonomy.canonical_name`).
        image_source: datasets with the same value share images (FER+ relabels FER2013's pixels);
            a union of two of them is refused.
        subjects: subject ids are known (``FerDataset.subjects`` is set; splits are subject-disjoint).
        soft_labels: sources of label distributions, the preferred first.
        aliases: other accepted names.
        argument: the name carries an argument after ``:`` (``folder:PATH``).
        description: one line for listings.
        files: what must exist under the data root, as groups of alternatives (each group: relative paths,
            the first found wins); every group must be found. Lets :func:`check_dataset_files` refuse an
            absent dataset before anything heavy loads. Empty: not checked ahead (the loader says).
    """

    name: str
    display_name: str
    loader: Loader
    splits: dict[str, str]
    split_origin: str = "official"
    label_map: dict[str, str] | None = None
    image_source: str = ""
    subjects: bool = False
    soft_labels: tuple[SoftLabelSource, ...] = ()
    aliases: tuple[str, ...] = ()
    argument: bool = False
    description: str = ""
    files: tuple[tuple[str, ...], ...] = ()

    @property
    def classes(self) -> list[str] | None:
        """Canonical classes in label order (``None`` when read from the data)."""
        return None if self.label_map is None else list(self.label_map.values())


# The built-in adapters, imported when a dataset is loaded: the registry itself (names, splits, label maps)
# loads without torch, so a misspelt name is refused before the heavy imports.
# (their signatures are the adapters' own: a union passes each member only the options it takes)
def _load_fer2013(data_root: str | Path | None = None, *, use_cache: bool = True) -> FerDataset:
    from ferbench.data.fer2013 import load_fer2013

    return load_fer2013(data_root, use_cache=use_cache)


def _load_ferplus(data_root: str | Path | None = None, *, use_cache: bool = True) -> FerDataset:
    from ferbench.data.fer2013 import load_ferplus

    return load_ferplus(data_root, use_cache=use_cache)


def _ferplus_votes(ds: FerDataset, data_root: str | Path | None = None) -> torch.Tensor:
    from ferbench.data.fer2013 import fer2013_ferplus_soft_labels

    return fer2013_ferplus_soft_labels(ds, data_root)


def _load_ckplus(data_root: str | Path | None = None, *, seed: int = 0, use_cache: bool = True) -> FerDataset:
    from ferbench.data.folder import load_ckplus

    return load_ckplus(data_root, seed=seed, use_cache=use_cache)


def _folder_loader(data_root: str | Path | None, *, argument: str, **kwargs: Any) -> FerDataset:
    """``folder:PATH``: the path is used as given (``data_root`` does not apply)."""
    from ferbench.data.folder import load_folder

    return load_folder(argument, **kwargs)


_FERPLUS_VOTES = SoftLabelSource(
    "ferplus_votes", "FER+ crowd votes (10 annotators per image) for FER2013's rows, in FER2013's 7 classes",
    _ferplus_votes)

# The table. Label maps list the native names in label-index order (FER2013: the csv's emotion codes 0..6;
# FER+: fer2013new.csv's vote columns; CK+48: its folders, read in canonical order).
_BUILTIN: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="fer2013", display_name="FER2013", loader=_load_fer2013,
        splits=dict(zip(ROLES, FER2013_SPLITS, strict=True)),
        label_map={"Angry": "angry", "Disgust": "disgust", "Fear": "fear", "Happy": "happy", "Sad": "sad",
                   "Surprise": "surprise", "Neutral": "neutral"},
        image_source="fer2013", soft_labels=(_FERPLUS_VOTES,), files=(FER2013_FILES,),
        description="Kaggle FER2013: 35,887 grey 48x48 web faces, 7 classes"),
    DatasetSpec(
        name="ferplus", display_name="FER+", loader=_load_ferplus,
        splits=dict(zip(ROLES, FER2013_SPLITS, strict=True)),
        split_origin="official (FER2013's Usage; FER+ calls them train / valid / test)",
        label_map={"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"},
        image_source="fer2013", aliases=("fer+", "fer2013plus"), files=(FER2013_FILES, FERPLUS_FILES),
        soft_labels=(SoftLabelSource("votes", "its own vote distributions (attached by the loader)"),),
        description="FER+ majority-vote labels on FER2013's pixels: 8 classes (unknown / not-a-face dropped)"),
    DatasetSpec(
        name="ckplus", display_name="CK+48", loader=_load_ckplus,
        splits={"train": "train", "val": "val", "test": "test"},
        split_origin="carved: 70/15/15 % of subjects, stratified, seeded (data/splits.carve_splits)",
        label_map={"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad",
                   "surprise": "surprise", "contempt": "contempt"},
        image_source="ckplus", subjects=True, aliases=("ck+", "ckplus48", "ck+48"), files=(CKPLUS_DIRS,),
        description="CK+48: 981 grey 48x48 peak frames of 118 posed subjects, 7 classes (contempt, no neutral)"),
    DatasetSpec(
        name="folder", display_name="folder", loader=_folder_loader,
        splits={"train": "train", "val": "val", "test": "test"},
        split_origin="PATH/<split>/<class>/ when present, else carved 70/15/15 % stratified",
        argument=True, description="any ImageFolder tree: PATH/<class>/* or PATH/<split>/<class>/*"),
)

_REGISTRY: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}
_discovered = False


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (an adapter module calls this at import time); returns it.

    Raises:
        DataError: the name or an alias is taken (unless ``replace``), a role is missing, or the label map
            names a class outside the canonical taxonomy.
    """
    key = spec.name.lower()
    taken = {key, *(a.lower() for a in spec.aliases)}
    if not replace:
        clash = sorted(n for n in taken if n in _REGISTRY or n in _ALIASES)
        if clash:
            raise DataError(f"dataset name {clash[0]!r} is already registered")
    missing = [r for r in ROLES if r not in spec.splits]
    if missing:
        raise DataError(f"dataset {spec.name!r}: splits must name the roles {', '.join(ROLES)} "
                        f"(missing {', '.join(missing)})")
    bad = [c for c in (spec.label_map or {}).values() if c not in CANONICAL]
    if bad:
        raise DataError(f"dataset {spec.name!r}: label map targets {bad[0]!r}, not a canonical class "
                        f"({', '.join(CANONICAL)})")
    _REGISTRY[key] = spec
    for a in spec.aliases:
        _ALIASES[a.lower()] = key
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a registered dataset (tests, plugins reloading)."""
    spec = _REGISTRY.pop(name.lower(), None)
    if spec is not None:
        for a in spec.aliases:
            _ALIASES.pop(a.lower(), None)


for _spec in _BUILTIN:
    register_dataset(_spec)


def _discover() -> None:
    """Import every adapter module of :mod:`ferbench.data.adapters` and the ``ferbench.datasets`` entry points."""
    global _discovered
    _discovered = True
    adapters = importlib.import_module("ferbench.data.adapters")
    for mod in pkgutil.iter_modules(adapters.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{adapters.__name__}.{mod.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group="ferbench.datasets"):
        ep.load()


def rediscover() -> None:
    """Forget that adapters were scanned, so the next unknown name scans again (new adapter files)."""
    global _discovered
    _discovered = False


def _lookup(key: str) -> DatasetSpec | None:
    key = key.lower()
    key = _ALIASES.get(key, key)
    return _REGISTRY.get(key)


def split_argument(name: str) -> tuple[str, str | None]:
    """``"folder:/x"`` → ``("folder", "/x")``; ``"fer2013"`` → ``("fer2013", None)``."""
    if ":" in name:
        head, arg = name.split(":", 1)
        if len(head) > 1:  # a Windows drive letter is not a prefix
            return head, arg
    return name, None


def get_spec(name: str) -> DatasetSpec:
    """The registry row for a dataset name (``"fer2013"``, ``"CK+"``, ``"folder:PATH"``).

    Raises:
        DataError: unknown name (the message lists the known ones).
    """
    head, arg = split_argument(name.strip())
    for attempt in range(2):
        spec = _lookup(head)
        if spec is not None:
            if spec.argument and not arg:
                raise DataError(f"dataset {name!r}: give it as {spec.name}:PATH")
            if not spec.argument and arg is not None:
                break
            return spec
        if attempt == 0 and not _discovered:
            _discover()
        else:
            break
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}")


def is_dataset_name(name: str) -> bool:
    """True when ``name`` resolves to a registered dataset."""
    try:
        get_spec(name)
    except DataError:
        return False
    return True


def canonical_dataset_name(name: str) -> str:
    """The registry spelling: ``"CK+"`` → ``"ckplus"``; ``"folder:PATH"`` keeps its path."""
    spec = get_spec(name)
    if spec.argument:
        return f"{spec.name}:{split_argument(name.strip())[1]}"
    return spec.name


def domain_relation(train_set: str | Sequence[str], test: str) -> str:
    """How dataset ``test`` relates to a training set (``"a+b"`` or a list of names): ``in-domain`` (a member;
    its test split is disjoint from the training split), ``same-images`` (it relabels a member's pixels, e.g.
    FER+ after FER2013: a label-set shift, not a domain shift) or ``cross-domain``."""
    members = [canonical_dataset_name(m) for part in ([train_set] if isinstance(train_set, str) else train_set)
               for m in parse_dataset_names(part)]
    test = canonical_dataset_name(test)
    if test in members:
        return "in-domain"
    src = get_spec(test).image_source
    if src and any(get_spec(m).image_source == src for m in members):
        return "same-images"
    return "cross-domain"


def dataset_names() -> list[str]:
    """Registered names (argument datasets as ``prefix:PATH``), in registration order."""
    return [f"{s.name}:PATH" if s.argument else s.name for s in _REGISTRY.values()]


def list_datasets() -> list[DatasetSpec]:
    """Every registered spec (after scanning the adapters), in registration order."""
    if not _discovered:
        _discover()
    return list(_REGISTRY.values())


def parse_dataset_names(name_or_list: str | Sequence[str]) -> list[str]:
    """Member names of ``"a+b+folder:PATH"`` or ``["a", "b"]`` (a single name → one member).

    ``"ck+"`` stays one name; a ``folder:`` path may itself contain ``+`` when the text after it is not a
    registered dataset name.
    """
    if isinstance(name_or_list, str):
        text = name_or_list.strip()
        if not text:
            raise DataError("empty dataset name")
        if is_dataset_name(text) and split_argument(text)[1] is None:
            return [text]
        parts: list[str] = []
        for tok in text.split("+"):
            glue_empty = tok == "" and bool(parts) and is_dataset_name(parts[-1] + "+")  # "ck+"
            in_path = bool(parts) and split_argument(parts[-1])[1] is not None and not _starts_member(tok)
            if glue_empty or (in_path and tok != ""):
                parts[-1] += "+" + tok  # "folder:/a+b"
            else:
                parts.append(tok)
        names = [p.strip() for p in parts]
    else:
        names = [str(n).strip() for n in name_or_list]
        if not names:
            raise DataError("empty list of datasets")
    if any(not n for n in names):
        raise DataError(f"dataset list {name_or_list!r} has an empty member")
    return names


def check_dataset_names(name_or_list: str | Sequence[str]) -> list[str]:
    """The member names of a dataset or union (:func:`parse_dataset_names`), each checked against the registry
    (no data is read, torch is not imported).

    Raises:
        DataError: an unknown member (the message lists the known names), an empty member.
    """
    names = parse_dataset_names(name_or_list)
    for n in names:
        get_spec(n)
    return names


def check_dataset_files(name_or_list: str | Sequence[str], data_root: str | Path | None = None) -> None:
    """Refuse a dataset (or union member) whose files are absent, without reading them (no torch).

    Checks the registry's ``files`` of each member (built-ins; adapters that declare none are left to their
    loader) and that a ``folder:PATH`` is a directory.

    Raises:
        DataError: the same one line the loader would give (what was looked for, and where).
    """
    for n in check_dataset_names(name_or_list):
        spec = get_spec(n)
        if spec.argument and spec.name == "folder":
            path = Path(split_argument(n.strip())[1] or "")  # as the loader reads it
            if not path.is_dir():
                raise DataError(f"{path}: no such directory")
        for group in spec.files:
            find_in_roots(group, data_root, spec.name)


def _starts_member(tok: str) -> bool:
    return is_dataset_name(tok.strip()) if tok.strip() else False


def split_name(name: str, role: str) -> str:
    """The split of dataset ``name`` that plays ``role`` (``train``/``val``/``test``); unions use the roles."""
    if role not in ROLES:
        raise DataError(f"split role {role!r}: choose one of {', '.join(ROLES)}")
    names = parse_dataset_names(name)
    if len(names) > 1:
        return role
    return get_spec(names[0]).splits[role]


def display_name(name: str) -> str:
    """``"ckplus"`` → ``"CK+48"``; unions join with ``+``; folders show their folder name."""
    out = []
    for n in parse_dataset_names(name):
        spec = get_spec(n)
        out.append((Path(split_argument(n)[1] or "").name or n) if spec.argument else spec.display_name)
    return "+".join(out)


def load_registered(name: str, data_root: str | Path | None = None, **kwargs: Any) -> FerDataset:
    """Load one registered dataset through its adapter and check the result against its spec.

    Raises:
        DataError: unknown name, or an adapter returned classes outside the canonical taxonomy or in another
            order than its label map.
    """
    spec = get_spec(name)
    if spec.argument:
        ds = spec.loader(data_root, argument=split_argument(name.strip())[1], **kwargs)
    else:
        ds = spec.loader(data_root, **kwargs)
    bad = [c for c in ds.classes if c not in CANONICAL]
    if bad:
        raise DataError(f"{name}: adapter returned class {bad[0]!r}, not in the canonical taxonomy")
    if spec.classes is not None and ds.classes != spec.classes:
        raise DataError(f"{name}: adapter returned classes {ds.classes}, its label map says {spec.classes}")
    return ds


def has_soft_labels(ds: FerDataset) -> bool:
    """True when ``ds`` carries label distributions or its registry row names a source that computes them."""
    if ds.soft_labels is not None:
        return True
    spec = get_spec(ds.name) if is_dataset_name(ds.name) else None
    return spec is not None and any(s.fn is not None for s in spec.soft_labels)


def soft_labels_for(ds: FerDataset, data_root: str | Path | None = None) -> torch.Tensor:
    """Label distributions ``(N, len(ds.classes))`` float32 for a loaded single dataset.

    The dataset's own (``ds.soft_labels``) when the adapter attached them, else the first registered source
    that computes them (FER2013 → the FER+ votes of its rows).

    Raises:
        DataError: the dataset has no soft-label source.
    """
    if ds.soft_labels is not None:
        return ds.soft_labels
    spec = get_spec(ds.name) if is_dataset_name(ds.name) else None
    for src in spec.soft_labels if spec else ():
        if src.fn is not None:
            out = src.fn(ds, data_root)
            if tuple(out.shape) != (len(ds), ds.num_classes):
                raise DataError(f"{ds.name}: soft-label source {src.name} returned shape {tuple(out.shape)}")
            return out.float()
    raise DataError(f"{ds.name}: no soft-label source (label distributions); registered ones: "
                    f"{', '.join(s.name for s in _REGISTRY.values() if s.soft_labels) or 'none'}")


def role_of_splits(ds: FerDataset, spec: DatasetSpec) -> np.ndarray:
    """Map a loaded dataset's split names to roles ``(N,)`` str (``train``/``val``/``test``).

    Raises:
        DataError: a sample sits in a split that plays no role.
    """
    inverse = {v: k for k, v in spec.splits.items()}
    unknown = sorted(set(ds.split_names) - set(inverse))
    if unknown:
        raise DataError(f"{ds.name}: split {unknown[0]!r} plays no role (known: "
                        f"{', '.join(f'{k}={v}' for k, v in spec.splits.items())})")
    return np.asarray([inverse[s] for s in ds.splits.tolist()])


def registry_table() -> list[dict[str, Any]]:
    """The registry as rows of plain values (for ``ferbench data list`` and the docs)."""
    rows = []
    for s in list_datasets():
        rows.append({
            "name": f"{s.name}:PATH" if s.argument else s.name, "display_name": s.display_name,
            "splits": dict(s.splits), "split_origin": s.split_origin,
            "classes": s.classes, "label_map": dict(s.label_map) if s.label_map else None,
            "image_source": s.image_source or None, "subjects": s.subjects,
            "soft_labels": [x.name for x in s.soft_labels], "aliases": list(s.aliases),
            "description": s.description,
        })
    return rows
