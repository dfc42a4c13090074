"""Print the k-fold table of ``benchmarks/results/methods.md`` from finished ``ferbench kfold`` runs.

Reads every ``RUNS/*/summary.json`` (written by ``ferbench kfold``) and prints one Markdown row per run:
method, backbone, dataset, fold mode, epochs, mean ± std of accuracy, balanced accuracy, F1 = HM(wP, wR) and
weighted AUC, and seed 001 Table 2's accuracy / balanced accuracy for the same method and dataset
(``shared/docs/seed_results.csv``, rows with ``source_seed`` 001) where the paper has the cell.

Usage (from the repo root)::

    .venv/bin/python benchmarks/methods_table.py [--runs runs/methods] [--seed-results ../shared/docs/seed_results.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATASET = {"ckplus": "CK+", "ferplus": "FER+"}
PAPER_METHOD = {"esr": "ESR", "scn": "SCN", "dacl": "DACL"}
LABEL = {"esr": "ESR-4 (vote)", "scn": "SCN", "dacl": "DACL", "dan": "DAN (4 heads)"}
ORDER = {"esr": 0, "scn": 1, "dacl": 2, "dan": 3}


def paper_cells(path: Path) -> dict[tuple[str, str, str], float]:
    """``{(method, dataset, metric): value}`` for seed 001's rows of ``seed_results.csv``."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {(r["model"], r["dataset"], r["metric"]): float(r["value"])
                for r in csv.DictReader(f) if r["source_seed"] == "001"}


def input_of(run: Path) -> str:
    """``'96 px RGB'``-style input description from the first fold's resolved training config."""
    cfg_path = run / "fold0" / "run" / "config.yaml"
    if not cfg_path.exists():
        return "?"
    pre = (yaml.safe_load(cfg_path.read_text()) or {}).get("preprocessing", {})
    return f"{pre.get('size', '?')} px {'grey' if pre.get('channels') == 1 else 'RGB'}"


def row(summary: dict, paper: dict[tuple[str, str, str], float], inp: str = "?") -> str:
    """One Markdown table row for a k-fold ``summary.json``."""
    def ms(key: str) -> str:
        return f"{summary[key]['mean']:.3f} ± {summary[key]['std']:.3f}"

    method = summary.get("method") or summary["model"]
    pm, pd = PAPER_METHOD.get(method), PAPER_DATASET.get(summary["dataset"], summary["dataset"])
    pa = paper.get((pm, pd, "accuracy_mean")) if pm else None
    pb = paper.get((pm, pd, "balanced_accuracy_mean")) if pm else None
    ptxt = f"{pa:.3f} / {pb:.3f}" if pa is not None and pb is not None else "– (not in seed 001)"
    return (f"| {LABEL.get(method, method)} | {summary['model']} | {inp} | {pd} | {summary['mode']} | {summary['folds']} | "
            f"{summary['epochs']} | {ms('accuracy')} | {ms('balanced_accuracy')} | {ms('f1_hm')} | "
            f"{ms('auc_weighted')} | {ptxt} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "methods")
    ap.add_argument("--seed-results", type=Path, default=ROOT.parent / "shared" / "docs" / "seed_results.csv")
    args = ap.parse_args()
    paper = paper_cells(args.seed_results)
    summaries = [{**json.loads(p.read_text()), "_input": input_of(p.parent)}
                 for p in sorted(args.runs.glob("*/summary.json"))]
    if not summaries:
        raise SystemExit(f"error: no k-fold summary.json under {args.runs}")
    summaries.sort(key=lambda s: (s["dataset"], s["mode"] != "subject-independent",
                                  ORDER.get(s.get("method") or "", 9), s["epochs"]))
    print("| method | backbone | input | dataset | folds | k | epochs | accuracy | balanced acc. | F1 = HM(wP, wR) | "
          "AUC (weighted) | seed 001 Table 2, acc / bal. acc |")
    print("|---|---|---|---|---|---:|---:|---|---|---|---|---|")
    for s in summaries:
        print(row(s, paper, s["_input"]))


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
