"""Datasets: ``load_dataset(name)`` → :class:`FerDataset` (uint8 images in memory, cached on disk).

Every name goes through the registry (:mod:`ferbench.data.registry`); ``"a+b"`` or ``["a", "b"]`` loads a
union (:mod:`ferbench.data.union`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferbench.data.dataset import FerDataset
    from ferbench.data.registry import (
        DatasetSpec,
        SoftLabelSource,
        get_spec,
        list_datasets,
        register_dataset,
        split_name,
    )
    from ferbench.data.splits import carve_splits, kfold
    from ferbench.data.taxonomy import CANONICAL, canonical_name, class_mapping

# where each public name lives; imported on first access, so ``ferbench.data.registry`` (names, splits, label
# maps) loads without torch and a misspelt dataset name is refused before the heavy imports
_HOME = {"FerDataset": "dataset", "DatasetSpec": "registry", "SoftLabelSource": "registry", "get_spec": "registry",
         "list_datasets": "registry", "register_dataset": "registry", "split_name": "registry",
         "carve_splits": "splits", "kfold": "splits", "CANONICAL": "taxonomy", "canonical_name": "taxonomy",
         "class_mapping": "taxonomy"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"ferbench.data.{_HOME[name]}"), name)
    raise AttributeError(f"module 'ferbench.data' has no attribute {name!r}")


DATASETS = ("fer2013", "ferplus", "ckplus", "folder:PATH")


def load_dataset(name_or_list: str | Sequence[str], data_root: str | Path | None = None,
                 sampling_weights: Mapping[str, float] | None = None, **kwargs: Any) -> FerDataset:
    """Load a registered dataset, or a union of several, by name.

    Args:
        name_or_list: ``"fer2013"``, ``"ferplus"``, ``"ckplus"``, ``"folder:PATH"``, any adapter's name, or a
            union: ``"fer2013+ckplus"`` / ``["fer2013", "ckplus"]`` (see :func:`ferbench.data.union.load_union`).
        data_root: folder holding the datasets (default: $FERBENCH_DATA, ./data, ../shared/data).
        sampling_weights: ``{dataset: weight}`` per-sample oversampling factors → ``ds.sample_weights``
            ``(N,)`` float32 (unnamed members 1.0). ``None`` on a single dataset leaves ``sample_weights``
            unset (uniform).
        kwargs: loader options (``use_cache``, ``seed``; unions also ``taxonomy="union"|"intersection"`` and
            ``soft_labels``).

    Returns:
        The dataset; a union has splits ``train``/``val``/``test`` (use :func:`split_name` for the split of a
        role in any dataset), ``sources`` and ``sample_weights``.

    Raises:
        DataError: unknown name, missing/corrupt files, a bad weight, an impossible union.
    """
    from ferbench.data.registry import check_dataset_names, load_registered

    names = check_dataset_names(name_or_list)  # a misspelt name fails here, before torch loads
    from ferbench.data.union import check_sampling_weights, load_union

    if len(names) > 1:
        return load_union(names, data_root, sampling_weights, **kwargs)
    ds = load_registered(names[0], data_root, **kwargs)
    if sampling_weights:
        import torch

        w = check_sampling_weights(names, sampling_weights)
        ds.sample_weights = torch.full((len(ds),), next(iter(w.values())), dtype=torch.float32)
    return ds


__all__ = ["CANONICAL", "DATASETS", "DatasetSpec", "FerDataset", "SoftLabelSource", "canonical_name",
           "carve_splits", "class_mapping", "get_spec", "kfold", "list_datasets", "load_dataset",
           "register_dataset", "split_name"]
