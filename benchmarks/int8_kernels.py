"""int8 ONNX on this CPU: onnxruntime's fast U8S8 kernels vs its exact U8U8 kernels, beside the fp32 export.

    .venv/bin/python benchmarks/int8_kernels.py [--model default] [--faces 3589] [--rounds 5] [--data-root DIR]

On x86 CPUs without VNNI (AVX2 only, AVX-512 without VNNI) the U8S8 kernels add pairs of u8 x s8 products
in 16 bits and can saturate; ``session.x64quantprecision=1`` (which ferbench sets on those CPUs) selects
U8U8 kernels that cannot. With VNNI / AMX-INT8 the U8S8 kernels accumulate in 32 bits, give the same outputs
and are the faster ones (an Intel Xeon with AMX, 2026-12-08: 0.79 vs 2.77 ms), so ferbench leaves the option
unset there (``ferbench.deploy.recognizer.OnnxClassifier``). For the shipped model's int8
file and its fp32 export (same preprocessing, h-flip TTA pair, no calibration: raw softmax) this prints, on
the first ``--faces`` FER2013 PrivateTest faces: top-1 agreement with fp32, accuracy, max |dprob|, and the
median batch-2 latency (one face with its flip, 1 thread), the sessions timed in interleaved rounds. A fourth
row is a 7-bit-weight int8 export of the same checkpoint made for the run (``ferbench export --int8-weight-bits
7``, into a temporary folder), on the fast U8S8 kernels, which 7-bit weights cannot saturate.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _timing import timeit  # benchmarks/ is on sys.path: scripts run as benchmarks/X.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a shipped model name (its NAME.int8.onnx is used)")
    ap.add_argument("--faces", type=int, default=3589)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds of 200 calls each")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    import tempfile
    from pathlib import Path

    import onnxruntime as ort
    import torch

    from ferbench.data import load_dataset
    from ferbench.deploy.export import export_model
    from ferbench.deploy.onnx_cache import cached_onnx
    from ferbench.deploy.recognizer import WEIGHTS_DIR
    from ferbench.loader import load_checkpoint, preprocessing_of

    ckpt = WEIGHTS_DIR / f"{args.model}.safetensors"
    model, meta = load_checkpoint(ckpt)
    data = meta["protocol"]["data"]
    ds = load_dataset(data["name"], args.data_root).split(data["test_split"])
    pre = preprocessing_of(meta)
    x = pre(ds.images[: args.faces]).numpy()
    labels = ds.labels.numpy()[: args.faces]

    def session(path: str, precise: str | None) -> ort.InferenceSession:
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if precise is not None:
            o.add_session_config_entry("session.x64quantprecision", precise)
        return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    fp32_path = cached_onnx(model, pre.channels, pre.size)
    runs = {"fp32 ONNX": session(str(fp32_path), None),
            "int8 U8S8 (onnxruntime default; ferbench with VNNI / AMX-INT8)":
                session(str(WEIGHTS_DIR / f"{args.model}.int8.onnx"), "0"),
            "int8 U8U8 (x64quantprecision=1; ferbench on x86 without VNNI)":
                session(str(WEIGHTS_DIR / f"{args.model}.int8.onnx"), "1")}
    tmp = Path(tempfile.mkdtemp())
    seven, _ = export_model(args.model, "onnx-int8", tmp / f"{args.model}.int8w7.onnx", args.data_root,
                            int8_weight_bits=7, log=lambda s: None)
    runs["int8, 7-bit weights, U8S8 (--int8-weight-bits 7)"] = session(str(seven), "0")

    def probs(s: ort.InferenceSession) -> np.ndarray:
        name = s.get_inputs()[0].name
        out = []
        for i in range(0, len(x), 256):
            b = x[i:i + 256]
            z = s.run(None, {name: b})[0] + s.run(None, {name: np.ascontiguousarray(b[..., ::-1])})[0]
            out.append(torch.softmax(torch.from_numpy(z / 2), 1).numpy())
        return np.concatenate(out)

    p = {k: probs(s) for k, s in runs.items()}
    pair = np.ascontiguousarray(np.concatenate([x[:1], x[:1, ..., ::-1]]))
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, s in runs.items():
            name = s.get_inputs()[0].name
            times[k] += timeit(lambda s=s, name=name: s.run(None, {name: pair}), 200, warmup=20)
    ref = p["fp32 ONNX"]
    print(f"{args.model}: {len(x)} {data['name']} {data['test_split']} faces, h-flip TTA pair, raw softmax (no calibration)")
    print("| session | accuracy | top-1 agreement with fp32 | max abs dprob | median ms (batch 2, 1 thread) |")
    print("|---|---:|---:|---:|---:|")
    for k in runs:
        acc = float((p[k].argmax(1) == labels).mean())
        agree = float((p[k].argmax(1) == ref.argmax(1)).mean())
        print(f"| {k} | {100 * acc:.2f} % | {100 * agree:.2f} % | {np.abs(p[k] - ref).max():.3f} | "
              f"{1e3 * statistics.median(times[k]):.3f} |")


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
