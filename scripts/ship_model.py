"""Copy a finished run into the package as a shipped model: ``src/ferbench/weights/NAME.safetensors + NAME.json``.

    python scripts/ship_model.py runs/default --name default \
        --command "ferbench train configs/recipes/default.yaml --out runs/default" [--calibrate]
    python scripts/ship_model.py src/ferbench/weights/default.safetensors --name default --calibrate  # re-ship

``--calibrate`` fits the temperature, the prior correction and, for a model run with h-flip TTA, the TTA gate
(``ferbench calibrate --tta-gate auto``'s rules) on the validation split before the evaluation, so the stored
figures are the calibrated model's.

The sidecar keeps the run's architecture, classes and preprocessing (one definition for train, evaluate,
predict, export and serve) and adds: the full test-split evaluation (``metrics.test``, as scored by
``ferbench evaluate``), the same without h-flip TTA (``metrics.test_single``), batch-1 CPU latency, the
training command and the data licence note. Then the static int8 ONNX export that ``Recognizer`` runs for a
shipped model (``NAME.int8.onnx`` + ``.json``, ``ferbench export NAME --format onnx-int8``), so the shipped
export is always of the shipped weights. Writes are atomic.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ferbench.data import load_dataset
from ferbench.evaluate.crossdata import evaluate_checkpoint
from ferbench.loader import load_checkpoint, preprocessing_of
from ferbench.models.cost import latency_ms as cost_latency_ms
from ferbench.persist.atomic import atomic_write_text

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "ferbench" / "weights"
LICENCES = {
    "fer2013": "Trained on FER2013 (Goodfellow et al., 2013; Kaggle ICML 2013 challenge): research and "
               "non-commercial use only. The weights inherit the dataset's terms.",
    "ferplus": "Trained on FER2013 images (research and non-commercial use only) with FER+ labels "
               "(Microsoft, MIT licence for the label file). The weights inherit FER2013's terms.",
}


# datasets the shipped model never trained on, evaluated into the sidecar (``metrics.<name>_test``)
OFF_DOMAIN = {"fer2013": ("ckplus",), "ferplus": ("ckplus",)}


def latency_ms(run: Path, faces: torch.Tensor, threads: int = 2, n: int = 200) -> float:
    """Median batch-1 CPU forward time (ms) of the checkpoint, preprocessing included.

    ``faces``: real uint8 faces ``(M, H, W, C)`` (the test split), fed one per call in turn.
    """
    model, meta = load_checkpoint(run)
    return cost_latency_ms(model, 0, 0, inputs=faces, preprocess=preprocessing_of(meta), threads=threads, runs=n,
                           warmup=20)


def metrics_markdown(side: dict) -> str:
    """The model card's metrics block (Markdown) from a shipped sidecar."""
    m = side["metrics"]
    t, single = m["test"], m["test_single"]
    lines = [
        "| metric | value |", "|---|---:|",
        f"| accuracy (h-flip TTA {'on' if t['tta_hflip'] else 'off'}) | {100 * t['accuracy']:.2f} % |",
        f"| accuracy, single pass | {100 * single['accuracy']:.2f} % |",
        f"| balanced accuracy | {100 * t['balanced_accuracy']:.2f} % |",
        f"| macro-F1 | {100 * t['f1_macro']:.2f} % |",
        f"| weighted F1 | {100 * t['f1_weighted']:.2f} % |",
        f"| weighted one-vs-rest AUC | {t['auc_weighted']:.3f} |",
        f"| ECE (15 bins) | {t['ece']:.3f} |",
        f"| CPU batch-1 latency (2 threads, preprocessing included) | {m['cpu_batch1_latency_ms_2threads']:.2f} ms |",
        "", "| class | recall | precision | F1 | support |", "|---|---:|---:|---:|---:|",
    ]
    for c, v in t["per_class"].items():
        lines.append(f"| {c} | {100 * v['recall']:.1f} % | {100 * v['precision']:.1f} % | "
                     f"{100 * v['f1']:.1f} % | {v['support']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run directory (its best.safetensors) or a .safetensors file")
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", default=None, help="the exact training command (stored in the sidecar; "
                    "default: the one the source sidecar already stores)")
    ap.add_argument("--calibrate", action="store_true", help="fit temperature, prior correction and TTA gate first")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    src = args.run / "best.safetensors" if args.run.is_dir() else args.run
    side = json.loads(src.with_suffix(".json").read_text())
    command = args.command or side.get("training_command")
    if not command:
        raise SystemExit(f"{src}: its sidecar stores no training command; pass --command")
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    dst = WEIGHTS / f"{args.name}.safetensors"
    if src.resolve() != dst.resolve():
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
        atomic_write_text(dst.with_suffix(".json"), json.dumps(side, indent=1))
    if args.calibrate:
        from ferbench.evaluate.checkpoint_calibration import calibrate_checkpoint

        runs_tta = bool((side.get("inference") or {}).get("tta_hflip"))
        cal = calibrate_checkpoint(dst, data_root=args.data_root, tta_gate="auto" if runs_tta else "off")
        print(f"calibrated on {cal['split']}: temperature {cal['temperature']:.3f}, prior tau {cal['prior_tau']:g}, "
              f"TTA gate {cal.get('tta_gate')}")
        side = json.loads(dst.with_suffix(".json").read_text())
    data, split = side["protocol"]["data"]["name"], side["protocol"]["data"]["test_split"]
    tta = bool(side["protocol"]["eval"]["tta_hflip"])
    test = evaluate_checkpoint(dst, data, split, args.data_root, tta_hflip=tta)
    single = evaluate_checkpoint(dst, data, split, args.data_root, tta_hflip=False)
    off = {d: evaluate_checkpoint(dst, d, "test", args.data_root, tta_hflip=tta) for d in OFF_DOMAIN.get(data, ())}
    for m in (test, *off.values()):  # a path relative to the package, not this machine's checkout
        m["checkpoint"] = f"ferbench/weights/{dst.name}"
    faces = load_dataset(data, args.data_root).split(split).images[:220]  # the latency's real inputs (N, H, W, C)
    side["metrics"] = {**side.get("metrics", {}), "test": test,
                       "test_single": {k: single[k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "n")},
                       **{f"{d}_test": m for d, m in off.items()},
                       "cpu_batch1_latency_ms_2threads": round(latency_ms(dst, faces), 3)}
    side["training_command"] = command
    side["licence"] = LICENCES.get(data, "see the training dataset's licence")
    atomic_write_text(dst.with_suffix(".json"), json.dumps(side, indent=1))
    print(f"shipped {dst} ({dst.stat().st_size / 2**20:.2f} MB): {split} accuracy {test['accuracy']:.4f} "
          f"(tta_hflip={tta}; single pass {single['accuracy']:.4f}), latency "
          f"{side['metrics']['cpu_batch1_latency_ms_2threads']} ms")
    print(metrics_markdown(side))
    from ferbench.deploy.export import export_model

    export_model(args.name, "onnx-int8", WEIGHTS / f"{args.name}.int8.onnx", data_root=args.data_root)


if __name__ == "__main__":
    main()
