"""Split helpers: stratified carve-outs and k-fold, subject-independent when subjects are known."""

from __future__ import annotations

import numpy as np

# FER2013's official splits (its csv's Usage column), in role order train / val / test
FER2013_SPLITS = ("Training", "PublicTest", "PrivateTest")


def _split(idx: np.ndarray, labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split`` stratified when every class can be (tiny data: plain random)."""
    from sklearn.model_selection import train_test_split  # here, not at import: sklearn takes ~1 s to load

    n_test = int(np.ceil(test_size * len(idx)))
    counts = np.bincount(labels)
    ok = counts[counts > 0].min(initial=0) >= 2 and len(idx) - n_test >= (counts > 0).sum() <= n_test
    return train_test_split(idx, test_size=test_size, stratify=labels if ok else None, random_state=seed)


def carve_splits(labels: np.ndarray, *, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
                 groups: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Assign each sample to ``train``/``val``/``test``.

    Args:
        labels: int ``(N,)``.
        fractions: train/val/test shares (test may be 0).
        groups: optional ``(N,)`` subject ids; if given, no group spans two splits.
        seed: RNG seed.

    Returns:
        str array ``(N,)`` of split names.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(labels)
    out = np.full(n, "train", dtype=object)
    idx = np.arange(n)
    held = fractions[1] + fractions[2]
    if held <= 0:
        return out.astype(str)
    if groups is not None:
        # StratifiedGroupKFold with round(1/held) folds gives a ~held share of whole groups.
        k = max(2, round(1 / held))
        tr, rest = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(idx, labels, groups))
    else:
        tr, rest = _split(idx, labels, held, seed)
    if fractions[2] <= 0:
        out[rest] = "val"
        return out.astype(str)
    share_test = fractions[2] / held
    if groups is not None:
        k = max(2, round(1 / share_test))
        a, b = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(rest, labels[rest], groups[rest]))
        val, test = rest[a], rest[b]
    else:
        val, test = _split(rest, labels[rest], share_test, seed)
    out[val] = "val"
    out[test] = "test"
    return out.astype(str)


def kfold(labels: np.ndarray, k: int = 5, seed: int = 10, groups: np.ndarray | None = None
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold ``[(train_idx, heldout_idx), ...]``; subject-independent when ``groups`` is given.

    Seed 001 uses ``StratifiedKFold(5, shuffle=True, random_state=10)``.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    idx = np.arange(len(labels))
    if groups is not None:
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(idx, labels, groups))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, labels))
