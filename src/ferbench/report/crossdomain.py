"""Render a cross-domain matrix (:mod:`ferbench.sweep.crossdomain` results) as Markdown and a heat-map PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ferbench.data.taxonomy import CANONICAL
from ferbench.persist.atomic import atomic_write_bytes, atomic_write_text

MARK = {"in-domain": "**", "same-images": "_", "cross-domain": ""}


def matrix(results: dict[str, Any], metric: str) -> np.ndarray:
    """``(len(train_sets), len(test_sets))`` float of ``metric`` per cell (NaN where missing)."""
    rows, cols = results["train_sets"], results["test_sets"]
    out = np.full((len(rows), len(cols)), np.nan)
    for c in results["cells"]:
        if c["train"] in rows and c["test"] in cols:
            out[rows.index(c["train"]), cols.index(c["test"])] = c[metric]
    return out


def _cell(results: dict[str, Any], train: str, test: str) -> dict[str, Any] | None:
    return next((c for c in results["cells"] if c["train"] == train and c["test"] == test), None)


def _names(results: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Display names of rows (training sets) and columns (test dataset and split), from the cells."""
    rows: dict[str, str] = {}
    cols: dict[str, str] = {}
    for c in results["cells"]:
        rows.setdefault(c["train"], c["train_display"])
        cols.setdefault(c["test"], f"{c['test_display']} ({c['split']})")
    return ({r: rows.get(r, r) for r in results["train_sets"]},
            {t: cols.get(t, t) for t in results["test_sets"]})


def render_markdown(results: dict[str, Any], title: str = "Cross-domain matrix", note: str = "") -> str:
    """The matrix of balanced accuracy and of accuracy, the leave-one-out column, per-class recall per cell."""
    rows, cols = results["train_sets"], results["test_sets"]
    rname, cname = _names(results)
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    lines += [f"Model `{results.get('model')}`, config `{results.get('config')}`"
              + (f" with `{' '.join(results['overrides'])}`" if results.get("overrides") else "")
              + f", h-flip TTA {'on' if results.get('tta_hflip') else 'off'}. Rows: training set (checkpoint "
              "selected on its validation split); columns: the test split of each dataset, scored in the classes "
              "the model and the dataset share. **Bold**: in-domain (the test dataset was trained on; its test "
              "split is disjoint from training, subject-disjoint for CK+48); _italic_: same images, other labels "
              "(FER+ relabels FER2013); plain: cross-domain.", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    for metric, label in (("balanced_accuracy", "Balanced accuracy"), ("accuracy", "Accuracy")):
        lines += [f"## {label}", "", "| train \\ test | " + " | ".join(cname[t] for t in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for r in rows:
            vals = []
            for t in cols:
                c = _cell(results, r, t)
                if c is None:
                    vals.append("–")
                else:
                    m = MARK[c["kind"]]
                    vals.append(f"{m}{100 * c[metric]:.1f} %{m}")
            lines.append(f"| {rname[r]} | " + " | ".join(vals) + " |")
        lines.append("")
    refused = results.get("refused") or []
    if refused:
        lines += ["Not scored (–): " + "; ".join(f"{rname.get(c['train'], c['train'])} → {cname.get(c['test'], c['test'])}"
                                                 for c in refused)
                  + ": a split other than the test split of a dataset whose images the row trained on.", ""]
    if results.get("held_out"):
        lines += ["## Leave-one-dataset-out", "", "| held out | trained on | n | balanced accuracy | accuracy |",
                  "|---|---|---:|---:|---:|"]
        for held, tr in results["held_out"].items():
            c = _cell(results, tr, held)
            if c is not None:
                lines.append(f"| {cname[held]} | {rname[tr]} | {c['n']} | {100 * c['balanced_accuracy']:.1f} % | "
                             f"{100 * c['accuracy']:.1f} % |")
        lines.append("")
    present = [k for k in CANONICAL if any(k in c["per_class_recall"] for c in results["cells"])]
    lines += ["## Per-class recall", "", "| train | test | kind | n | " + " | ".join(present) + " |",
              "|---|---|---|---:|" + "---:|" * len(present)]
    for r in rows:
        for t in cols:
            c = _cell(results, r, t)
            if c is None:
                continue
            rec = [f"{100 * c['per_class_recall'][k]:.1f}" if k in c["per_class_recall"] else "–" for k in present]
            lines.append(f"| {rname[r]} | {cname[t]} | {c['kind']} | {c['n']} | " + " | ".join(rec) + " |")
    dropped = [(c["train"], c["test"], c["dropped_classes"], c["dropped_samples"]) for c in results["cells"]
               if c.get("dropped_classes")]
    if dropped:
        lines += ["", "Test classes the model cannot predict were left out of the cell: "
                  + "; ".join(f"{rname[a]} → {cname[b]}: {', '.join(d)} ({n} images)" for a, b, d, n in dropped)
                  + "."]
    runs = results.get("runs") or {}
    if runs:
        lines += ["", "## Training runs", "", "| training set | epochs run | best epoch | train wall (epochs) | run dir |",
                  "|---|---:|---:|---:|---|"]
        for r, info in runs.items():
            wall = info.get("train_wall_s")
            lines.append(f"| {rname.get(r, r)} | {info.get('epochs_run')} | {info.get('best_epoch')} | "
                         f"{'–' if wall is None else f'{wall / 60:.1f} min'} | `{info.get('run_dir')}` |")
    return "\n".join(lines) + "\n"


def heatmap_png(results: dict[str, Any], title: str = "") -> bytes:
    """Two heat maps (balanced accuracy, accuracy; rows train, columns test) as PNG bytes.

    In-domain cells are outlined in black, same-images cells dashed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows, cols = results["train_sets"], results["test_sets"]
    rname, cname = _names(results)
    w = 1.6 + 1.25 * len(cols)
    fig = Figure(figsize=(2 * w, 1.6 + 0.55 * len(rows) + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    im = None
    panels = (("balanced_accuracy", "balanced accuracy"), ("accuracy", "accuracy"))
    for k, (ax, (metric, label)) in enumerate(zip(axes, panels, strict=True)):
        m = matrix(results, metric)
        im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(cols)), [cname[t] for t in cols], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), [rname[r] for r in rows], fontsize=8)
        ax.set_xlabel("test", fontsize=8)
        if k == 0:
            ax.set_ylabel("train", fontsize=8)
        ax.set_title(label, fontsize=9)
        for i, r in enumerate(rows):
            for j, t in enumerate(cols):
                c = _cell(results, r, t)
                if c is None:
                    continue
                v = c[metric]
                ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if v > 0.6 else "white")
                if c["kind"] != "cross-domain":
                    ax.add_patch(Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, lw=1.5, edgecolor="black",
                                           linestyle="-" if c["kind"] == "in-domain" else "--"))
    if im is not None:
        fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02)
    fig.suptitle(title or f"{results.get('model')}: train × test (outlined: in-domain; dashed: same images)",
                 fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def write_report(results: dict[str, Any], out_dir: str | Path, note: str = "") -> dict[str, Path]:
    """Write ``crossdomain.md`` and ``crossdomain.png`` into ``out_dir`` (atomically); returns their paths."""
    out = Path(out_dir)
    md, png = out / "crossdomain.md", out / "crossdomain.png"
    atomic_write_text(md, render_markdown(results, note=note))
    atomic_write_bytes(png, heatmap_png(results))
    return {"md": md, "png": png, "json": out / "crossdomain.json"}
