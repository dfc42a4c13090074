"""Union datasets: several registered datasets as ONE :class:`FerDataset` in one declared taxonomy.

``load_dataset("fer2013+ckplus")`` (or ``["fer2013", "ckplus"]``) pools the members:

- **Taxonomy.** By default the *union* of the members' canonical classes, in canonical order
  (FER2013 + CK+48 → angry, disgust, fear, happy, sad, surprise, neutral, contempt). Every member's labels
  stay true in it: each dataset was annotated as a forced choice among its own classes, so a FER2013 "happy"
  is a canonical "happy", and a class a member lacks is simply one it never teaches (CK+48's peak frames
  are genuinely not neutral; FER2013's few contempt faces had to be filed under another class: FER+'s
  relabelling finds 148 contempt faces in 31,412, 0.5 %). The *intersection* (``taxonomy="intersection"``)
  would drop FER2013's 6,198 neutral faces and CK+48's 54 contempt frames, and a deployed model must be
  able to say "neutral"; it is available for protocols that want identical label sets.
- **Splits** are the roles ``train`` / ``val`` / ``test``: each member's split that plays the role (FER2013
  Training / PublicTest / PrivateTest, CK+48's subject-disjoint carve-out). Subjects (where known) are
  prefixed with the member's name, so no subject spans two roles within a member and ids of different
  datasets never collide; samples of members without subject ids get one group each
  (``"fer2013:#<row>"``), which keeps subject-aware k-fold valid on the union.
- **Sources**: ``ds.sources`` ``(N,)`` holds each sample's registry name.
- **Sampling weights**: ``ds.sample_weights`` ``(N,)`` float32 holds each sample's member weight from
  ``sampling_weights={"fer2013": 1.0, "ckplus": 5.0}`` (members not named get 1.0). A weight is a per-sample
  oversampling factor: a CK+48 image with weight 5 is drawn 5 times as often as a FER2013 image of weight
  1, so the expected share of draws of member d is ``n_d·w_d / Σ_e n_e·w_e``. A sampler multiplies them into
  its own per-sample weights (e.g. class balancing) and draws with ``torch.multinomial``.
- **Images** are brought to the first member's side and to grey (or RGB if any member is colour).
- Two members that share images (FER2013 and FER+) are refused: every face would be counted twice.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.data.dataset import FerDataset
from ferbench.data.registry import (
    DatasetSpec,
    canonical_dataset_name,
    get_spec,
    has_soft_labels,
    is_dataset_name,
    load_registered,
    role_of_splits,
    soft_labels_for,
)
from ferbench.data.registry import parse_dataset_names as parse_dataset_names  # re-exported
from ferbench.data.taxonomy import CANONICAL
from ferbench.errors import DataError

TAXONOMIES = ("union", "intersection")


def union_classes(member_classes: Sequence[Sequence[str]], taxonomy: str = "union") -> list[str]:
    """The shared taxonomy of members with these canonical classes, in canonical order.

    Raises:
        DataError: unknown taxonomy, or an empty intersection.
    """
    if taxonomy not in TAXONOMIES:
        raise DataError(f"taxonomy {taxonomy!r}: choose union or intersection")
    sets = [set(c) for c in member_classes]
    keep = set.union(*sets) if taxonomy == "union" else set.intersection(*sets)
    if not keep:
        raise DataError("the datasets share no class (intersection is empty)")
    return [c for c in CANONICAL if c in keep]


def check_sampling_weights(names: Sequence[str], sampling_weights: Mapping[str, float] | None) -> dict[str, float]:
    """Per-member weight ``{canonical member name: w}`` (unnamed members 1.0).

    Raises:
        DataError: a key that is not a member, or a weight that is not a positive finite number.
    """
    members = [canonical_dataset_name(n) for n in names]
    out = dict.fromkeys(members, 1.0)
    for k, v in (sampling_weights or {}).items():
        key = canonical_dataset_name(k) if is_dataset_name(str(k)) else str(k)
        if key not in out:
            raise DataError(f"sampling_weights: {k!r} is not one of the datasets ({', '.join(members)})")
        try:
            w = float(v)
        except (TypeError, ValueError):
            raise DataError(f"sampling_weights.{k}: {v!r} is not a number") from None
        if not math.isfinite(w) or w <= 0:
            raise DataError(f"sampling_weights.{k}: {v!r} must be a positive number")
        out[key] = w
    return out


def conform_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` → uint8 ``(N, size, size, channels)`` (bilinear, antialiased when shrinking;
    grey → RGB by replication, RGB → grey by ITU-R 601 luma as PIL's ``convert("L")``)."""
    n, h, w, c = images.shape
    if (h, w, c) == (size, size, channels):
        return images
    out = []
    for i in range(0, n, 2048):
        x = images[i:i + 2048].permute(0, 3, 1, 2).float()
        if c == 3 and channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size)
        out.append(x.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(out).contiguous()


def _remap_soft(soft: torch.Tensor, src: list[str], dst: list[str], labels: torch.Tensor) -> torch.Tensor:
    """``(N, len(src))`` distributions → ``(N, len(dst))``: columns moved by class name, classes outside
    ``dst`` dropped and rows renormalised; a row left with no mass becomes one-hot at ``labels``."""
    out = torch.zeros(soft.shape[0], len(dst), dtype=torch.float32)
    for i, c in enumerate(src):
        if c in dst:
            out[:, dst.index(c)] = soft[:, i].float()
    mass = out.sum(1, keepdim=True)
    onehot = F.one_hot(labels, len(dst)).float()
    return torch.where(mass > 0, out / mass.clamp(min=1e-12), onehot)


def load_union(names: Sequence[str], data_root: str | Path | None = None,
               sampling_weights: Mapping[str, float] | None = None, *, taxonomy: str = "union",
               soft_labels: bool = False, **kwargs: Any) -> FerDataset:
    """Pool registered datasets into one :class:`FerDataset` (see the module docstring for the rules).

    Args:
        names: member names (≥ 2, distinct, no two sharing images).
        data_root: data root for every member.
        sampling_weights: ``{member: weight}`` → ``sample_weights``; unnamed members get 1.0.
        taxonomy: ``"union"`` (default) or ``"intersection"`` of the members' canonical classes.
        soft_labels: give every sample a label distribution: the member's own, else its registered source
            (FER2013 → FER+ votes), else one-hot. Without it, distributions are kept only when every member
            has its own (none are invented).
        kwargs: passed to each member's loader that accepts them (``use_cache``, ``seed``...).

    Returns:
        A dataset named ``"a+b"`` with splits ``train``/``val``/``test``, ``sources``, ``sample_weights``,
        ``subjects`` when any member knows them, and ``rows`` = the row in the member.

    Raises:
        DataError: fewer than two members, a repeated member, members sharing images, a bad weight, or an
            empty intersection.
    """
    members = [canonical_dataset_name(n) for n in names]
    if len(members) < 2:
        raise DataError("a union needs at least two datasets")
    if len(set(members)) != len(members):
        dup = next(m for m in members if members.count(m) > 1)
        raise DataError(f"dataset {dup!r} appears twice in the union")
    specs = [get_spec(m) for m in members]
    seen: dict[str, str] = {}
    for m, s in zip(members, specs, strict=True):
        if s.image_source and s.image_source in seen:
            raise DataError(f"{seen[s.image_source]} and {m} share images ({s.image_source}); a union of both "
                            "would count every face twice: keep one (FER2013 can train on FER+ votes with "
                            "data.soft_labels)")
        if s.image_source:
            seen[s.image_source] = m
    weights = check_sampling_weights(members, sampling_weights)

    parts = [load_registered(m, data_root, **_loader_kwargs(s, kwargs)) for m, s in zip(members, specs, strict=True)]
    classes = union_classes([p.classes for p in parts], taxonomy)
    size = int(parts[0].images.shape[1])
    channels = 3 if any(int(p.images.shape[-1]) == 3 for p in parts) else 1
    any_subjects = any(p.subjects is not None for p in parts)
    keep_soft = soft_labels or all(p.soft_labels is not None for p in parts)

    images, labels, roles, subjects, sources, rows, soft, sw = [], [], [], [], [], [], [], []
    files: list[str] | None = []
    for m, spec, p in zip(members, specs, parts, strict=True):
        role = role_of_splits(p, spec)
        lab_map = torch.tensor([classes.index(c) if c in classes else -1 for c in p.classes], dtype=torch.int64)
        new = lab_map[p.labels]
        keep = np.flatnonzero((new >= 0).numpy())
        if len(keep) == 0:
            raise DataError(f"{m}: no sample left in the {taxonomy} taxonomy ({', '.join(classes)})")
        t = torch.from_numpy(keep)
        images.append(conform_images(p.images[t], size, channels))
        labels.append(new[t])
        roles.append(role[keep])
        sources.append(np.full(len(keep), m))
        rows.append((p.rows if p.rows is not None else np.arange(len(p)))[keep])
        if any_subjects:
            subj = (np.char.add(f"{m}:", p.subjects[keep].astype(str)) if p.subjects is not None
                    else np.char.add(f"{m}:#", rows[-1].astype(str)))
            subjects.append(subj)
        if keep_soft:
            s = p.soft_labels if p.soft_labels is not None else _soft_or_none(p, data_root)
            s = s[t] if s is not None else F.one_hot(p.labels[t], p.num_classes).float()
            soft.append(_remap_soft(s, p.classes, classes, new[t]))
        sw.append(torch.full((len(keep),), weights[m], dtype=torch.float32))
        if files is not None:
            files = None if p.files is None else files + [p.files[i] for i in keep]
    return FerDataset(
        name="+".join(members), classes=classes, images=torch.cat(images), labels=torch.cat(labels),
        splits=np.concatenate(roles).astype(str),
        subjects=np.concatenate(subjects).astype(str) if any_subjects else None,
        soft_labels=torch.cat(soft) if keep_soft else None,
        source=" + ".join(p.source for p in parts), rows=np.concatenate(rows), files=files,
        sources=np.concatenate(sources).astype(str), sample_weights=torch.cat(sw),
    )


def _soft_or_none(ds: FerDataset, data_root: str | Path | None) -> torch.Tensor | None:
    """The member's registered soft-label source, or ``None`` when it has none."""
    return soft_labels_for(ds, data_root) if has_soft_labels(ds) else None


def _loader_kwargs(spec: DatasetSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` the member's loader accepts (``seed`` is CK+'s, ``use_cache`` everyone's)."""
    params = inspect.signature(spec.loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def member_counts(ds: FerDataset) -> dict[str, dict[str, int]]:
    """``{member: {split: count}}`` of a union (a single dataset → its own name)."""
    src = ds.sources if ds.sources is not None else np.full(len(ds), ds.name)
    out: dict[str, dict[str, int]] = {}
    for m in dict.fromkeys(src.tolist()):
        sel = src == m
        out[m] = {s: int((ds.splits[sel] == s).sum()) for s in ds.split_names if (ds.splits[sel] == s).any()}
    return out
