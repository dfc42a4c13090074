"""Report on training runs: a metrics table, confusion matrices and learning curves, as Markdown + HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferbench.errors import FerbenchError
from ferbench.persist import RunDir, read_sidecar
from ferbench.persist.atomic import atomic_write_text
from ferbench.report.context import (
    config_lines,
    markdown_to_html,
    published_lines,
    run_summary_lines,
)
from ferbench.report.plots import confusion_figure, learning_curves

__all__ = ["load_run", "markdown_to_html", "write_report"]

COLUMNS = [("accuracy", "acc"), ("balanced_accuracy", "bal. acc"), ("precision_weighted", "wP"),
           ("recall_weighted", "wR"), ("f1_weighted", "wF1"), ("f1_macro", "macro F1"),
           ("auc_weighted", "AUC (w)"), ("auc_macro", "AUC (macro)"), ("ece", "ECE")]


def load_run(run_dir: Path) -> dict[str, Any]:
    """Sidecar, history and eval files of one run directory."""
    rd = RunDir(run_dir)
    if not rd.best.exists():
        raise FerbenchError(f"{rd.path}: not a ferbench run (no best.safetensors)")
    return {"dir": rd.path, "meta": read_sidecar(rd.best), "history": rd.read_metrics(), "evals": rd.read_evals()}


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write ``out/report.md`` and ``out/report.html`` (+ PNG figures) for the given runs."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(r) for r in run_dirs]
    md = ["# ferbench report", ""]
    md.append("| run | model | trained on | split | n | " + " | ".join(c[1] for c in COLUMNS) + " |")
    md.append("|" + "---|" * (5 + len(COLUMNS)))
    figures: list[tuple[str, str]] = []
    for r in runs:
        name = r["dir"].name
        arch = r["meta"]["architecture"]["name"]
        for split, ev in r["evals"].items():
            md.append(f"| {name} | {arch} | {r['meta'].get('dataset')} | {ev.get('dataset', '')}/{ev.get('split', split)} | {ev['n']} | "
                      + " | ".join(_fmt(ev.get(k)) for k, _ in COLUMNS) + " |")
            png = confusion_figure(ev["confusion_matrix_normalized"], ev["classes"], out / f"{name}_cm_{split}.png",
                                   title=f"{name} — {split} (row-normalised)")
            figures.append((f"{name}: confusion matrix, {split}", png.name))
        if r["history"]:
            png = learning_curves(r["history"], out / f"{name}_curves.png", title=name)
            figures.append((f"{name}: learning curves", png.name))
    md.append("")
    for r in runs:
        for split, ev in r["evals"].items():
            md += ["", f"## {r['dir'].name} — {split}: per class", "",
                   "| class | precision | recall | F1 | AUC | support |", "|---|---|---|---|---|---|"]
            for c, pc in ev["per_class"].items():
                md.append(f"| {c} | {_fmt(pc['precision'])} | {_fmt(pc['recall'])} | {_fmt(pc['f1'])} | "
                          f"{_fmt(pc['auc'])} | {pc['support']} |")
    for r in runs:
        md += ["", f"## {r['dir'].name}: how it was run", ""]
        md += run_summary_lines(r["dir"], r["meta"], r["history"])
        test_split = (r["meta"].get("protocol") or {}).get("data", {}).get("test_split")
        ev = r["evals"].get(test_split or "") or next(iter(r["evals"].values()), None)
        if ev is not None:
            md += published_lines(str(r["meta"].get("dataset") or ev.get("dataset", "")), ev.get("accuracy"),
                                  f"`{r['meta']['architecture']['name']}` on {ev.get('split') or test_split}, "
                                  f"n = {ev['n']}")
        cfg_path = r["dir"] / "config.yaml"
        if cfg_path.exists():
            md += config_lines(cfg_path.read_text(), f"Config ({cfg_path.name})")
    md += ["", "## Figures", ""]
    md += [f"![{cap}]({fn})" for cap, fn in figures]
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", markdown_to_html(text, "ferbench report"))
    return out / "report.md"
