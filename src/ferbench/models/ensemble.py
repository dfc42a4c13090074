"""Ensembles as one model: member probabilities combined by sum (mean softmax) or majority vote.

``EnsembleModel`` maps the ensemble's ``[0, 1]`` input through each member's own preprocessing, so members may
differ in size, channels and normalisation. Files listing members are read and written by
:mod:`ferbench.loader`; member selection on a validation split is :mod:`ferbench.evaluate.ensemble`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.data.preprocess import Preprocessing
from ferbench.errors import FerbenchError

RULES = ("sum", "vote")


def vote_shares(probs: np.ndarray) -> np.ndarray:
    """Majority vote. ``probs``: ``(M, N, C)`` → ``(N, C)`` vote shares; argmax = winner, ties → lowest index."""
    m, n, c = probs.shape
    votes = np.zeros((n, c), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(n)[None], m, 0), probs.argmax(-1)), 1.0)
    return votes / m


def combine(probs: np.ndarray, rule: str = "sum") -> np.ndarray:
    """Combine member probabilities ``(M, N, C)`` → ``(N, C)`` scores summing to 1 per row.

    ``sum``: mean of the softmaxes (same argmax as their sum). ``vote``: vote shares (:func:`vote_shares`).
    """
    if rule not in RULES:
        raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise FerbenchError("an ensemble needs at least one member")
    return probs.mean(0) if rule == "sum" else vote_shares(probs)


def shared_member_classes(member_classes: list[list[str]]) -> tuple[list[str], list[list[int]]]:
    """The classes every member predicts, in the first member's order, and each member's output index of each.

    ``member_classes``: each member's class names (canonical, as sidecars store them). Returns
    ``(classes, columns)`` with ``columns[i][k]`` = member ``i``'s output for ``classes[k]``; an empty
    ``classes`` when the members share none.
    """
    classes = [c for c in member_classes[0] if all(c in own for own in member_classes[1:])]
    return classes, [[own.index(c) for c in classes] for own in member_classes]


def ensemble_preprocessing(pres: list[Preprocessing]) -> Preprocessing:
    """Input definition of the ensemble: ``[0, 1]`` (no normalisation), RGB if any member is, at the
    smallest member size — so on data at that native size (FER2013 48 px) every member sees exactly what its
    own preprocessing would give it (each member then resizes with its own interpolation)."""
    return Preprocessing(size=min(p.size for p in pres), channels=max(p.channels for p in pres), mean=[0.0],
                         std=[1.0], interpolation="bilinear", crop_margin=pres[0].crop_margin)


class EnsembleModel(nn.Module):
    """Members behind one forward: ``(B, ch, S, S)`` float in [0, 1] → ``(B, C)`` log ensemble probabilities.

    ``softmax(forward(x))`` is the members' mean probability (``sum``) or their vote shares (``vote``), each
    member's probability being its own calibrated one, ``softmax(z / T + bias)`` with the temperature and prior
    correction of its sidecar (:func:`ferbench.evaluate.calibration.calibrated_probs`; ``T = 1``, no bias for an
    uncalibrated member). Members may predict more classes than the ensemble (a FER+ model with ``contempt``
    beside FER2013 ones): ``columns[i]`` lists member ``i``'s output index of each ensemble class, and its
    probabilities are restricted to those and renormalised before they are combined (``None``: every member's
    outputs are the ensemble's classes, in order). Attribute ``sidecar`` has the checkpoint-sidecar fields
    predict/serve use (classes, preprocessing).
    """

    def __init__(self, members: list[nn.Module], preprocessings: list[Preprocessing], classes: list[str],
                 rule: str = "sum", temperatures: list[float] | None = None,
                 biases: list[np.ndarray | None] | None = None, columns: list[list[int]] | None = None) -> None:
        super().__init__()
        if rule not in RULES:
            raise FerbenchError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
        self.members = nn.ModuleList(members)
        self.preprocessings = list(preprocessings)
        self.classes = list(classes)
        self.rule = rule
        self.preprocessing = ensemble_preprocessing(self.preprocessings)
        self.sidecar: dict[str, Any] = {}
        m, c = len(members), len(classes)
        cols = [list(range(c)) for _ in range(m)] if columns is None else [list(map(int, v)) for v in columns]
        if len(cols) != m or any(len(v) != c for v in cols):
            raise FerbenchError(f"an ensemble of {m} members over {c} classes needs {m} column lists of {c}")
        # the identity members skip the restriction (same numbers as before columns existed)
        self._restricted = [v != list(range(c)) for v in cols]
        given = [np.asarray(v, np.float32).reshape(-1) if v is not None else None for v in (biases or [])]
        # one row per member, as wide as the widest bias given (a narrower member uses its first entries)
        width = max([c] + [max(v) + 1 for v in cols] + [len(v) for v in given if v is not None])
        t = torch.tensor([float(v) for v in temperatures] if temperatures is not None else [1.0] * m)
        b = torch.zeros(m, width)
        for i, v in enumerate(given):
            if v is not None:
                b[i, :len(v)] = torch.from_numpy(v)
        if t.shape != (m,) or (t <= 0).any():
            raise FerbenchError(f"an ensemble of {m} members needs {m} positive temperatures, got {t.tolist()}")
        # calibration and class columns, not weights: kept out of state_dict
        self.register_buffer("temperatures", t, persistent=False)
        self.register_buffer("biases", b, persistent=False)
        if any(self._restricted):
            self.register_buffer("columns", torch.tensor(cols, dtype=torch.long), persistent=False)

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ch, S, S)`` in [0, 1] → ``(M, B, C)`` member calibrated softmaxes (each through its own
        preprocessing, temperature and prior correction), restricted to the ensemble's classes."""
        out = []
        for i, (m, pre) in enumerate(zip(self.members, self.preprocessings, strict=True)):
            z = m(pre.from_float(x)).float()
            bias = self.biases[i, :z.shape[-1]]
            if bias.shape[0] < z.shape[-1]:  # a member wider than every bias given has no correction there
                bias = torch.nn.functional.pad(bias, (0, z.shape[-1] - bias.shape[0]))
            p = (z / self.temperatures[i] + bias).softmax(-1)
            if self._restricted[i] or p.shape[-1] != len(self.classes):
                # the ensemble's classes among the member's (an identity member wider than the ensemble:
                # its first len(classes) outputs), renormalised
                p = p[:, self.columns[i]] if self._restricted[i] else p[:, :len(self.classes)]
                p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
            out.append(p)
        return torch.stack(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.member_probs(x)
        if self.rule == "sum":
            return p.mean(0).clamp_min(1e-12).log()
        votes = torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).sum(0).to(p.dtype)
        eps = 1e-3  # finite logs for classes without votes; argmax and ties unchanged
        return ((votes + eps) / (votes.sum(-1, keepdim=True) + eps * p.shape[-1])).log()
