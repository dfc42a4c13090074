"""ONNX export of a PyTorch classifier, and the cached ONNX copy that ``Recognizer`` runs on the CPU.

onnxruntime runs the shipped ``fer_vgg_m`` 2–3× faster than PyTorch eager at batch 1 on 2 cores with the
same probabilities (max |Δp| ≈ 1e-6, ``benchmarks/latency.py``), so ``Recognizer.load`` runs a shipped
checkpoint through a copy exported once per machine into ``$FERBENCH_CACHE/onnx/`` (the file's name is
the weights' SHA-256 + the torch version, so changed weights never meet a stale export).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ferbench.data.cache import cache_dir
from ferbench.errors import FerbenchError
from ferbench.persist.atomic import atomic_write_with

OPSET = 18


def export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    """``torch.onnx.export`` (dynamo exporter) with a dynamic batch axis; input ``input`` → ``logits``.

    ``example``: float32 ``(2, C, S, S)`` model input (batch ≥ 2 keeps the batch axis symbolic).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", max=4096)  # traced at batch 2: 0/1 would be specialised
    try:
        prog = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                                 dynamic_shapes=({0: batch},), opset_version=OPSET, verbose=False)
        prog.save(str(out), external_data=False)
    except FerbenchError:
        raise
    except Exception as e:  # the exporter's error types vary by torch version
        raise FerbenchError(f"ONNX export failed: {str(e).strip().splitlines()[0][:200]}") from None


def weights_digest(model: torch.nn.Module, *extra: object) -> str:
    """SHA-256 (20 hex digits) of ``model``'s state dict and non-persistent buffers (names, dtypes, shapes,
    bytes) and ``extra``. The buffers count because the export bakes them in (an ensemble's member
    calibration, :class:`ferbench.models.ensemble.EnsembleModel`)."""
    h = hashlib.sha256(repr(extra).encode())
    tensors = {**model.state_dict(), **dict(model.named_buffers())}
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def cached_onnx(model: torch.nn.Module, channels: int, size: int) -> Path:
    """Path of the ONNX export of ``model``, exported now if no export of these weights is cached.

    ``channels``, ``size``: the sidecar's model input ``(N, channels, size, size)``. Written atomically,
    so concurrent first loads (serve workers) never read half a file.
    """
    digest = weights_digest(model, type(model).__name__, channels, size)
    out = cache_dir() / "onnx" / f"{digest}-torch{torch.__version__.split('+')[0]}.onnx"
    if not out.is_file():
        was_training = model.training
        model.eval()
        atomic_write_with(out, lambda tmp: export_onnx(model, torch.zeros(2, channels, size, size), tmp),
                          suffix=".onnx")
        model.train(was_training)
    return out
