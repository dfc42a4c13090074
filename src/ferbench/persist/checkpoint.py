"""The checkpoint file format: ``NAME.safetensors`` (tensors) + ``NAME.json`` (sidecar). No pickle, no model code.

The sidecar holds everything needed to rebuild and use the model::

    {"format": "ferbench-checkpoint/2",
     "weights_id": "3f2a...",                    # the write this sidecar belongs to (see below)
     "architecture": {"name": "fer_vgg_m", "num_classes": 7, "kwargs": {...},
                      "method": null | {"name": "scn", ...}},
     "classes": ["angry", ...],                   # canonical names, index = logit
     "preprocessing": {"size": 48, "channels": 1, ...},   # the ONE input definition (size/channels live here)
     "protocol": {...}, "metrics": {...}, "dataset": "fer2013", "epoch": 12}

Weights and sidecar are written as one unit: the sidecar is also embedded in the safetensors header
(``__metadata__``), and the ``.safetensors`` file is replaced atomically first. A process killed before the
``.json`` is rewritten leaves a stale ``.json`` whose ``weights_id`` differs from the header's: readers then use
the embedded copy and :func:`repair_sidecar` rewrites the ``.json``. Format 1 files (no ``weights_id``, size and
channels also under ``architecture``) are read as before.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ferbench.errors import FerbenchError
from ferbench.persist.atomic import atomic_write_text, atomic_write_with

FORMAT = "ferbench-checkpoint/2"
READABLE_FORMATS = ("ferbench-checkpoint/1", FORMAT)
_META_KEY = "ferbench.sidecar"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def file_digest(path: Path) -> str:
    """sha256 (first 16 hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package (``ferbench/weights/NAME.safetensors`` + ``.json``)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors") if p.with_suffix(".json").exists())


def resolve_checkpoint(ref: str | Path) -> Path:
    """A shipped name (``default``), a run dir, a ``.safetensors`` or a ``.json`` → the ``.safetensors`` path.

    Raises:
        FerbenchError: one line naming ``ref`` when nothing usable is there.
    """
    if isinstance(ref, str) and "/" not in ref and not Path(ref).exists() and (WEIGHTS_DIR / f"{ref}.json").exists():
        ref = WEIGHTS_DIR / f"{ref}.safetensors"
    p = Path(ref)
    if p.is_dir():
        p = p / "best.safetensors"
    elif p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.exists():
        shipped = ", ".join(shipped_models())
        raise FerbenchError(f"{ref}: no checkpoint found (expected a shipped model name [{shipped}], a run dir "
                            "with best.safetensors, or a .safetensors file with its .json sidecar)")
    if not p.with_suffix(".json").exists() and _embedded(p) is None:
        raise FerbenchError(f"{p}: sidecar {p.with_suffix('.json').name} missing")
    return p


def _embedded(p: Path) -> dict[str, Any] | None:
    """The sidecar embedded in a safetensors header, or ``None`` (format 1 files)."""
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise FerbenchError(f"{p}: unreadable safetensors file ({e})") from None
    if _META_KEY not in meta:
        return None
    try:
        return json.loads(meta[_META_KEY])
    except json.JSONDecodeError:
        raise FerbenchError(f"{p}: damaged sidecar in the safetensors header") from None


def validate_sidecar(meta: Any, where: Path) -> dict[str, Any]:
    """Check the fields every reader relies on; one-line error naming the file and the field."""
    if not isinstance(meta, dict):
        raise FerbenchError(f"{where}: not a ferbench checkpoint sidecar (a JSON object is expected)")
    if meta.get("format") not in READABLE_FORMATS:
        raise FerbenchError(f"{where}: not a ferbench checkpoint sidecar (format {meta.get('format')!r})")
    arch = meta.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise FerbenchError(f"{where}: sidecar has no 'architecture' with a model 'name'")
    nc = arch.get("num_classes")
    if not isinstance(nc, int) or nc < 2:
        raise FerbenchError(f"{where}: sidecar 'architecture.num_classes' must be an integer >= 2, got {nc!r}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise FerbenchError(f"{where}: sidecar has no 'classes' list of class names")
    if len(classes) != nc:
        raise FerbenchError(f"{where}: sidecar names {len(classes)} classes but the model has {nc} outputs")
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict):
        raise FerbenchError(f"{where}: sidecar has no 'preprocessing' section")
    if meta["format"] == "ferbench-checkpoint/1":  # size/channels were stored twice; preprocessing wins
        pre.setdefault("size", arch.get("input_size"))
        pre.setdefault("channels", arch.get("in_chans"))
    size, ch = pre.get("size"), pre.get("channels")
    if not isinstance(size, int) or size < 8:
        raise FerbenchError(f"{where}: sidecar 'preprocessing.size' must be an integer >= 8, got {size!r}")
    if ch not in (1, 3):
        raise FerbenchError(f"{where}: sidecar 'preprocessing.channels' must be 1 or 3, got {ch!r}")
    arch.pop("input_size", None)
    arch.pop("in_chans", None)
    return meta


def read_sidecar(ref: str | Path) -> dict[str, Any]:
    """The validated sidecar of a checkpoint (see the module docstring for which copy wins)."""
    p = resolve_checkpoint(ref)
    js = p.with_suffix(".json")
    try:
        meta: Any = json.loads(js.read_text(encoding="utf-8"))
    except FileNotFoundError:  # killed between the weights and their .json: the header copy is there
        meta, bad = None, f"{js}: missing"
    except UnicodeDecodeError:
        raise FerbenchError(f"{js}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        meta = None
        bad = f"{js}: invalid JSON ({e.msg} at line {e.lineno})"
    else:
        bad = ""
    embedded = _embedded(p)
    if embedded is not None and (not isinstance(meta, dict) or meta.get("weights_id") != embedded.get("weights_id")):
        meta = embedded  # the .json is stale or damaged: an interrupted write; the header copy belongs to the weights
    elif meta is None:
        raise FerbenchError(bad)
    return validate_sidecar(meta, js)


def read_weights(ref: str | Path) -> dict[str, Any]:
    """The tensors of a checkpoint: ``{name: torch.Tensor}`` (safetensors, never pickle)."""
    from safetensors.torch import load_file

    p = resolve_checkpoint(ref)
    try:
        return load_file(str(p))
    except Exception as e:  # safetensors raises its own error types
        raise FerbenchError(f"{p}: unreadable safetensors file ({e})") from None


def save_tensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write of contiguous, de-aliased copies (optionally with header metadata)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    atomic_write_with(Path(path), lambda tmp: save_file(clean, str(tmp), metadata=metadata))


def write_checkpoint(path: Path, tensors: dict[str, Any], sidecar: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.safetensors, sidecar embedded) then ``path.json``; returns the sidecar written.

    ``sidecar`` is validated first, so a checkpoint that readers would refuse is never written.
    """
    path = Path(path)
    meta = {"format": FORMAT, **{k: v for k, v in sidecar.items() if k != "format"}, "weights_id": uuid.uuid4().hex}
    meta = validate_sidecar(json.loads(json.dumps(meta)), path.with_suffix(".json"))
    save_tensors(path, tensors, {_META_KEY: json.dumps(meta)})
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    return meta


def update_sidecar(ref: str | Path, **fields: Any) -> dict[str, Any]:
    """Rewrite the ``.json`` sidecar with ``fields`` merged in (same weights, same ``weights_id``)."""
    p = resolve_checkpoint(ref)
    meta = {**read_sidecar(p), **fields}
    atomic_write_text(p.with_suffix(".json"), json.dumps(meta, indent=2))
    return meta


def repair_sidecar(ref: str | Path) -> bool:
    """If the ``.json`` does not belong to the weights (interrupted write), rewrite it from the header copy.

    Returns ``True`` when a repair was made.
    """
    p = resolve_checkpoint(ref)
    embedded = _embedded(p)
    if embedded is None:
        return False
    try:
        current = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None
    if isinstance(current, dict) and current.get("weights_id") == embedded.get("weights_id"):
        return False
    atomic_write_text(p.with_suffix(".json"), json.dumps(embedded, indent=2))
    return True


# The sidecar's ``calibration`` block (written by ferbench.evaluate.calibration.fit_calibration), read back
def temperature_of(meta: dict[str, Any]) -> float:
    """The calibration temperature stored in a sidecar (1.0 when the checkpoint is not calibrated)."""
    cal = meta.get("calibration") or {}
    return float(cal.get("temperature") or 1.0)


def logit_bias_of(meta: dict[str, Any]) -> np.ndarray | None:
    """The prior correction stored in a sidecar as a logit bias ``-tau * log(prior)`` ``(C,)``; ``None`` when
    there is none (``tau = 0`` or no ``log_prior``)."""
    cal = meta.get("calibration") or {}
    tau, lp = float(cal.get("prior_tau") or 0.0), cal.get("log_prior")
    if tau == 0.0 or not lp:
        return None
    return (-tau * np.asarray(lp, np.float64)).astype(np.float32)


def tta_gate_of(meta: dict[str, Any]) -> float | None:
    """The h-flip TTA gate stored in a sidecar (``calibration.tta_gate``, fitted by ``ferbench calibrate
    --tta-gate auto``): the first view's calibrated confidence from which the mirrored view is skipped;
    ``None`` (the pair for every face) when there is none."""
    gate = (meta.get("calibration") or {}).get("tta_gate")
    return None if gate is None else float(gate)
