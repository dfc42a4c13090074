"""Post-hoc calibration stored in the checkpoint sidecar and applied by every reader of probabilities
(evaluation, predict, serve, the exported models' runners).

* Temperature scaling (Guo et al. 2017): one scalar ``T`` fitted on the validation split so that
  ``softmax(z / T)`` is calibrated; accuracy is unchanged (the argmax does not move).
* Prior correction (post-hoc logit adjustment, Menon et al. 2021): ``softmax(z / T - tau * log(prior))``
  with ``prior`` the training split's class frequencies. ``tau = 1`` is the Bayes correction to equal class
  priors (the decision that maximises balanced accuracy when ``softmax(z / T)`` is calibrated), ``tau = 0``
  leaves the model as trained. FER2013's prior (25 % happy, 1.5 % disgust) is not a webcam's or another
  dataset's, so a partial correction lifts balanced accuracy in-domain and off-domain
  (``docs/protocol.md §8`` defines balanced accuracy; measured in ``benchmarks/results/default_recipe.md``).

* TTA gate (optional, for models run with h-flip TTA): the first view's calibrated confidence from which a
  face keeps its own probabilities without the mirrored view (:func:`needs_mirror`, :func:`fit_tta_gate`).

Sidecar: ``calibration = {"temperature": T, "split": ..., "prior_tau": tau, "log_prior": [...], "tta_gate": g, ...}``;
:func:`calibrated_probs` is the one definition of the output, for one pass or averaged views (h-flip TTA);
reading the block back from a sidecar: :func:`ferbench.persist.checkpoint.temperature_of` / ``logit_bias_of``.
Fitting a checkpoint's calibration from its data (``ferbench calibrate``): :mod:`ferbench.evaluate.checkpoint_calibration`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def calibrated_probs(logits: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None) -> np.ndarray:
    """Scores → calibrated probabilities: ``softmax(z / T + bias)``, averaged over views.

    Args:
        logits: ``(N, C)`` scores of one pass, or ``(V, N, C)`` for ``V`` views of the same images (h-flip TTA).
        temperature: ``T > 0``.
        bias: ``(C,)`` added after the division (``-tau * log(prior)``, see
            :func:`ferbench.persist.checkpoint.logit_bias_of`), or ``None``.
    Returns:
        float32 ``(N, C)``.
    """
    z = np.asarray(logits, np.float64) / float(temperature)
    if bias is not None:
        z = z + np.asarray(bias, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return (p.mean(0) if p.ndim == 3 else p).astype(np.float32)


def fit_temperature(logits: np.ndarray, y: np.ndarray, max_iter: int = 200) -> float:
    """The ``T > 0`` minimising the NLL of :func:`calibrated_probs` ``(logits, T)``.

    Args:
        logits: ``(N, C)`` float scores, or ``(V, N, C)`` views (their probabilities are averaged).
        y: ``(N,)`` int labels in ``[0, C)``.

    Returns:
        ``T`` as a float (1.0 for an empty input), bounded to ``[0.05, 20]``.
    """
    if len(y) == 0:
        return 1.0
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    z = z[None] if z.ndim == 2 else z
    t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logp = torch.log_softmax(z / log_t.exp(), -1)
        logp = torch.logsumexp(logp, 0) - np.log(z.shape[0])  # log of the views' mean probability
        loss = torch.nn.functional.nll_loss(logp, t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(float(log_t.detach().exp()), 0.05, 20.0))


def log_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Log class frequencies of integer ``labels`` ``(N,)`` → float64 ``(C,)`` (add-one smoothed, so a class
    absent from the training split gets a finite, low prior)."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)[:num_classes].astype(np.float64)
    return np.log((counts + 1.0) / (counts.sum() + num_classes))


def fit_prior_tau(logits: np.ndarray, y: np.ndarray, log_prior_: np.ndarray, temperature: float = 1.0,
                  taus: np.ndarray | None = None, max_accuracy_drop: float = 0.005
                  ) -> tuple[float, list[dict[str, float]]]:
    """Choose the prior-correction strength on a validation split.

    Rule: the ``tau`` in ``taus`` (default 0, 0.05, …, 1) with the highest balanced accuracy among those whose
    accuracy is at most ``max_accuracy_drop`` below the uncorrected model's (``tau = 0``); ties → smaller ``tau``.
    Pure balanced-accuracy maximisation picks ``tau`` near 1, which on FER2013 costs 2 points of accuracy
    and over-corrects on other datasets (measured for the shipped model: ``default_recipe.md``).

    Args:
        logits: ``(N, C)`` or ``(V, N, C)`` validation scores; ``y``: ``(N,)`` labels.
        log_prior_: ``(C,)`` from :func:`log_prior` on the training labels.
    Returns:
        ``(tau, table)``: the chosen value and one ``{"tau", "accuracy", "balanced_accuracy"}`` row per candidate.
    """
    from sklearn.metrics import balanced_accuracy_score

    taus = np.round(np.arange(0.0, 1.0001, 0.05), 4) if taus is None else np.asarray(taus, np.float64)
    y = np.asarray(y)
    table = []
    for tau in taus:
        pred = calibrated_probs(logits, temperature, -float(tau) * np.asarray(log_prior_)).argmax(1)
        table.append({"tau": float(tau), "accuracy": float((pred == y).mean()),
                      "balanced_accuracy": float(balanced_accuracy_score(y, pred))})
    base = next((r["accuracy"] for r in table if r["tau"] == 0.0), table[0]["accuracy"])
    ok = [r for r in table if r["accuracy"] >= base - max_accuracy_drop - 1e-12] or table[:1]
    best = max(ok, key=lambda r: (r["balanced_accuracy"], -r["tau"]))
    return best["tau"], table


def fit_calibration(logits: np.ndarray, y: np.ndarray, train_labels: np.ndarray, prior_tau: float | str | None = "auto",
                    max_accuracy_drop: float = 0.005) -> dict[str, Any]:
    """Temperature, then prior correction, from validation scores → the sidecar's ``calibration`` block.

    Args:
        logits: ``(N, C)`` or ``(V, N, C)`` validation scores; ``y``: ``(N,)`` their labels.
        train_labels: the training split's integer labels (the prior).
        prior_tau: ``"auto"`` (:func:`fit_prior_tau`), a number, or ``None`` / 0 (temperature only).
    Returns:
        ``{"method", "temperature", "prior_tau", "log_prior", "rule", "tau_search"}``.
    """
    c = np.asarray(logits).shape[-1]
    lp = log_prior(train_labels, c)
    t0 = fit_temperature(logits, y)
    table: list[dict[str, float]] = []
    if prior_tau == "auto":
        tau, table = fit_prior_tau(logits, y, lp, t0, max_accuracy_drop=max_accuracy_drop)
    else:
        tau = float(prior_tau or 0.0)
    # T stays the one fitted without the bias: refitting it with the bias would move the decisions away
    # from the ones tau was chosen by (the bias's weight relative to z / T changes with T)
    return {"method": "temperature scaling" + (" + prior correction (post-hoc logit adjustment)" if tau else ""),
            "temperature": t0, "prior_tau": tau, "log_prior": [float(v) for v in lp],
            "rule": ("tau: highest balanced accuracy on the split with accuracy at most "
                     f"{100 * max_accuracy_drop:g} points below tau = 0") if prior_tau == "auto" else "tau: given",
            "tau_search": table}


def needs_mirror(first_probs: np.ndarray, gate: float | None) -> np.ndarray:
    """Which faces get the mirrored view under a TTA gate: ``(N, C)`` calibrated probabilities of the first
    view → bool ``(N,)``, true where the top probability is below ``gate`` (every face when ``gate`` is ``None``).

    A gated h-flip TTA keeps the first view's probabilities for a face the model is already sure of and
    averages the pair (:func:`calibrated_probs` of both views) for the others: same decisions where the pair
    would not change them, half the classifier work for the confident faces.
    """
    p = np.asarray(first_probs)
    if gate is None:
        return np.ones(len(p), dtype=bool)
    return p.max(-1) < float(gate)


def gated_pair_probs(logits: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None,
                     gate: float | None = None) -> np.ndarray:
    """Scores of both views ``(2, N, C)`` (image, mirror) → float32 ``(N, C)`` probabilities of the gated TTA:
    the pair's average where :func:`needs_mirror`, else the first view's (``gate=None``: the pair everywhere)."""
    z = np.asarray(logits)
    first = calibrated_probs(z[0], temperature, bias)
    pair = calibrated_probs(z, temperature, bias)
    return np.where(needs_mirror(first, gate)[:, None], pair, first).astype(np.float32)


def fit_tta_gate(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None,
                 gates: np.ndarray | None = None) -> tuple[float | None, list[dict[str, float]]]:
    """Choose the h-flip TTA gate on a validation split.

    Rule: the lowest ``gate`` in ``gates`` (default 0.50, 0.55, …, 0.95) whose accuracy and balanced accuracy
    are both at least the full pair's (the mirror is skipped for as many faces as cost nothing on the split);
    ``None`` (always the pair) when no gate qualifies.

    Args:
        logits: ``(2, N, C)`` validation scores of the image and its mirror; ``y``: ``(N,)`` labels.
        temperature, bias: the calibration the gate is applied under (:func:`calibrated_probs`).
    Returns:
        ``(gate, table)``: the chosen value and one ``{"gate", "mirrored", "accuracy", "balanced_accuracy"}`` row
        per candidate, then one for the full pair (``gate`` ``None``); ``mirrored`` is the fraction of faces
        that get the second view.
    """
    from sklearn.metrics import balanced_accuracy_score

    z, y = np.asarray(logits), np.asarray(y)
    if z.ndim != 3 or z.shape[0] != 2:
        raise ValueError(f"fit_tta_gate needs (2, N, C) scores of the image and its mirror, got {z.shape}")
    gates = np.round(np.arange(0.5, 0.9501, 0.05), 4) if gates is None else np.asarray(gates, np.float64)
    first = calibrated_probs(z[0], temperature, bias)

    def row(gate: float | None) -> dict[str, Any]:
        pred = gated_pair_probs(z, temperature, bias, gate).argmax(1)
        return {"gate": gate, "mirrored": float(needs_mirror(first, gate).mean()),
                "accuracy": float((pred == y).mean()), "balanced_accuracy": float(balanced_accuracy_score(y, pred))}

    full = row(None)
    table = [row(float(g)) for g in gates]
    ok = [r for r in table if r["accuracy"] >= full["accuracy"] - 1e-12
          and r["balanced_accuracy"] >= full["balanced_accuracy"] - 1e-12]
    return (min(r["gate"] for r in ok) if ok else None), [*table, full]
