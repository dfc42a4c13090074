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
    uncalibrated member). Attribute ``sidecar`` has the checkpoint-sidecar fields predict/serve use (classes,
    preprocessing).
    """

    def __init__(self, members: list[nn.Module], preprocessings: list[Preprocessing], classes: list[str],
                 rule: str = "sum", temperatures: list[float] | None = None,
                 biases: list[np.ndarray | None] | None = None) -> None:
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
        t = torch.tensor([float(v) for v in temperatures] if temperatures is not None else [1.0] * m)
        b = torch.zeros(m, c)
        for i, bias in enumerate(biases or []):
            if bias is not None:
                b[i] = torch.as_tensor(np.asarray(bias, np.float32))
        if t.shape != (m,) or (t <= 0).any():
            raise FerbenchError(f"an ensemble of {m} members needs {m} positive temperatures, got {t.tolist()}")
        # calibration, not weights: kept out of state_dict
        self.register_buffer("temperatures", t, persistent=False)
        self.register_buffer("biases", b, persistent=False)

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ch, S, S)`` in [0, 1] → ``(M, B, C)`` member calibrated softmaxes (each through its own
        preprocessing, temperature and prior correction)."""
        return torch.stack([(m(pre.from_float(x)).float() / self.temperatures[i] + self.biases[i]).softmax(-1)
                            for i, (m, pre) in enumerate(zip(self.members, self.preprocessings, strict=True))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.member_probs(x)
        if self.rule == "sum":
            return p.mean(0).clamp_min(1e-12).log()
        votes = torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).sum(0).to(p.dtype)
        eps = 1e-3  # finite logs for classes without votes; argmax and ties unchanged
        return ((votes + eps) / (votes.sum(-1, keepdim=True) + eps * p.shape[-1])).log()
