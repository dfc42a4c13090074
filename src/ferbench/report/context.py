"""What a report needs besides the metrics: the config, wall time, machine and the papers' numbers.

Small functions returning Markdown lines, shared by the run report (:mod:`ferbench.report.runs`) and
the study report; :func:`markdown_to_html` renders either with the ``markdown`` package (tables,
fenced code, lists, images).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ferbench.persist import RunDir

HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;font-size:13px;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
    "th{background:#f3f3f3}td{text-align:right}td:first-child,td:nth-child(2){text-align:left}"
    "img{max-width:100%;display:block;margin:.4em 0}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;"
    "font-size:12px}code{font-size:90%}"
)


def markdown_to_html(md: str, title: str) -> str:
    """Markdown (pipe tables, fenced code, lists, images, headings) → a standalone HTML page.

    Rendered by the ``markdown`` package with its ``tables``, ``fenced_code`` and ``sane_lists``
    extensions; image paths stay relative, so the page opens from the report folder.
    """
    import markdown

    body = markdown.markdown(md, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{body}</body></html>\n")


def fmt_duration(seconds: float | None) -> str:
    """``414.2`` → ``"6 min 54 s"``; ``3725`` → ``"1 h 02 min"``; ``None`` → ``"–"``."""
    if seconds is None:
        return "–"
    s = int(round(float(seconds)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{seconds:.1f} s"


def machine_line(info: dict[str, Any] | None) -> str:
    """One sentence describing ``machine.json`` (see :func:`ferbench.device.machine_info`)."""
    if not info:
        return "not recorded (run trained before ferbench wrote `machine.json`)"
    parts = [f"{info.get('cpu', '?')} ({info.get('cpu_count', '?')} logical CPUs"
             + (f", {info['torch_threads']} torch threads" if info.get("torch_threads") else "") + ")"]
    if info.get("ram_gb"):
        parts.append(f"{info['ram_gb']} GB RAM")
    if info.get("device"):
        parts.append(f"device {info['device']}" + (f" ({info['gpu']})" if info.get("gpu") else ""))
    parts.append(f"{info.get('os', '?')}, Python {info.get('python', '?')}, torch {info.get('torch', '?')}, "
                 f"ferbench {info.get('ferbench', '?')}")
    return "; ".join(parts)


def config_lines(cfg_text: str, heading: str = "Config") -> list[str]:
    """A heading + the resolved YAML config as a fenced code block."""
    return ["", f"### {heading}", "", "```yaml", cfg_text.rstrip(), "```"]


def run_summary_lines(run_dir: Path, meta: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """Bullet list: model, data, epochs and why it stopped, wall time, throughput, machine."""
    last_path = RunDir(run_dir).last
    last = json.loads(last_path.read_text()) if last_path.exists() else {}
    mpath = run_dir / "machine.json"
    machine = json.loads(mpath.read_text()) if mpath.exists() else None
    ips = [h["images_per_s"] for h in history if h.get("images_per_s")]
    arch = meta.get("architecture", {})
    lines = [
        f"- model: `{arch.get('name')}`, trained on {meta.get('dataset')}; best epoch {meta.get('epoch')}"
        + (f" of {last['epoch']}" if last.get("epoch") else ""),
        f"- wall time (training + per-epoch validation): {fmt_duration(last.get('elapsed_s'))}"
        + (f"; stopped: {last['stopped']}" if last.get("stopped") else ""),
    ]
    if ips:
        lines.append(f"- training throughput: {sum(ips) / len(ips):.0f} images/s (mean over {len(ips)} epochs)")
    lines.append(f"- machine: {machine_line(machine)}")
    return lines


def _paper_numbers() -> Any:
    for mod in ("ferbench.report.study", "ferbench.sweep.report"):  # the study report's home (being moved)
        try:
            m = __import__(mod, fromlist=["PaperNumbers"])
            return m.PaperNumbers(m.seed_results_path()), m.PAPER_DATASETS
        except (ImportError, AttributeError):
            continue
    return None, {}


#: Seed papers by number (the first line of each ``../shared/seeds/NNN_*.txt``).
SEED_TITLES = {
    "000": "Benchmarking Deep Facial Expression Recognition: An Extensive Protocol with Balanced Dataset in the Wild",
    "001": "A comparative study of emotion recognition methods using facial expressions",
    "002": "Emotions Classification (Zekun Li)",
    "003": "Optimising Facial Expression Recognition: Comparing ResNet Architectures for Enhanced Performance",
    "004": "A comparative study of deep convolutional neural network-based facial expression regression",
}
_ACC_METRICS = ("test_accuracy", "accuracy", "accuracy_mean")


def published_lines(dataset: str, ours: float | None, ours_label: str) -> list[str]:
    """A table of the seed papers' accuracies on ``dataset`` with ours beside each (ours − theirs).

    Only accuracy rows (``test_accuracy`` / ``accuracy`` / ``accuracy_mean``) of ``seed_results.csv`` whose
    dataset is the same; the papers' models differ from ours, so this is context, not a same-cell match.
    """
    paper, names = _paper_numbers()
    ds = names.get(dataset.lower()) if names else None
    if paper is None or ds is None:
        return []
    rows = [r for r in paper.rows if r["metric"] in _ACC_METRICS and r["dataset"].split("(")[0] == ds]
    if not rows:
        return []
    out = ["", f"### Published {ds} accuracy (seed papers) beside ours", "",
           f"Ours: {ours_label}. The papers' models and splits are described in each paper; "
           "`seed_results.csv` is the source.", "",
           "| paper | table | model | input | their accuracy | ours | ours − theirs |",
           "|---|---|---|---|---|---|---|"]
    seen = set()
    for r in rows:
        key = (r["source_seed"], r["model"], r["resolution"])
        if key in seen:
            continue
        seen.add(key)
        v = float(r["value"])
        diff = "–" if ours is None else f"{100 * (ours - v):+.2f} pt"
        out.append(f"| seed {r['source_seed']} | {r['table']} | {r['model']} | {r['resolution']} | {v:.4f} | "
                   f"{'–' if ours is None else f'{ours:.4f}'} | {diff} |")
    used = sorted({r["source_seed"] for r in rows})
    out += ["", "Papers: " + "; ".join(f"seed {s} = *{SEED_TITLES[s]}*" for s in used if s in SEED_TITLES) + "."]
    return out


def _common(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Keys (nested) whose value is the same in every config; the varied ones are dropped."""
    first = configs[0]
    out: dict[str, Any] = {}
    for k, v in first.items():
        vals = [c.get(k) for c in configs]
        if isinstance(v, dict) and all(isinstance(x, dict) for x in vals):
            sub = _common(vals)  # type: ignore[arg-type]
            if sub:
                out[k] = sub
        elif all(x == v for x in vals):
            out[k] = v
    return out


def study_context_lines(records: list[dict[str, Any]]) -> list[str]:
    """Wall time, machine and the shared config of a study's finished trials (Markdown lines)."""
    import yaml

    if not records:
        return []
    train_s = [r["train_time_s"] for r in records if r.get("train_time_s") is not None]
    machines = []
    for r in records:  # the record's copy survives export/import to another machine; else the run folder's
        p = Path(r.get("run_dir") or "") / "machine.json"
        if r.get("machine"):
            machines.append(machine_line(r["machine"]))
        elif r.get("run_dir") and p.is_file():
            machines.append(machine_line(json.loads(p.read_text())))
    lines = ["", "## How it was run", "",
             f"- training wall time: {fmt_duration(sum(train_s))} summed over {len(train_s)} trials "
             f"(median {fmt_duration(sorted(train_s)[len(train_s) // 2]) if train_s else '–'} per trial)"]
    for m in sorted(set(machines)):
        lines.append(f"- machine ({machines.count(m)} trials): {m}")
    if not machines:
        lines.append(f"- machine: {machine_line(None)}")
    common = _common([r["config"] for r in records if isinstance(r.get("config"), dict)])
    if common:
        lines += config_lines(yaml.safe_dump(common, sort_keys=False), "Config shared by every trial "
                              "(the study's grid varies the rest; each trial's own config is in its run folder)")
    return lines
