"""Write the model-zoo cost table to ``benchmarks/results/models_cost.csv``.

Columns: name, family, paper, input_size (the model's default), params (at that size), params_224,
gflops_48, gflops_224 (FLOPs = 2 × multiply-adds, batch 1, counted on the meta device), latency_ms_48
(CPU, batch 1, 2 threads, median of 50 runs after 10 warm-up runs), notes (why a cell is empty).
A ``models_cost.meta.json`` beside it records the machine, versions and load average of the run —
latency on a shared machine is only comparable within one run.

Usage (from the repo root)::

    nice -n 10 .venv/bin/python benchmarks/models_cost.py [PATTERN] [--no-measure] [--out CSV]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from ferbench.cli.models import cost_rows
from ferbench.models.table import write_csv
from ferbench.persist.atomic import atomic_write_text

OUT = Path(__file__).resolve().parent / "results" / "models_cost.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pattern", nargs="?", default="*")
    ap.add_argument("--no-measure", action="store_true", help="skip the latency column")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load0, t0 = os.getloadavg(), time.time()
    rows = cost_rows(args.pattern, not args.no_measure, args.threads, args.runs)
    write_csv(rows, args.out)
    meta = {
        "rows": len(rows),
        "threads": args.threads,
        "runs": args.runs,
        "warmup": 10,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "seconds": round(time.time() - t0, 1),
        "date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
    }
    atomic_write_text(args.out.with_suffix(".meta.json"), json.dumps(meta, indent=2))
    atomic_write_text(args.out.with_suffix(".md"), markdown(args.out, meta))
    print(f"wrote {args.out} (+ .md, .meta.json; {len(rows)} models)")


def markdown(csv_path: Path, meta: dict) -> str:
    """The CSV as a Markdown table (sorted by params), for the README."""
    import csv

    rows = sorted(csv.DictReader(csv_path.open()), key=lambda r: int(r["params"] or 0))
    lines = ["| model | family | paper | params (M) | GFLOPs 48 px | GFLOPs 224 px | CPU batch-1 ms at 48 px |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lat = f"{float(r['latency_ms_48']):.2f}" if r["latency_ms_48"] else "–"
        g224 = r["gflops_224"] or "–"
        lines.append(f"| {r['name']} | {r['family']} | {r['paper'] or '–'} | {int(r['params']) / 1e6:.2f} | "
                     f"{r['gflops_48']} | {g224} | {lat} |")
    lines.append(f"\n{meta['threads']} threads, median of {meta['runs']} runs after {meta['warmup']} warm-up; "
                 f"load average {meta['loadavg_start'][0]:.1f} → {meta['loadavg_end'][0]:.1f}; {meta['date_utc']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
