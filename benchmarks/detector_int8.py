"""Static int8 BlazeFace short-range against the shipped float model: the model's own time, A/B in one run.

    pip install ai-edge-quantizer==0.10.0   # for this benchmark only; not a ferbench dependency
    python benchmarks/detector_int8.py [--data-root DIR] [--frames 300] [--reps 300] [--keep FILE.tflite]

Builds the int8 model in a temporary folder (``--keep`` saves it): MediaPipe's float graph (fp16 weights, float
activations) gets int8 weights and int8 activations (ai-edge-quantizer's ``static_wi8_ai8`` recipe, min/max
calibration), so LiteRT's XNNPACK can run its QS8 kernels. Calibration inputs are what the detector feeds the
model: the 128-px letterbox of 640×480 frames and the 2×-context "second look" squares around their faces. The
frames are FER2013 *Training* faces and CK+48 faces pasted at 64–200 px onto scikit-image photos that
``benchmarks/pipeline.py`` does not use (camera, coins, retina, page, text, clock, cell, colorwheel).
The float graph is first made plain float32 (its float16 weights folded, see :func:`float32_graph`) and given
the ``serving_default`` signature the quantizer needs (MediaPipe's converter wrote none).

Then both models are timed interleaved, at the detector's two input shapes (128×128 whole frame, 208×272 scan),
with the detector's thread count, and the ratio printed. Measured 2026-12-07 on the AVX2 Zen 3 EPYC (2 threads,
training paused, this command with ai-edge-quantizer 0.10.0 on ai-edge-litert 2.3.0): int8 6.34 vs 1.13 ms at
128 px, 22.7 vs 3.74 ms at 208×272 (0.16-0.18x): LiteRT splits the int8 graph into 18 XNNPACK partitions and runs
the rest in its own kernels. The detector stays float.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ferbench.faces.blazeface import MODELS_DIR
from ferbench.persist.atomic import atomic_write_bytes

FLOAT = MODELS_DIR / "face_detection_short_range.tflite"
CALIBRATION_BACKGROUNDS = ("camera", "coins", "retina", "page", "text", "clock", "cell", "colorwheel")


def float32_graph(src: Path, dst: Path) -> None:
    """Copy the ``.tflite`` at ``src`` to ``dst`` as a plain float32 graph with a ``serving_default`` signature.

    MediaPipe stores the weights as float16 constants, each followed by a ``DEQUANTIZE`` op; the quantizer would
    take those ops' outputs for activations (asymmetric int8, which LiteRT's int8 convolutions refuse), so each is
    folded into a float32 constant, and the op codes are written where current tools read them. Outputs are bit-identical to the original's (checked by the test suite).
    """
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from ferbench.errors import FerbenchError

    model = fbu.read_model(str(src))
    graph = model.subgraphs[0]
    codes = [fbu.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    for op_code, code in zip(model.operatorCodes, codes, strict=True):
        op_code.builtinCode = code  # the 2019 file keeps it in `deprecatedBuiltinCode` only; the quantizer reads this
    kept = []
    for op in graph.operators:
        if codes[op.opcodeIndex] != fb.BuiltinOperator.DEQUANTIZE:
            kept.append(op)
            continue
        source, target = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        raw = model.buffers[source.buffer].data
        if source.type != fb.TensorType.FLOAT16 or raw is None or not len(raw):
            raise FerbenchError(f"detector_int8.py: unexpected DEQUANTIZE input in {src.name}")
        values = np.frombuffer(bytes(bytearray(raw)), np.float16).astype(np.float32)
        buf = fb.BufferT()
        buf.data = np.frombuffer(values.tobytes(), np.uint8)
        model.buffers.append(buf)
        target.buffer = len(model.buffers) - 1
    graph.operators = kept

    def entry(i: int) -> object:
        t = fb.TensorMapT()
        name = graph.tensors[i].name
        t.name, t.tensorIndex = name.decode() if isinstance(name, bytes) else name, i
        return t

    sig = fb.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs, sig.outputs = [entry(i) for i in graph.inputs], [entry(i) for i in graph.outputs]
    model.signatureDefs = [sig]
    fbu.write_model(model, str(dst))


def calibration_inputs(data_root: str | None, frames: int, seed: int) -> list[np.ndarray]:
    """Float32 ``(1, 128, 128, 3)`` inputs in [-1, 1]: whole-frame letterboxes and second-look squares."""
    from pipeline import composites, cover
    from skimage import data as skdata

    from ferbench.data import load_dataset
    from ferbench.faces.blazeface import BlazeFaceDetector, letterbox

    rng = np.random.default_rng(seed)
    bgs = {}
    for name in CALIBRATION_BACKGROUNDS:
        img = np.asarray(getattr(skdata, name)())
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        bgs[name] = cover(img.astype(np.uint8))
    fer = load_dataset("fer2013", data_root).split("Training")
    ck = load_dataset("ckplus", data_root)
    faces = np.concatenate([fer.images.numpy()[rng.choice(len(fer), 600, replace=False), ..., 0],
                            ck.images.numpy()[rng.choice(len(ck), 200, replace=False), ..., 0]])
    rng.shuffle(faces)
    comps = composites(faces, np.zeros(len(faces), np.int64), bgs, frames, rng)
    look = BlazeFaceDetector("short", backend="litert")
    out: list[np.ndarray] = []
    for c in comps:
        out.append(letterbox(c["image"], 128)[0])
        for box in c["boxes"][:2]:
            got = look._look_inputs(c["image"], box)
            if got is not None:
                out.append(got[0])
    return [np.ascontiguousarray(x, np.float32) for x in out]


def timed_pair(float_path: Path, int8_path: Path, x: np.ndarray, threads: int, reps: int) -> tuple[float, float]:
    """Median ms of one call of each model on the float input ``x`` ``(1, H, W, 3)`` in [-1, 1], interleaved.

    Each model runs in the detector's own runner (``_LitertRunner``: one interpreter per input shape), so a call
    is what a detector pass pays for the model: set the input, invoke, read both outputs.
    """
    from ferbench.faces.blazeface import _LitertRunner

    runs = []
    for path in (float_path, int8_path):
        runner = _LitertRunner(path, threads)
        inp = runner._get(tuple(x.shape))[0].get_input_details()[0]
        v = x
        if inp["dtype"] == np.int8:  # the quantized graph takes int8 input: x / scale + zero point
            scale, zero = inp["quantization"]
            v = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
        runs.append((runner, v))
    times: list[list[float]] = [[], []]
    for r in range(reps + 10):
        for k, (runner, v) in enumerate(runs):
            t = time.perf_counter()
            runner(v)
            if r >= 10:
                times[k].append(time.perf_counter() - t)
    return float(np.median(times[0]) * 1e3), float(np.median(times[1]) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--frames", type=int, default=300, help="composite frames for calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=300, help="timed calls per model and input shape")
    ap.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the detector's own)")
    ap.add_argument("--keep", type=Path, default=None, help="also save the int8 model here")
    args = ap.parse_args()
    from ferbench.errors import FerbenchError

    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise FerbenchError("detector_int8.py needs ai-edge-quantizer (pip install ai-edge-quantizer==0.10.0)") from None
    from pipeline import astronaut_frame

    from ferbench.deploy.recognizer import default_detector_threads
    from ferbench.faces.blazeface import fit_stride, letterbox

    xs = calibration_inputs(args.data_root, args.frames, args.seed)
    print(f"calibrating on {len(xs)} inputs")
    threads = args.threads or default_detector_threads()
    with tempfile.TemporaryDirectory() as tmp:
        signed, int8 = Path(tmp) / "float32.tflite", Path(tmp) / "int8.tflite"
        float32_graph(FLOAT, signed)
        q = quantizer.Quantizer(str(signed), recipe.static_wi8_ai8())
        cal = q.calibrate({"serving_default": [{"input": x} for x in xs]}, num_threads=2)
        int8.write_bytes(bytes(q.quantize(cal, enable_progress_report=False).quantized_model))
        if args.keep is not None:
            atomic_write_bytes(args.keep, int8.read_bytes())
        frame, _ = astronaut_frame()
        small = fit_stride(frame, 272, 16)[0]
        print(f"BlazeFace short-range, {threads} threads, median of {args.reps} calls on the astronaut frame's inputs")
        print("| input | float ms | int8 ms | float / int8 |\n|---|---|---|---|")
        for name, x in (("128x128 letterbox", letterbox(frame, 128)[0]), (f"{small.shape[1]}x{small.shape[2]} scan", small)):
            f, i = timed_pair(FLOAT, int8, np.ascontiguousarray(x), threads, args.reps)
            print(f"| {name} | {f:.3f} | {i:.3f} | {f / i:.2f}x |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
