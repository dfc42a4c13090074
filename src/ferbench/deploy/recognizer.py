"""``Recognizer``: detect faces → crop → the checkpoint's own preprocessing → classifier.

Three lines::

    from ferbench import Recognizer
    r = Recognizer.load("default")          # or a run dir, a .safetensors, a .onnx, a .tflite
    faces = r.predict("photo.jpg")          # [FacePrediction(box, label, probs, score), ...]
    r.predict(["a.jpg", "b.jpg"])           # a list → one list of faces per image, one forward pass

The classifier runs in PyTorch (checkpoints) or onnxruntime (``.onnx`` with its ``.json`` sidecar);
both are safe to call from several threads at once (forward only, no shared mutable state).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferbench.data.images import MAX_PIXELS, swap_rb, to_rgb
from ferbench.data.preprocess import Preprocessing
from ferbench.deploy.formats import SHIPPED, SUFFIX, resolve_model_ref
from ferbench.device import cpu_int8_dot, cpu_int8_matrix, pin_torch_threads
from ferbench.errors import FerbenchError
from ferbench.evaluate.calibration import calibrated_probs, needs_mirror
from ferbench.faces import DEFAULT_DETECTOR, Detector, crop_face, get_detector
from ferbench.loader import load_checkpoint, preprocessing_of
from ferbench.persist.checkpoint import (
    WEIGHTS_DIR,
    file_digest,
    logit_bias_of,
    resolve_checkpoint,
    temperature_of,
    tta_gate_of,
)
from ferbench.progress import silenced_stderr

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.safetensors"
DETECT_MODES = ("auto", "none")  # besides detector names: auto = face crops are classified whole; none = never detect


@dataclass
class Prediction:
    """One classified face: ``label`` (class name) and ``probs`` ``{class: probability}``."""

    label: str
    probs: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.probs[self.label]


@dataclass
class FacePrediction(Prediction):
    """A detected + classified face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` int pixel box in the input image (the detector's, before margin;
            the whole image when it was classified as a face crop).
        score: the face detector's confidence, a probability in [0, 1] (blazeface, mediapipe, mtcnn).
            ``None`` when no detector ran (``--no-detect``, a face crop under ``auto``) and for the
            Haar cascade, which has no calibrated confidence. ``confidence`` is the *expression*
            probability of ``label``, a different thing.
        landmarks: ``[[x, y]] * 5`` or ``None``.
        track_id: stable id of this face across video frames (``None`` for still images).
    """

    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    score: float | None = None
    landmarks: list[list[float]] | None = field(default=None, repr=False)
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box": list(self.box), "label": self.label,
                             "confidence": round(self.confidence, 6), "score": self.score,
                             "probs": {k: round(v, 6) for k, v in self.probs.items()}}
        if self.track_id is not None:
            d = {"track_id": self.track_id, **d}
        if self.landmarks is not None:
            d["landmarks"] = self.landmarks
        return d


def int8_path(ckpt: Path) -> Path:
    """Where the int8 export of checkpoint file ``ckpt`` lives: ``NAME.int8.onnx`` beside ``NAME.safetensors``."""
    return ckpt.with_name(ckpt.name.removesuffix(ckpt.suffix) + SUFFIX["onnx-int8"])


def shipped_int8(ckpt: Path) -> bool:
    """Whether the shipped checkpoint ``ckpt`` has its int8 export beside it (``weights/NAME.int8.onnx``)."""
    p = int8_path(ckpt)
    return p.is_file() and p.with_suffix(".json").is_file()


def int8_export_of(ref: str | Path, ckpt: Path) -> Path:
    """The static int8 ONNX export of checkpoint ``ckpt`` (``NAME.int8.onnx`` beside it, as ``ferbench export
    REF --format onnx-int8`` names it in a run dir); a missing or stale one (exported from other weights:
    its sidecar's ``export.source_digest`` differs from the checkpoint's) → one-line error."""
    ckpt = resolve_checkpoint(ckpt)
    p = int8_path(ckpt)
    how = f"ferbench export {ref} --format onnx-int8 --out {p}"
    if not p.is_file() or not p.with_suffix(".json").is_file():
        raise FerbenchError(f"{ref}: no int8 export beside the checkpoint ({p.name}); make it with: {how}")
    want = (json.loads(p.with_suffix(".json").read_text()).get("export") or {}).get("source_digest")
    if want is not None and want != file_digest(ckpt):
        raise FerbenchError(f"{p}: exported from other weights than {ckpt.name} (stale); re-export with: {how}")
    return p


class _Classifier:
    """Shared post-processing of the backends: scores → probabilities with the sidecar's calibration
    temperature, optionally averaged with the horizontally mirrored face (h-flip test-time augmentation)."""

    backend = "?"
    temperature: float = 1.0
    logit_bias: np.ndarray | None = None  # the sidecar's prior correction, -tau * log(prior) (K,)
    tta_hflip: bool = False
    tta_gate: float | None = None  # with tta_hflip: first-view confidence from which the mirror is skipped
    threads: int | None = None  # torch's pool size for this classifier's calls (None: leave it alone)

    def logits(self, x: torch.Tensor) -> np.ndarray:  # (N, C, S, S) float32 → (N, K) float32
        raise NotImplementedError

    def calibrate_from(self, meta: dict[str, Any]) -> None:
        """Take the temperature, prior correction and TTA gate of a checkpoint sidecar."""
        self.temperature, self.logit_bias = temperature_of(meta), logit_bias_of(meta)
        self.tta_gate = tta_gate_of(meta)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        if not self.tta_hflip:
            return calibrated_probs(self.logits(x), self.temperature, self.logit_bias)
        if self.tta_gate is None:
            z = self.logits(torch.cat([x, x.flip(-1)]))  # one forward for both views
            return calibrated_probs(z.reshape(2, len(x), -1), self.temperature, self.logit_bias)
        z1 = self.logits(x)  # gated: the mirror only for the faces the first view leaves unsure
        p = calibrated_probs(z1, self.temperature, self.logit_bias)
        unsure = np.flatnonzero(needs_mirror(p, self.tta_gate))
        if len(unsure):
            z2 = self.logits(x[torch.from_numpy(unsure)].flip(-1))
            p[unsure] = calibrated_probs(np.stack([z1[unsure], z2]), self.temperature, self.logit_bias)
        return p


class TorchClassifier(_Classifier):
    """PyTorch forward: float32 ``(N, C, S, S)`` → softmax probabilities float32 ``(N, K)``.

    ``threads``: intra-op threads for the forward. PyTorch has one process-wide pool, so the count is
    set (``torch.set_num_threads``) before each call whose count differs; ``None`` leaves it alone.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, threads: int | None = None) -> None:
        self.model = model.eval()
        self.threads = threads
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> TorchClassifier:
        """Run on ``device`` (``.to(device)``; inputs move there, probabilities come back to the CPU)."""
        self.device = torch.device(device)
        self.model = self.model.to(self.device)
        return self

    def logits(self, x: torch.Tensor) -> np.ndarray:
        pin_torch_threads(self.threads)
        with torch.inference_mode():
            return self.model(x.to(self.device)).float().cpu().numpy()


def _needs_exact_int8(export_meta: dict[str, Any]) -> bool:
    """Whether an ONNX export's int8 weights need onnxruntime's exact U8U8 kernels: only on an x86 CPU without
    VNNI / AMX-INT8 (:func:`ferbench.device.cpu_int8_dot`), and not when its sidecar says the weights were
    quantised to 7 bits (``export.int8_weight_bits``).

    With VNNI the fast U8S8 kernels accumulate in 32 bits and give the same outputs, and the U8U8 ones are
    slower: on a 2-core Intel Xeon with AMX (2026-12-08, ``benchmarks/int8_kernels.py --faces 500``) the
    shipped classifier's TTA pair took 0.79 ms on U8S8 and 2.77 ms on U8U8 (fp32 ONNX 2.44 ms), with the same
    accuracy, agreement with fp32 and max |dprob|.
    """
    return not cpu_int8_dot() and (export_meta.get("export") or {}).get("int8_weight_bits") != 7


class OnnxClassifier(_Classifier):
    """onnxruntime forward (``InferenceSession.run`` is thread-safe)."""

    backend = "onnx"
    torch_model: torch.nn.Module | None = None  # set when the file is the cached export of a checkpoint

    def __init__(self, path: Path, threads: int | None = None, exact_int8: bool | None = None) -> None:
        """``exact_int8``: onnxruntime's exact U8U8 int8 kernels (default: on x86 CPUs without VNNI / AMX-INT8)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # onnxruntime's pool spins after each run by default, taking the cores from the detector that runs
        # next: 2 threads measured 14.9 ms end to end on the astronaut frame with spinning, 8.2 without
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # int8 on x86 CPUs without VNNI (AVX2-only, AVX-512 without VNNI): onnxruntime's fast U8S8 kernels add
        # pairs of products in 16 bits and saturate. On a 2-core AVX2 EPYC the shipped default.int8.onnx then
        # agreed with its fp32 export on 84 % of 64 FER2013 faces (max |dprob| 0.41); with the exact U8U8
        # kernels this option selects, 98 % (max 0.023); fp32 graphs are unaffected. Exports with 7-bit weights
        # (``ferbench export --int8-weight-bits 7``: ``int8_weight_bits: 7`` in the sidecar) cannot saturate there
        # and run on the fast kernels with the same integers; so do all int8 exports on CPUs with VNNI, where the
        # exact kernels only cost time (:func:`_needs_exact_int8` decides ``exact_int8``).
        if _needs_exact_int8({}) if exact_int8 is None else exact_int8:
            opts.add_session_config_entry("session.x64quantprecision", "1")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise FerbenchError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0][:160]})") from None
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, x: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy(), np.float32)})[0]


class TfliteClassifier(_Classifier):
    """TFLite interpreter (``ai-edge-litert``), static batch 1; one lock: an interpreter is not thread-safe."""

    backend = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
        except ImportError:
            raise FerbenchError(f"{path}: running .tflite needs ai-edge-litert (pip install ai-edge-litert)") from None
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        with silenced_stderr():  # TFLite's XNNPACK "INFO:" line
            self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]["index"]
        self.out = self.interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def logits(self, x: torch.Tensor) -> np.ndarray:
        rows = []
        with self._lock:
            for i in range(x.shape[0]):
                self.interpreter.set_tensor(self.inp, np.ascontiguousarray(x[i:i + 1].numpy(), np.float32))
                self.interpreter.invoke()
                rows.append(self.interpreter.get_tensor(self.out).reshape(1, -1).copy())
        return np.concatenate(rows)


def default_threads() -> int:
    """Threads for the classifier when ``threads=None``: 1 where int8 has matrix units, else 2 where there are 2 cores.

    With AMX-INT8 (or not x86: :func:`ferbench.device.cpu_int8_matrix`) the shipped int8 classifier's forward is
    well under a millisecond and a second thread costs more to wake than it saves: on a quiet Intel Xeon with AMX
    (2026-12-03) the astronaut frame took 5.9-6.1 ms end to end with one classifier thread and 7.2-7.5 ms with
    two; on another (2026-12-08, onnxruntime's fast int8 kernels) 4.24 vs 4.26 ms, a tie. Elsewhere the forward
    is compute-bound and two threads win: on a 2-core AVX2 EPYC 22.6 vs 28.5 ms (2026-12-05, 60 interleaved
    frames), on a 2-core EPYC with AVX-512 VNNI 6.44 vs 6.94 and 7.00 vs 7.66 ms (2026-12-07, 150 / 200
    interleaved frames, on the exact int8 kernels; ``benchmarks/classifier_threads.py``;
    ``benchmarks/results/deploy.md``).
    When other work holds the cores, pass ``threads=1``: PyTorch's OpenMP team and OpenCV's pool wait on
    descheduled threads (a 5 ms classify took hundreds of ms right after a parallel Haar pass on a busy box).
    """
    return 1 if cpu_int8_matrix() else min(2, os.cpu_count() or 1)


def default_detector_threads() -> int:
    """Threads for the detector when ``threads=None``: 2 where the machine has them, else 1.

    BlazeFace's XNNPACK pool and the classifier run one after the other, the classifier with
    :func:`default_threads` (one with AMX-INT8): in one ``benchmarks/pipeline.py`` run on an idle 2-core AMD EPYC
    (2026-12-04, ``benchmarks/results/deploy.md``), the astronaut frame end to end took 6.61 ms with two
    detector threads and 10.22 ms with one (int8 onnxruntime classifier, one thread). With a 2-thread
    training job beside it, two threads were slower (15 vs 11 ms): pass ``threads=1`` there.
    """
    return min(2, os.cpu_count() or 1)


class Recognizer:
    """Facial expression recognizer: a classifier + its sidecar's preprocessing + a face detector.

    Attributes:
        classes: class names, index = model output.
        preprocessing: the checkpoint's :class:`Preprocessing` (crop margin/shift, size, channels, norm).
        meta: the sidecar dict.
        source: where the model came from.
        detector_name: ``auto`` (face crops — small images, or square ones where nothing is found —
            are classified whole; others go through the default detector), ``none``, or a detector name.
        threads: threads of the classifier (and of the detector when given explicitly).
        detector_threads: threads of the detector (``threads`` when given, else
            :func:`default_detector_threads`).
    """

    def __init__(self, classifier: TorchClassifier | OnnxClassifier | TfliteClassifier, meta: dict[str, Any],
                 source: str, detector: str | Detector = DEFAULT_DETECTOR, align: bool = False,
                 max_pixels: int = MAX_PIXELS, threads: int | None = None, crop_margin: float | None = None,
                 crop_shift: float | None = None) -> None:
        self.classifier = classifier
        self.meta = meta
        self.source = source
        self.classes: list[str] = list(meta["classes"])
        self.preprocessing: Preprocessing = preprocessing_of(meta)
        if crop_margin is not None:
            self.preprocessing.crop_margin = float(crop_margin)
        if crop_shift is not None:
            self.preprocessing.crop_shift = float(crop_shift)
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise FerbenchError(f"threads must be >= 1, got {threads}")
        if classifier.threads is None:
            classifier.threads = self.threads
        self.detector_threads = default_detector_threads() if threads is None else self.threads
        if isinstance(detector, str):
            d = detector.lower()
            self.detector_name = d
            self._detector_spec = DEFAULT_DETECTOR if d in DETECT_MODES else d
            self._detector: Detector | None = None
        else:
            self.detector_name = getattr(detector, "name", type(detector).__name__)
            self._detector_spec, self._detector = self.detector_name, detector
        self.align = align
        self.max_pixels = max_pixels

    @classmethod
    def load(cls, ref: str | Path = "default", detector: str | Detector = DEFAULT_DETECTOR, align: bool = False,
             max_pixels: int = MAX_PIXELS, threads: int | None = None, crop_margin: float | None = None,
             crop_shift: float | None = None, tta: bool | None = None, backend: str = "auto",
             tta_gate: float | str | None = "sidecar") -> Recognizer:
        """Load ``"default"``, a run dir, a ``.safetensors`` checkpoint or a ``.onnx`` / ``.tflite`` export.

        Args:
            detector: ``"blazeface"`` (default), ``"blazeface-full"``, ``"haar"``, ``"mediapipe"``,
                ``"mtcnn"``, ``"auto"`` (face crops are classified whole), ``"none"``, or a detector object.
            threads: threads for the detector and the classifier (``None``: the classifier
                :func:`default_threads`, the detector :func:`default_detector_threads`).
            crop_margin, crop_shift: override the sidecar's crop framing.
            tta: average with the mirrored face (h-flip test-time augmentation; up to twice the classifier cost).
                ``None``: the sidecar's ``inference.tta_hflip`` (off when absent).
            tta_gate: with TTA, faces whose first view's calibrated confidence is at least this skip the mirrored
                view (:func:`ferbench.evaluate.calibration.needs_mirror`); ``"sidecar"``: the sidecar's
                ``calibration.tta_gate`` (``ferbench calibrate --tta-gate auto`` fits it; the shipped models
                have one), ``None``: the pair for every face.

            backend: how a PyTorch checkpoint runs: ``"torch"``; ``"onnx"`` (onnxruntime on a copy exported
                once into ``$FERBENCH_CACHE/onnx``, see :mod:`ferbench.deploy.onnx_cache`; same probabilities,
                2–3× faster at batch 1 on a CPU); ``"onnx-int8"`` (the checkpoint's static int8 export beside
                it, ``NAME.int8.onnx`` as ``ferbench export NAME --format onnx-int8`` writes it; shipped for
                the shipped models; an export of other weights than the checkpoint's is refused); ``"auto"`` =
                ``"onnx-int8"`` for a shipped model whose int8 export is shipped beside it (``"default"``:
                69.69 % on FER2013 PrivateTest, as in fp32; ``"default-ferplus"``: 86.33 vs 86.49 % on
                FER+ PrivateTest; 1-2 ms less per face), else ``"onnx"`` for a shipped model, ``"torch"``
                for other checkpoints. ``.onnx`` / ``.tflite`` files run on their own runtime whatever this says.

        Probabilities use the sidecar's calibration (``calibration.temperature``, and the prior correction
        ``calibration.prior_tau`` of ``ferbench calibrate``) when it has one.
        """
        if backend not in BACKENDS:
            raise FerbenchError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
        th = default_threads() if threads is None else threads
        clf: TorchClassifier | OnnxClassifier | TfliteClassifier
        kind, path = resolve_model_ref(ref)
        if kind == "torch" and backend == "auto" and str(ref) in SHIPPED and shipped_int8(path):
            backend = "onnx-int8"
        calibration: dict[str, Any] | None = None
        if kind == "torch" and backend == "onnx-int8":
            int8 = int8_export_of(ref, path)
            model, ck_meta = load_checkpoint(path)
            meta = json.loads(int8.with_suffix(".json").read_text())
            calibration = ck_meta  # the checkpoint's sidecar is the truth (calibrated after the export or not)
            clf = OnnxClassifier(int8, th, exact_int8=_needs_exact_int8(meta))
            clf.backend, clf.torch_model = "onnx-int8", model  # the checkpoint kept for use_torch()
        elif kind in ("onnx", "tflite"):
            meta = json.loads(path.with_suffix(".json").read_text())
            clf = (OnnxClassifier(path, th, exact_int8=_needs_exact_int8(meta)) if kind == "onnx"
                   else TfliteClassifier(path, th))
            if (meta.get("export") or {}).get("format") == "onnx-int8":
                clf.backend = "onnx-int8"
        else:
            model, meta = load_checkpoint(path)
            if backend == "onnx" or (backend == "auto" and str(ref) in SHIPPED):
                from ferbench.deploy.onnx_cache import cached_onnx

                pre = preprocessing_of(meta)
                clf = OnnxClassifier(cached_onnx(model, pre.channels, pre.size), th)
                clf.torch_model = model  # kept for use_torch() (a GPU, or gradients)
            else:
                clf = TorchClassifier(model, th)
        clf.calibrate_from(calibration or meta)
        if tta_gate != "sidecar":
            try:
                gate = None if tta_gate is None else float(tta_gate)
            except (TypeError, ValueError):
                gate = -1.0
            if gate is not None and not 0.0 < gate <= 1.0:
                raise FerbenchError(f"tta_gate must be 'sidecar', None or a number in (0, 1], got {tta_gate!r}")
            clf.tta_gate = gate
        clf.tta_hflip = bool((meta.get("inference") or {}).get("tta_hflip", False)) if tta is None else bool(tta)
        rec = cls(clf, meta, str(ref), detector, align, max_pixels, threads, crop_margin, crop_shift)
        if isinstance(detector, str) and rec.detector_name != "none":
            rec.detector  # noqa: B018 — build now: unknown/missing detector fails here, not at the first image
        return rec

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = get_detector(str(self._detector_spec), threads=self.detector_threads)
        return self._detector

    @property
    def backend(self) -> str:
        return self.classifier.backend

    def use_torch(self) -> Recognizer:
        """Run the classifier in PyTorch again (a checkpoint loaded with ``backend="onnx"``/``"auto"``);
        a no-op for PyTorch classifiers. Raises for ``.onnx`` / ``.tflite`` files (no PyTorch model)."""
        if isinstance(self.classifier, TorchClassifier):
            return self
        model = getattr(self.classifier, "torch_model", None)
        if model is None:
            raise FerbenchError(f"{self.source}: a {self.backend} file has no PyTorch model to run")
        old = self.classifier
        clf = TorchClassifier(model, old.threads)
        clf.temperature, clf.logit_bias, clf.tta_hflip = old.temperature, old.logit_bias, old.tta_hflip
        clf.tta_gate = old.tta_gate
        self.classifier = clf
        return self

    def __repr__(self) -> str:
        arch = (self.meta.get("architecture") or {}).get("name", "?")
        pre = self.preprocessing
        det = self.detector_name if self.detector_name not in DETECT_MODES else (
            f"{self.detector_name}({self._detector_spec})" if self.detector_name == "auto" else "none")
        return (f"Recognizer(model={self.source!r}, arch={arch}, backend={self.backend}, "
                f"classes=[{', '.join(self.classes)}], input={pre.size}x{pre.size}x{pre.channels}, "
                f"detector={det}, crop_margin={pre.crop_margin:g}, crop_shift={pre.crop_shift:g}, "
                f"threads={self.threads}"
                + (f", detector_threads={self.detector_threads})" if self.detector_threads != self.threads else ")"))

    def info(self) -> dict[str, Any]:
        """Model summary for ``GET /models`` and logs."""
        arch = self.meta.get("architecture", {})
        return {"source": self.source, "backend": self.backend, "architecture": arch.get("name"),
                "classes": self.classes, "preprocessing": self.preprocessing.to_dict(),
                "dataset": self.meta.get("dataset"), "detector": self.detector_name, "threads": self.threads,
                "detector_threads": self.detector_threads,
                "tta_hflip": self.classifier.tta_hflip,
                "tta_gate": self.classifier.tta_gate if self.classifier.tta_hflip else None,
                "metrics": {k: v for k, v in (self.meta.get("metrics") or {}).items()
                            if isinstance(v, (int, float))},
                "export": self.meta.get("export")}

    # -- classification ------------------------------------------------------------------------
    def _inputs(self, crops: list[np.ndarray]) -> torch.Tensor:
        """uint8 crops ``(h_i, w_i, 3|1)`` → ``(N, C, S, S)`` model input via the sidecar's Preprocessing."""
        pre = self.preprocessing
        return torch.cat([pre.from_uint8(np.require(c, np.uint8)) for c in crops]).contiguous()

    def classify_arrays(self, crops: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """uint8 RGB/grey crops ``(h, w, 3|1)`` → probabilities float32 ``(N, K)``."""
        if not crops:
            return np.zeros((0, len(self.classes)), np.float32)
        # the preprocessing runs in torch whatever the backend: an idle-spinning OpenMP pool wider than
        # `threads` fights the detector's (or another process's) threads
        pin_torch_threads(getattr(self.classifier, "threads", self.threads))
        out = [self.classifier(self._inputs(crops[i:i + batch_size])) for i in range(0, len(crops), batch_size)]
        return np.concatenate(out)

    def _prediction(self, p: np.ndarray) -> Prediction:
        return Prediction(self.classes[int(p.argmax())], {c: float(v) for c, v in zip(self.classes, p, strict=True)})

    def classify(self, faces: Any, color: str = "bgr", batch_size: int = 256) -> Prediction | list[Prediction]:
        """Already-cropped faces → :class:`Prediction` objects; no detection, each image is one whole face.

        ``faces``: one face (numpy array, PIL image or path) → one Prediction; a list/tuple of them →
        a list, classified in batches of ``batch_size``.
        """
        one = not isinstance(faces, (list, tuple))
        crops = [self._face_array(f, color) for f in ([faces] if one else faces)]
        preds = [self._prediction(p) for p in self.classify_arrays(crops, batch_size)]
        return preds[0] if one else preds

    def _face_array(self, f: Any, color: str) -> np.ndarray:
        if isinstance(f, np.ndarray) and (f.ndim == 2 or (f.ndim == 3 and f.shape[2] == 1)):
            a = f if f.dtype == np.uint8 else to_rgb(f)[..., :1]
            return a[..., None] if a.ndim == 2 else a  # grey stays grey: Preprocessing replicates if needed
        return to_rgb(f, color, self.max_pixels)

    # -- detection + classification ------------------------------------------------------------
    def is_face_crop(self, rgb: np.ndarray) -> bool:
        """``auto`` rule, as ``ferbench explain``: an image at most 2× the model input side is a face crop."""
        return max(rgb.shape[:2]) <= 2 * self.preprocessing.size

    def crop(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """The training framing around a detector box: square + ``crop_margin`` + ``crop_shift``, uint8."""
        pre = self.preprocessing
        return crop_face(rgb, box, pre.crop_margin, None, landmarks, self.align, pre.crop_shift)

    def locate(self, rgb: np.ndarray, detect: bool = True) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Faces of one RGB image → (crops, per-face box/score/landmarks); ``detect=False`` = whole image."""
        h, w = rgb.shape[:2]
        whole = [rgb], [{"box": (0, 0, w, h), "score": None, "landmarks": None}]
        mode = self.detector_name
        if not detect or mode == "none" or (mode == "auto" and self.is_face_crop(rgb)):
            return whole
        det = self.detector.detect(rgb)
        if len(det) == 0 and mode == "auto" and 0.8 <= w / h <= 1.25:
            return whole  # nothing found in a roughly square image: take it as a (large) face crop
        crops, info = [], []
        for i in range(len(det)):
            lm = None if det.landmarks is None else det.landmarks[i]
            crops.append(self.crop(rgb, det.boxes[i], lm))
            sc = float(det.scores[i])
            info.append({"box": tuple(int(round(v)) for v in det.boxes[i]),
                         "score": None if np.isnan(sc) else round(sc, 4),
                         "landmarks": None if lm is None else np.round(lm.astype(np.float64), 1).tolist()})
        return crops, info

    def predict_batch(self, images: list[Any], color: str = "bgr", detect: bool = True,
                      batch_size: int = 256) -> list[list[FacePrediction]]:
        """Several images → per image, its faces (largest first). All crops go through one batched forward.

        An image where no face is found yields an empty list.
        """
        all_crops: list[np.ndarray] = []
        per_image: list[list[dict[str, Any]]] = []
        for img in images:
            crops, info = self.locate(to_rgb(img, color, self.max_pixels), detect)
            all_crops += crops
            per_image.append(info)
        probs = self.classify_arrays(all_crops, batch_size)
        out, k = [], 0
        for info in per_image:
            faces = []
            for d in info:
                p = self._prediction(probs[k])
                faces.append(FacePrediction(p.label, p.probs, box=d["box"], score=d["score"],
                                            landmarks=d["landmarks"]))
                k += 1
            out.append(faces)
        return out

    def predict(self, image: Any, color: str = "bgr", detect: bool = True
                ) -> list[FacePrediction] | list[list[FacePrediction]]:
        """One image (path, numpy BGR/RGB array, PIL image) → its faces, largest first ([] = no face).

        A list/tuple of images → one such list per image; all their faces are classified in one
        forward pass (:meth:`predict_batch`).
        """
        if isinstance(image, (list, tuple)):
            return self.predict_batch(list(image), color, detect)
        return self.predict_batch([image], color, detect)[0]

    def draw(self, image: Any, faces: list[FacePrediction] | None = None, color: str = "bgr") -> np.ndarray:
        """The image with each face's box and ``label prob`` drawn → uint8 RGB ``(H, W, 3)`` (a new array).

        ``faces``: predictions for this image (default: ``self.predict(image)``). Colours follow the
        class index; tracked faces are labelled ``#id``. ``color`` is the input's channel order for arrays.
        """
        rgb = to_rgb(image, color, self.max_pixels)
        if faces is None:
            faces = self.predict_batch([rgb], "rgb")[0]
        return swap_rb(annotate(swap_rb(rgb), faces, self.classes))


_COLOURS = [(60, 60, 230), (60, 160, 60), (200, 100, 160), (0, 200, 255), (200, 130, 40), (0, 140, 255),
            (180, 180, 180), (120, 60, 120)]


def annotate(frame_bgr: np.ndarray, faces: list[FacePrediction], classes: list[str] | None = None) -> np.ndarray:
    """Draw each face's box and ``label prob`` on a uint8 BGR ``(H, W, 3)`` frame (in place; returned)."""
    import cv2
    for f in faces:
        x1, y1, x2, y2 = f.box
        k = classes.index(f.label) if classes and f.label in classes else 0
        col = _COLOURS[k % len(_COLOURS)]
        t = max(1, round(max(frame_bgr.shape[:2]) / 400))
        cv2.rectangle(frame_bgr, (x1, y1), (x2, y2), col, t)
        text = f"{f.label} {f.confidence:.2f}" if f.track_id is None else f"#{f.track_id} {f.label} {f.confidence:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, t)
        ty = max(y1, th + 4)
        cv2.rectangle(frame_bgr, (x1, ty - th - 4), (x1 + tw + 4, ty), col, -1)
        cv2.putText(frame_bgr, text, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, (255, 255, 255), t,
                    cv2.LINE_AA)
    return frame_bgr
