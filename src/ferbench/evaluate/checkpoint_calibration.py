"""``ferbench calibrate``: fit a checkpoint's temperature and prior correction on its validation split and store
them in its sidecar (the math is :mod:`ferbench.evaluate.calibration`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ferbench.data import load_dataset
from ferbench.data.registry import split_name
from ferbench.errors import FerbenchError
from ferbench.evaluate.calibration import calibrated_probs, fit_calibration, fit_tta_gate, gated_pair_probs
from ferbench.evaluate.metrics import compute_metrics
from ferbench.evaluate.predict import predict_view_logits
from ferbench.loader import load_checkpoint, preprocessing_of
from ferbench.persist.atomic import atomic_write_with
from ferbench.persist.checkpoint import logit_bias_of, resolve_checkpoint, tta_gate_of, update_sidecar


def calibrate_checkpoint(ref: str | Path, data: str | None = None, val_split: str | None = None,
                         train_split: str | None = None, data_root: str | Path | None = None,
                         tta_hflip: bool | None = None, prior_tau: float | str = "auto",
                         max_accuracy_drop: float = 0.005, out: str | Path | None = None,
                         batch_size: int = 512, tta_gate: float | str | None = None) -> dict[str, Any]:
    """Fit the temperature and the prior correction of checkpoint ``ref`` and store them in its sidecar.

    ``data`` (default: the checkpoint's training dataset) must have the model's classes. The scores of
    ``val_split`` (default: the dataset's validation role, e.g. FER2013 PublicTest) fit both; the prior is the
    class frequencies of ``train_split`` (default: its training role). ``prior_tau``: ``"auto"``
    (:func:`ferbench.evaluate.calibration.fit_prior_tau`'s rule with ``max_accuracy_drop``), or a number (0 = temperature only).
    ``tta_hflip`` defaults to how the sidecar says the model runs (``inference.tta_hflip``).
    ``tta_gate`` (with h-flip TTA): ``"auto"`` fits the gate (:func:`ferbench.evaluate.calibration.fit_tta_gate`
    on the same split, under the fitted calibration), ``"off"`` removes it, a number in (0, 1] sets it, ``None``
    keeps the sidecar's. ``val_calibrated`` is then scored as the gated TTA runs.
    ``out``: write a calibrated copy (``.safetensors`` + sidecar) there instead of updating ``ref`` in place.

    Returns the ``calibration`` block written, with the validation metrics of the model as trained
    (``val_uncalibrated``) and calibrated (``val_calibrated``); re-running gives the same block.
    """
    if out is not None and Path(out).suffix != ".safetensors":
        raise FerbenchError(f"--out {out}: give a .safetensors path (its .json sidecar is written beside it)")
    if isinstance(prior_tau, str) and prior_tau != "auto":
        try:
            prior_tau = float(prior_tau)
        except ValueError:
            raise FerbenchError(f"--prior-tau must be 'auto' or a number, got {prior_tau!r}") from None
    if not isinstance(prior_tau, str) and not 0.0 <= float(prior_tau) <= 2.0:
        raise FerbenchError(f"--prior-tau must lie in [0, 2], got {prior_tau}")
    gate_arg = _gate_arg(tta_gate)
    model, meta = load_checkpoint(ref)
    data = data or meta.get("dataset")
    if not data:
        raise FerbenchError(f"{ref}: the sidecar names no training dataset; pass --data")
    ds = load_dataset(str(data), data_root)
    if list(ds.classes) != list(meta["classes"]):
        raise FerbenchError(f"{data}: classes {', '.join(ds.classes)} differ from the model's "
                            f"({', '.join(meta['classes'])}); calibrate on the dataset the model was trained for")
    val_split = val_split or split_name(str(data), "val")
    train_split = train_split or split_name(str(data), "train")
    tta = bool((meta.get("inference") or {}).get("tta_hflip", False)) if tta_hflip is None else bool(tta_hflip)
    gate = tta_gate_of(meta) if gate_arg == "keep" else gate_arg
    if gate is not None and not tta:
        raise FerbenchError(f"{ref}: a TTA gate needs h-flip TTA (the sidecar's inference.tta_hflip is off); "
                            "pass --tta or --tta-gate off")
    val = ds.split(val_split)
    y = val.labels.numpy()
    z = predict_view_logits(model, val.images, preprocessing_of(meta), batch_size, tta)
    before = compute_metrics(y, calibrated_probs(z), meta["classes"])  # the model as trained (T = 1, no bias)
    cal = fit_calibration(z, y, ds.split(train_split).labels.numpy(), prior_tau, max_accuracy_drop)
    keep = ("accuracy", "balanced_accuracy", "f1_macro", "ece")
    bias = logit_bias_of({"calibration": cal})
    if gate == "auto":
        gate, cal["tta_gate_search"] = fit_tta_gate(z, y, cal["temperature"], bias)
        cal["tta_gate_rule"] = ("lowest gate in 0.50, 0.55, ..., 0.95 whose accuracy and balanced accuracy on the "
                                "split are at least the full pair's")
    if gate is not None:
        cal["tta_gate"] = float(gate)
    after = compute_metrics(y, gated_pair_probs(z, cal["temperature"], bias, gate) if gate is not None
                            else calibrated_probs(z, cal["temperature"], bias), meta["classes"])
    cal.update({"split": f"{data}:{val_split}", "tta_hflip": tta, "prior_split": f"{data}:{train_split}",
                "val_uncalibrated": {k: before[k] for k in keep if k in before},
                "val_calibrated": {k: after[k] for k in keep if k in after}})
    src = resolve_checkpoint(ref)
    if out is not None:
        dst = Path(out)
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_with(dst, lambda tmp: shutil.copyfile(src, tmp))
        atomic_write_with(dst.with_suffix(".json"), lambda tmp: shutil.copyfile(src.with_suffix(".json"), tmp))
        src = dst
    update_sidecar(src, calibration=cal)
    return cal


def _gate_arg(tta_gate: float | str | None) -> float | str | None:
    """``--tta-gate`` → ``"auto"``, ``"keep"`` (``None``), ``None`` (``"off"``) or a number in (0, 1]."""
    if tta_gate is None:
        return "keep"
    if isinstance(tta_gate, str):
        if tta_gate in ("auto", "off"):
            return None if tta_gate == "off" else "auto"
        try:
            tta_gate = float(tta_gate)
        except ValueError:
            raise FerbenchError(f"--tta-gate must be 'auto', 'off' or a number in (0, 1], got {tta_gate!r}") from None
    if not 0.0 < float(tta_gate) <= 1.0:
        raise FerbenchError(f"--tta-gate must lie in (0, 1], got {tta_gate}")
    return float(tta_gate)
