"""The in-memory dataset every adapter returns: uint8 images + labels + split names."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch


@dataclass
class FerDataset:
    """A decoded FER dataset held in memory.

    Attributes:
        name: dataset id (``"fer2013"``, ``"ferplus"``, ``"ckplus"``, ``"folder:PATH"``).
        classes: canonical class names; label ``i`` means ``classes[i]``.
        images: uint8 tensor ``(N, H, W, C)``, C = 1 (grey) or 3 (RGB).
        labels: int64 tensor ``(N,)``.
        splits: str array ``(N,)``: the split each sample belongs to.
        subjects: str array ``(N,)`` of subject ids, or ``None`` when unknown.
        soft_labels: float32 tensor ``(N, len(classes))`` of label distributions, or ``None``.
        source: file or folder it was read from.
        rows: int array ``(N,)``: row/file index in the source, for error messages and joins.
        files: source file per sample (folder datasets), or ``None``.
        sources: str array ``(N,)``: the registry name of the dataset each sample came from (unions),
            or ``None`` for a single dataset.
        sample_weights: float32 tensor ``(N,)`` of relative sampling weights (a union's per-dataset
            ``sampling_weights``), or ``None`` (uniform).
    """

    name: str
    classes: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    splits: np.ndarray
    subjects: np.ndarray | None = None
    soft_labels: torch.Tensor | None = None
    source: str = ""
    rows: np.ndarray | None = None
    files: list[str] | None = field(default=None, repr=False)
    sources: np.ndarray | None = None
    sample_weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def split_names(self) -> list[str]:
        """Split names in order of first appearance."""
        _, idx = np.unique(self.splits, return_index=True)
        return [str(self.splits[i]) for i in sorted(idx)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> FerDataset:
        """Samples at ``index`` (int positions), all fields sliced alike."""
        idx = np.asarray(index, dtype=np.int64)
        t = torch.from_numpy(idx)
        return replace(
            self,
            images=self.images[t],
            labels=self.labels[t],
            splits=self.splits[idx],
            subjects=None if self.subjects is None else self.subjects[idx],
            soft_labels=None if self.soft_labels is None else self.soft_labels[t],
            rows=None if self.rows is None else self.rows[idx],
            files=None if self.files is None else [self.files[i] for i in idx],
            sources=None if self.sources is None else self.sources[idx],
            sample_weights=None if self.sample_weights is None else self.sample_weights[t],
        )

    def split(self, name: str) -> FerDataset:
        """The samples of split ``name``; ``"all"`` (when no split has that name) = every sample, e.g. to score
        a dataset no model was trained on. Unknown split → one-line error listing the known ones."""
        from ferbench.errors import DataError

        mask = self.splits == name
        if not mask.any():
            if name == "all" and len(self):
                return self.subset(np.arange(len(self)))
            raise DataError(f"{self.name}: no split {name!r} (splits: {', '.join(self.split_names)}, all)")
        return self.subset(np.flatnonzero(mask))

    def counts(self) -> dict[str, list[int]]:
        """``{split: [count per class]}`` in class order."""
        lab = self.labels.numpy()
        return {
            s: np.bincount(lab[self.splits == s], minlength=self.num_classes).tolist() for s in self.split_names
        }
