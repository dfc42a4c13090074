"""Per-class attention: mean maps over the correctly classified test images of each class.

The "where does each emotion live" figure. :func:`per_class_figure` is the one-call entry point
for the CLI and for reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.data.dataset import FerDataset
from ferbench.data.preprocess import Preprocessing
from ferbench.errors import DataError, FerbenchError
from ferbench.explain.explainer import ClassMaps, _probs, explain_images, load_model, to_input

DEFAULT_TEST_SPLITS = {"fer2013": "PrivateTest", "ferplus": "PrivateTest", "ckplus": "test", "ck+": "test"}


def labels_in_model_order(part: FerDataset, classes: list[str]) -> np.ndarray:
    """Dataset labels mapped onto the model's class indices by canonical name; ``-1`` = not a model class."""
    lut = np.array([classes.index(c) if c in classes else -1 for c in part.classes], dtype=np.int64)
    return lut[part.labels.numpy()]


def default_test_split(meta: dict[str, Any], dataset: str) -> str:
    """The checkpoint protocol's test split, else the dataset's usual one (FER2013 PrivateTest, CK+ test)."""
    data = (meta.get("protocol") or {}).get("data") or {}
    if data.get("test_split") and (data.get("name") in (None, dataset)):
        return str(data["test_split"])
    if dataset.lower() in DEFAULT_TEST_SPLITS:
        return DEFAULT_TEST_SPLITS[dataset.lower()]
    raise FerbenchError(f"{dataset}: no default test split; pass --split NAME")


def class_maps(model: nn.Module, meta: dict[str, Any], part: FerDataset, method: str = "gradcam",
               limit: int | None = 200, batch_size: int = 32, target_layer: str | None = None,
               on_batch: Callable[[int, int], None] | None = None) -> ClassMaps:
    """Average the maps of correctly classified images, per class.

    Args:
        model, meta: from :func:`~ferbench.explain.explainer.load_model`.
        part: the evaluation split (uint8 images ``(N, H, W, C)``, labels in ``part.classes``).
        method: explanation method.
        limit: at most this many images per class (the first ones in split order); ``None`` = all.
        batch_size: images per pass.
        target_layer: overrides the registry's CAM layer.
        on_batch: ``on_batch(done, total)`` after each batch of explained images.

    Returns:
        :class:`ClassMaps` in the model's class order.
    """
    classes = list(meta["classes"])
    pre = Preprocessing.from_dict(meta["preprocessing"])
    y = labels_in_model_order(part, classes)
    keep = np.flatnonzero(y >= 0)
    if keep.size == 0:
        raise DataError(f"{part.name}: no class in common with the model ({', '.join(classes)})")
    probs = np.concatenate([_probs(model, to_input(part.images[torch.from_numpy(keep[i:i + 1024])], pre),
                                   batch_size=256) for i in range(0, keep.size, 1024)])
    correct = keep[probs.argmax(1) == y[keep]]
    chosen = np.concatenate([correct[y[correct] == c][:limit] for c in range(len(classes))]).astype(np.int64)
    k, s = len(classes), pre.size
    sums, views = np.zeros((k, s, s), np.float64), np.zeros((k, s, s, 3), np.float64)
    counts = np.bincount(y[chosen], minlength=k).astype(np.int64)
    totals = np.bincount(y[keep], minlength=k).astype(np.int64)
    n_correct = np.bincount(y[correct], minlength=k).astype(np.int64)
    layers: list[str] = []
    for i in range(0, chosen.size, batch_size):
        idx = chosen[i:i + batch_size]
        expl = explain_images(model, meta, part.images[torch.from_numpy(idx)], method,
                              target=None, target_layer=target_layer, batch_size=batch_size)
        if not np.array_equal(expl.targets, y[idx]):  # predictions are deterministic in eval mode
            raise FerbenchError("explain: predictions changed between passes (is the model in eval mode?)")
        np.add.at(sums, y[idx], expl.maps)
        np.add.at(views, y[idx], expl.views)
        layers = [layer.describe() for layer in expl.layers]
        if on_batch is not None:
            on_batch(min(i + batch_size, chosen.size), chosen.size)
    div = np.maximum(counts, 1).reshape(-1, 1, 1)
    return ClassMaps(classes, (sums / div).astype(np.float32), (views / div[..., None]).astype(np.float32),
                     counts, n_correct, totals, method, layers, str(meta.get("architecture", {}).get("name", "model")),
                     part.name, str(part.splits[0]) if len(part) else "")


def per_class_figure(model_ref: str | Path, data: str, split: str | None = None, out: str | Path | None = None,
                     method: str = "gradcam", limit: int | None = 200, data_root: str | Path | None = None,
                     batch_size: int = 32, on_batch: Callable[[int, int], None] | None = None,
                     ) -> tuple[Path, ClassMaps]:
    """Load a checkpoint and a dataset split, average the maps per class and save the figure.

    Args:
        model_ref: ``"default"``, run dir, ``.safetensors`` or ensemble JSON.
        data: dataset name (``fer2013``, ``ferplus``, ``ckplus``, ``folder:PATH``).
        split: split name; ``None`` = the checkpoint protocol's test split (FER2013: PrivateTest).
        out: a ``.png`` path, or a folder for ``per_class_<data>_<split>_<method>.png`` (default
            ``explanations/``).
        method, limit, data_root, batch_size, on_batch: see :func:`class_maps`.

    Returns:
        ``(png_path, class_maps)``.
    """
    from ferbench.data import load_dataset
    from ferbench.explain.plot import save_class_maps

    model, meta = load_model(model_ref)
    ds = load_dataset(data, data_root)
    split = split or default_test_split(meta, ds.name)
    cm = class_maps(model, meta, ds.split(split), method, limit, batch_size, on_batch=on_batch)
    cm.split = split
    safe = data.replace(":", "_").replace("/", "_")
    path = Path(out or "explanations")
    if path.suffix.lower() != ".png":
        path = path / f"per_class_{safe}_{split}_{method.replace('+', 'p')}.png"
    return save_class_maps(cm, path), cm
