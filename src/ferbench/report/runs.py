"""Report on training runs: a metrics table, confusion matrices and learning curves, as Markdown + HTML."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ferbench.errors import FerbenchError
from ferbench.persist import RunDir, read_sidecar
from ferbench.persist.atomic import atomic_write_text
from ferbench.report.plots import confusion_figure, learning_curves

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
            md.append(f"| {name} | {arch} | {r['meta'].get('dataset')} | {ev.get('dataset', '')}/{split} | {ev['n']} | "
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
    md += ["", "## Figures", ""]
    md += [f"![{cap}]({fn})" for cap, fn in figures]
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", markdown_to_html(text, "ferbench report"))
    return out / "report.md"


def markdown_to_html(md: str, title: str) -> str:
    """Minimal Markdown (headings, pipe tables, images, paragraphs) → standalone HTML."""
    body: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip("|").split("|")]
                if not all(set(c) <= set("-: ") for c in cells):
                    rows.append(cells)
                i += 1
            body.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if k == 0 else 'td'}>{html.escape(c)}</{'th' if k == 0 else 'td'}>"
                                 for c in row) + "</tr>" for k, row in enumerate(rows)) + "</table>")
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            cap, src = line[2:].split("](", 1)
            body.append(f'<figure><img src="{html.escape(src.rstrip(")"))}" alt="{html.escape(cap)}">'
                        f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
        i += 1
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
