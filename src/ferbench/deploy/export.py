"""Export a checkpoint to ONNX (fp32), ONNX int8 (static QDQ) or TFLite, and check the export.

Every export writes ``OUT`` + ``OUT.json`` (the checkpoint sidecar plus an ``export`` section with
the self-check: max |Δprob| against PyTorch on a validation batch and accuracy before/after on a
validation slice). ``Recognizer.load(OUT)`` / ``ferbench predict --model OUT`` then run it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferbench.deploy.formats import FORMATS, SUFFIX, TFLITE_HINT, check_format  # noqa: F401 (re-exported)
from ferbench.deploy.onnx_cache import OPSET, export_onnx  # noqa: F401 (re-exported)
from ferbench.errors import FerbenchError
from ferbench.loader import is_ensemble_file, load_checkpoint, preprocessing_of
from ferbench.persist.atomic import atomic_write_text
from ferbench.persist.checkpoint import file_digest, resolve_checkpoint

DEFAULT_SPLITS = {"fer2013": ("Training", "PublicTest"), "ferplus": ("Training", "PublicTest")}


@dataclass
class EvalData:
    """Images for calibration / checks: uint8 ``(N, H, W, C)``, labels int64 ``(N,)`` in model class order
    (``None`` when unknown, e.g. synthetic), and a one-line description of where they came from."""

    images: torch.Tensor
    labels: np.ndarray | None
    source: str


def _splits_for(meta: dict[str, Any], dataset: str) -> tuple[str, str]:
    data = (meta.get("protocol") or {}).get("data") or {}
    train, val = DEFAULT_SPLITS.get(dataset, ("train", "val"))
    return str(data.get("train_split") or train), str(data.get("val_split") or val)


def load_eval_data(meta: dict[str, Any], which: str, n: int, data_root: str | Path | None = None,
                   allow_synthetic: bool = False, seed: int = 0) -> EvalData:
    """``n`` images of the checkpoint's dataset: ``which="train"`` (calibration) or ``"val"`` (checks).

    Falls back to FER2013 when the sidecar names no loadable dataset. Without data: synthetic
    noise images if ``allow_synthetic`` (tests only; accuracy is then not measured), else an error.
    """
    from ferbench.data import load_dataset

    names = [d for d in (meta.get("dataset"), "fer2013") if isinstance(d, str) and d]
    errors = []
    for name in dict.fromkeys(names):
        try:
            ds = load_dataset(name, data_root)
            split = _splits_for(meta, name)[0 if which == "train" else 1]
            part = ds.split(split)
        except FerbenchError as e:
            errors.append(str(e))
            continue
        classes = list(meta["classes"])
        lab = np.array([classes.index(c) if c in classes else -1 for c in part.classes])[part.labels.numpy()]
        keep = np.flatnonzero(lab >= 0)
        if keep.size == 0:
            errors.append(f"{name}: no class in common with the model")
            continue
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(keep, size=min(n, keep.size), replace=False))
        return EvalData(part.images[torch.from_numpy(idx)], lab[idx], f"{name}:{split} ({idx.size} images)")
    if allow_synthetic:
        pre = preprocessing_of(meta)
        g = torch.Generator().manual_seed(seed)
        imgs = torch.randint(0, 256, (n, pre.size, pre.size, pre.channels), generator=g, dtype=torch.uint8)
        return EvalData(imgs, None, f"synthetic noise ({n} images; no dataset found)")
    raise FerbenchError(f"no {which} images to {'calibrate' if which == 'train' else 'check'} the export with "
                        f"({'; '.join(errors) or 'no dataset'}); pass --data-root DIR")


def _torch_probs(model: torch.nn.Module, x: torch.Tensor, bs: int = 256) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([torch.softmax(model(x[i:i + bs]).float(), 1).numpy() for i in range(0, len(x), bs)])


def _onnx_probs_fn(path: Path) -> Callable[[torch.Tensor], np.ndarray]:
    from ferbench.deploy.recognizer import OnnxClassifier

    clf = OnnxClassifier(path)
    return lambda x: np.concatenate([clf(x[i:i + 256]) for i in range(0, len(x), 256)])


class _Calibration:
    """onnxruntime ``CalibrationDataReader`` over preprocessed float32 batches."""

    def __init__(self, x: torch.Tensor, input_name: str, bs: int = 32) -> None:
        self.batches = [x[i:i + bs].numpy() for i in range(0, len(x), bs)]
        self.input_name = input_name
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.input_name: np.ascontiguousarray(self.batches[self.i - 1], np.float32)}

    def rewind(self) -> None:
        self.i = 0


def quantize_int8(fp32: Path, out: Path, calib: torch.Tensor, per_channel: bool = True, weight_bits: int = 8) -> None:
    """Static int8 quantisation, QDQ format (uint8 activations, int8 weights), MinMax-calibrated on
    ``calib`` (preprocessed model inputs, float32 ``(N, C, S, S)``).

    ``weight_bits=7`` (onnxruntime's ``reduce_range``) is for x86 CPUs without VNNI (AVX2 only): their fast U8S8
    kernels sum pairs of uint8 × int8 products in 16 bits, which 8-bit weights can overflow (so ferbench runs
    8-bit exports there on onnxruntime's slower exact kernels) and 7-bit weights cannot. Measured 2026-12-05 on a
    2-core AVX2 EPYC with `default`: the batch-2 forward 1.36× faster (``benchmarks/int8_kernels.py``), the
    astronaut frame end to end 1.13× (`Recognizer.predict`, 60 interleaved frames); accuracy FER2013
    PrivateTest 69.85 vs 69.69 %, CK+48 all 927 faces 81.55 / balanced 75.13 % vs 82.09 / 75.53 % (test split
    80.77 / 68.06 vs 82.69 / 70.42 %). On CPUs with VNNI or AMX it gains nothing and costs that precision, so the
    shipped exports keep 8 bits."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calib, "input")
    with tempfile.TemporaryDirectory() as td:
        prep = Path(td) / "prep.onnx"
        try:
            quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantise the plain graph if it fails
            prep = fp32
        quantize_static(str(prep), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=weight_bits == 7, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)


def export_tflite(model: torch.nn.Module, example: torch.Tensor, out: Path) -> Callable[[torch.Tensor], np.ndarray]:
    """TFLite via litert-torch (optional); returns a probs function running the converted model."""
    try:
        import litert_torch as lt  # type: ignore[import-not-found]
    except ImportError:
        try:
            import ai_edge_torch as lt  # type: ignore[import-not-found]
        except ImportError:
            raise FerbenchError(TFLITE_HINT) from None
    example = example[:1]  # TFLite graphs have a static shape: batch 1, the deploy case
    try:
        edge = lt.convert(model.eval(), (example,))
        edge.export(str(out))
    except Exception as e:  # the converter's error types vary by version
        raise FerbenchError(f"TFLite conversion failed: {str(e).strip().splitlines()[0][:200]}") from None

    def probs(x: torch.Tensor) -> np.ndarray:
        rows = [np.asarray(edge(x[i:i + 1].contiguous())).reshape(1, -1) for i in range(len(x))]
        logits = np.concatenate(rows)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return probs


def source_digest(ckpt: str | Path) -> str:
    """Digest of what an export was made from: the checkpoint's weights file, or for an ensemble JSON its rule
    and every member's weights file (so a retrained member changes it; the export's own sidecar, which may be
    the ensemble JSON itself, does not)."""
    if is_ensemble_file(ckpt):
        doc = json.loads(Path(ckpt).read_text())
        base = Path(ckpt).parent
        parts = [str(doc.get("rule", "sum"))] + [
            file_digest(resolve_checkpoint(m if Path(m).is_absolute() else base / m)) for m in doc["members"]]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return file_digest(resolve_checkpoint(ckpt))


def default_out(ref: str | Path, fmt: str) -> Path:
    """``RUN_DIR/best.onnx``-style name next to the checkpoint; ``./NAME.onnx`` in the current folder for a
    shipped model (``default``), whose checkpoint lives inside the installed package."""
    from ferbench.deploy.formats import resolve_model_ref

    _, p = resolve_model_ref(ref)
    base = Path(str(ref)) if str(ref) in ("default", "default-ferplus") else p.with_suffix("")
    return base.with_name(base.name + SUFFIX[fmt])


def export_model(ref: str | Path, fmt: str = "onnx", out: str | Path | None = None,
                 data_root: str | Path | None = None, n_val: int = 1000, n_calib: int = 512,
                 allow_synthetic: bool = False, log: Callable[[str], None] = print,
                 int8_weight_bits: int = 8) -> tuple[Path, dict[str, Any]]:
    """Export checkpoint ``ref`` ("default", run dir, .safetensors) to ``fmt``; returns (path, check report).

    ``int8_weight_bits``: 8, or 7 for CPUs without VNNI (see :func:`quantize_int8`); ``onnx-int8`` only.

    The check: probabilities of PyTorch vs the export on the validation images (max |Δprob| over
    the first 256, accuracy on all ``n_val``), stored in ``OUT.json["export"]``.
    """
    from ferbench.deploy.formats import resolve_model_ref

    check_format(fmt)  # unknown format / missing tflite converter: before any loading
    if int8_weight_bits not in (7, 8):
        raise FerbenchError(f"int8 weight bits must be 7 or 8, not {int8_weight_bits}")
    kind, ckpt = resolve_model_ref(ref)
    if kind != "torch":
        raise FerbenchError(f"{ref}: export needs a PyTorch checkpoint, not an ONNX file")
    model, meta = load_checkpoint(ckpt)
    pre = preprocessing_of(meta)
    out = Path(out) if out else default_out(ref, fmt)
    if out.suffix == "":
        out = out.with_suffix(".tflite" if fmt == "tflite" else ".onnx")
    val = load_eval_data(meta, "val", n_val, data_root, allow_synthetic)
    log(f"validation data: {val.source}")
    xv = pre(val.images)
    example = xv[:2].contiguous()

    if fmt == "tflite":
        probs_fn = export_tflite(model, example, out)
    else:
        if fmt == "onnx":
            export_onnx(model, example, out)
        else:
            calib = load_eval_data(meta, "train", n_calib, data_root, allow_synthetic, seed=1)
            log(f"calibration data: {calib.source}")
            xc = pre(calib.images)
            p_cal = _torch_probs(model, xc[:256])
            with tempfile.TemporaryDirectory() as td:
                fp32 = Path(td) / "fp32.onnx"
                export_onnx(model, example, fp32)
                # Per-channel weights are usually better, but on some BN-folded nets they lose >5 points
                # (seen on fer_vgg_s): keep the variant closer to PyTorch on the *calibration* images.
                dev = {}
                for pc in (True, False):
                    cand = Path(td) / f"int8_pc{int(pc)}.onnx"
                    quantize_int8(fp32, cand, xc, per_channel=pc, weight_bits=int8_weight_bits)
                    dev[pc] = float(np.abs(_onnx_probs_fn(cand)(xc[:256]) - p_cal).mean())
                per_channel = min(dev, key=lambda k: dev[k])
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(td) / f"int8_pc{int(per_channel)}.onnx", out)
            log(f"int8 weights: {'per-channel' if per_channel else 'per-tensor'} (mean |dprob| on calibration "
                f"images: per-channel {dev[True]:.4f}, per-tensor {dev[False]:.4f})")
        probs_fn = _onnx_probs_fn(out)

    p_ref, p_exp = _torch_probs(model, xv), probs_fn(xv)
    check: dict[str, Any] = {
        "format": fmt, "source": str(ref), "source_digest": source_digest(ckpt),
        "file": out.name, "opset": OPSET if fmt != "tflite" else None,
        "validation": val.source, "n_check": int(min(256, len(xv))),
        "max_abs_dprob": float(np.abs(p_ref[:256] - p_exp[:256]).max()),
        "mean_abs_dprob": float(np.abs(p_ref - p_exp).mean()),
        "top1_agreement": float((p_ref.argmax(1) == p_exp.argmax(1)).mean()),
        "accuracy_torch": None, "accuracy_export": None,
        "size_bytes": out.stat().st_size,
    }
    if val.labels is not None:
        check["accuracy_torch"] = float((p_ref.argmax(1) == val.labels).mean())
        check["accuracy_export"] = float((p_exp.argmax(1) == val.labels).mean())
        check["accuracy_delta_points"] = round(100 * (check["accuracy_export"] - check["accuracy_torch"]), 3)
    if fmt == "onnx-int8":
        check["calibration"] = calib.source
        check["int8_per_channel"] = per_channel
        check["int8_weight_bits"] = int8_weight_bits
    atomic_write_text(out.with_suffix(".json"), json.dumps({**meta, "export": check}, indent=2))
    return out, check
