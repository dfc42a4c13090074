"""Datasets: ``load_dataset(name)`` → :class:`FerDataset` (uint8 images in memory, cached on disk)."""

from __future__ import annotations

from pathlib import Path

from ferbench.data.dataset import FerDataset
from ferbench.data.splits import carve_splits, kfold
from ferbench.data.taxonomy import CANONICAL, canonical_name, class_mapping
from ferbench.errors import DataError

DATASETS = ("fer2013", "ferplus", "ckplus", "folder:PATH")


def load_dataset(name: str, data_root: str | Path | None = None, **kwargs: object) -> FerDataset:
    """Load a dataset by name: ``fer2013``, ``ferplus``, ``ckplus`` or ``folder:PATH``."""
    from ferbench.data.fer2013 import load_fer2013, load_ferplus
    from ferbench.data.folder import load_ckplus, load_folder

    if name.startswith("folder:"):
        return load_folder(name.split(":", 1)[1], **kwargs)  # type: ignore[arg-type]
    loaders = {"fer2013": load_fer2013, "ferplus": load_ferplus, "ckplus": load_ckplus, "ck+": load_ckplus}
    if name.lower() not in loaders:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return loaders[name.lower()](data_root, **kwargs)  # type: ignore[operator]


__all__ = ["CANONICAL", "DATASETS", "FerDataset", "canonical_name", "carve_splits", "class_mapping", "kfold",
           "load_dataset"]
