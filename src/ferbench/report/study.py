"""The study report: ``write_study_report(results.db, out)`` → ``report.md`` + ``report.html`` + PNGs + CSV.

Sections (each only when the study has the data for it):

* ranking of every finished trial, with the paper's number for the same cell and the difference;
* seed-000-style tables: architecture × (resolution, balancing) validation accuracy per training dataset,
  and the same for cross-dataset accuracy;
* seed-001-style ``mean ± std`` tables over folds / seeds (with seed 001's numbers where they exist);
* seed-003-style per-class tables (precision / recall / F1 / AUC on the test split);
* a train-dataset × test-dataset accuracy matrix (own test split + every ``cross_eval`` dataset);
* figures: accuracy vs CPU latency with the Pareto front, accuracy vs parameters, a per-class recall
  heatmap, confusion matrices and learning curves;
* a ranking-derived recommendation (most accurate, best accuracy per millisecond, effect of class balancing
  and resolution, cross-domain gap), computed from the numbers above, never written by hand.

Paper numbers come from ``seed_results.csv`` (docs/protocol.md §9): ``$FERBENCH_SEED_RESULTS``, else
``../shared/docs/seed_results.csv`` next to the repository or the working directory, else the copy shipped
in :mod:`ferbench.report`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ferbench.errors import FerbenchError
from ferbench.persist.atomic import atomic_write_text
from ferbench.sweep.executors import live_status
from ferbench.sweep.study import trial_label

# ferbench registry name → the names seed 000's tables use for it (first found wins)
SEED000_NAMES: dict[str, tuple[str, ...]] = {
    "vgg16_in": ("VGG16 - IN", "VGG-16 - IN"), "vgg16_vf": ("VGG16 - VF", "VGG-16 - VF"),
    "vgg16_sc": ("VGG16 - SC", "VGG-16 - SC"), "vgg19": ("VGG19", "VGG-19"), "mobilenet": ("MobileNet",),
    "mobilenetv2": ("MobileNetV2",), "efficientnetv2_b0": ("EfficientNetV2B0", "EfficientNetV2_BO"),
    "nasnet_mobile": ("NasNet",), "resnet50": ("ResNet50",), "resnet50_in": ("ResNet50 - IN", "ResNet50"), "resnet50_vf": ("ResNet50 - VF",),
    "senet50_vf": ("SeNet50 - VF", "SeNet50"), "densenet121": ("DenseNet121",), "xception": ("Xception",),
    "inceptionv3": ("InceptionV3",), "alexnet": ("AlexNet *",), "ensemble3": ("Ensemble",),
    "seq3conv": ("Sequential 3Conv",), "seq4conv": ("Sequential 4Conv *", "Sequential 4 Conv"),
    "modular": ("Modular",), "repvgg_repo": ("RepVGG",), "seq_simple": ("Sequential Simple", "Sequential Simple *"),
    "smmb": ("SMMB",), "vggnet": ("VGGNet",), "lenet5": ("LeNet5 *",),
    "resnet18_dd": ("ResNet18 + Dropout + Dense", "ResNet18"),
    "mediapipe_vggnet": ("MediaPipe + VGGNet", "Mediapipe Feature Extraction + VGGNet"), "mnist_net": ("MNIST_NET",),
    "zf_net": ("ZF_NET",), "googlenet_repo": ("GoogLeNet",),
}
# Seed-000 cells whose notebooks trained something other than what the table names (docs/protocol.md §2.6, docs/protocol.md §2.11,
# docs/protocol.md §2.18): (name in seed 000's tables, balancing, dataset or None for all) → the ferbench network that produced the
# number, or None where the notebook trained on another dataset (no cell to compare). Every conservative "AlexNet"
# notebook holds the Modular network, every conservative "Conv4" one the 3Conv network, the conservative "VGG19"
# ones VGGFace's VGG16; the 48-px simple FER2013 SMMB notebook loads RAF-DB. Such a cell is compared with a trial
# of the network that produced it, never with one of the network it names.
SEED000_RAN_INSTEAD: dict[tuple[str, str, str | None], str | None] = {
    ("AlexNet *", "conservative", None): "modular", ("Sequential 4Conv *", "conservative", None): "seq3conv",
    ("VGG19", "conservative", None): "vgg16_vf", ("VGG-19", "conservative", None): "vgg16_vf",
    ("SMMB", "simple", "FER2013"): None}


def seed000_ran_instead(name: str, balancing: str, dataset: str) -> bool:
    """Whether seed 000's cell ``name`` (at ``balancing``, ``dataset``) came from a notebook that trained another
    network or dataset (:data:`SEED000_RAN_INSTEAD`)."""
    return (name, balancing, dataset) in SEED000_RAN_INSTEAD or (name, balancing, None) in SEED000_RAN_INSTEAD


SEED002_NAMES = {"shallow_cnn_s002": "Shallow CNN", "resnet18_s002": "ResNet-18", "resnet50_s002": "ResNet-50",
                 "inceptionv3_s002": "InceptionV3"}
SEED003_NAMES = {"resnet18_s003": "resnet18", "resnet34_s003": "resnet34", "resnet50_s003": "resnet50"}
SEED001_METHODS = {"esr": "ESR", "scn": "SCN", "dacl": "DACL"}
PAPER_DATASETS = {"fer2013": "FER2013", "ferplus": "FER+", "ckplus": "CK+", "ck+": "CK+", "rafdb": "RAF-DB",
                  "affectnet": "AffectNet-7"}
# seed-001 Table 2 metric names → ours
SEED001_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy",
                   "weighted_precision": "precision_weighted", "weighted_recall": "recall_weighted",
                   "f1_hm_of_weighted_pr": "f1_hm", "auc_roc_ovr_prevalence_weighted": "auc_weighted"}

MAX_CONFUSION_FIGS = 12


# -- paper numbers ------------------------------------------------------------------------------------------
def seed_results_path() -> Path | None:
    """Where ``seed_results.csv`` is (see the module docstring), or None."""
    repo = Path(__file__).resolve().parents[3]
    cands = [os.environ.get("FERBENCH_SEED_RESULTS"), repo.parent / "shared" / "docs" / "seed_results.csv",
             Path.cwd().parent / "shared" / "docs" / "seed_results.csv",
             Path(__file__).resolve().parents[1] / "report" / "seed_results.csv"]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    return None


class PaperNumbers:
    """Lookup of the seeds' published numbers by (seed, model, dataset, resolution, balancing, metric)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = []
        if path is not None:
            with open(path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def get(self, seed: str, model: str, metric: str, dataset: str | None = None, resolution: str | None = None,
            balancing: str | None = None, tables: Iterable[str] | None = None) -> float | None:
        tabs = set(tables) if tables else None
        for r in self.rows:
            if r["source_seed"] != seed or r["model"] != model or r["metric"] != metric:
                continue
            if dataset is not None and not r["dataset"].startswith(dataset):
                continue
            if resolution is not None and r["resolution"] != resolution:
                continue
            if balancing is not None and r["balancing"] != balancing:
                continue
            if tabs is not None and r["table"] not in tabs:
                continue
            try:
                return float(r["value"])
            except ValueError:
                return None
        return None

    def seed000_cells(self, model: str, dataset: str, size: int, balancing: str, metric: str = "val_accuracy"
                      ) -> list[tuple[str, float]]:
        """Seed 000's ``(table name, value)`` cells that network ``model`` produced at these settings.

        The cell named after ``model`` comes first, unless its notebooks ran another network
        (:data:`SEED000_RAN_INSTEAD`); then every cell named after another network that ``model``'s notebooks
        produced. ``dataset`` is seed 000's name (``"FER2013"``), ``balancing`` ``"simple"`` or ``"conservative"``.
        """
        res, tabs = f"{size}x{size}", ("2", "3")
        out: list[tuple[str, float]] = []
        for name in SEED000_NAMES.get(model, ()):
            if seed000_ran_instead(name, balancing, dataset):
                continue
            v = self.get("000", name, metric, dataset, res, balancing, tables=tabs)
            if v is not None:
                out.append((name, v))
                break
        for (name, bal, ds), net in SEED000_RAN_INSTEAD.items():
            if net == model and bal == balancing and ds in (None, dataset):
                v = self.get("000", name, metric, dataset, res, balancing, tables=tabs)
                if v is not None:
                    out.append((name, v))
        return out

    def for_record(self, rec: dict[str, Any]) -> tuple[float | None, str, str]:
        """``(paper value, which of our numbers it compares to: "val"|"test", source label)`` for a trial.

        Seed 000: the first of :meth:`seed000_cells` (the other cells a network produced are in the report's
        cell table); a trial whose named cell came from another network's notebooks gets none.
        """
        cfg = rec["config"]
        model, size = cfg["model"]["name"], int(cfg["preprocessing"]["size"])
        ds = PAPER_DATASETS.get(cfg["data"]["name"].lower())
        if ds is None:
            return None, "", ""
        bal = cfg["train"]["class_weights"]
        if model in SEED000_NAMES and bal in ("simple", "conservative"):
            cells = self.seed000_cells(model, ds, size, bal)
            if cells:
                return cells[0][1], "val", f"S0 T{2 if size == 48 else 3} {cells[0][0]}"
        if ds == "FER2013":
            name = SEED002_NAMES.get(model)
            if model == "vgg16_s002":
                name = "VGG16-ImageNet" if cfg["model"].get("init") == "imagenet" else "VGG16-Not Pretrained"
            if name:
                v = self.get("002", name, "test_accuracy", "FER2013", tables=("2",))
                if v is not None:
                    return v, "test", f"S2 T2 {name} (test = 7 178 imgs)"
            if model in SEED003_NAMES:
                v = self.get("003", SEED003_NAMES[model], "accuracy", "FER2013")
                if v is not None:
                    return v, "test", f"S3 T1 {SEED003_NAMES[model]} (test = 7 178 imgs)"
        return None, "", ""


# -- records → rows -------------------------------------------------------------------------------------------
def arch_label(rec: dict[str, Any]) -> str:
    """Architecture as the tables name it: model (+ init when not scratch) (+ method)."""
    cfg = rec["config"]
    s = cfg["model"]["name"]
    if (cfg["model"].get("init") or "scratch") != "scratch":
        s += f" [{cfg['model']['init']}]"
    meth = (cfg.get("method") or {}).get("name")
    if meth:
        s = f"{meth}({s})"
    return s


def _fold(rec: dict[str, Any]) -> int | None:
    ix = rec["config"]["data"].get("indices")
    return ix.get("fold") if isinstance(ix, dict) else None


def replicate_group(rec: dict[str, Any]) -> str:
    """Hash of the trial's config without seed, fold and data root: trials sharing it are replicates."""
    import copy

    from ferbench.config import config_hash

    cfg = copy.deepcopy(rec["config"])
    cfg["seed"], cfg["data"]["root"] = None, None
    ix = cfg["data"].get("indices")
    if isinstance(ix, dict) and "fold" in ix:
        cfg["data"]["indices"] = {**ix, "fold": None}
    return config_hash(cfg)


def _headline(rec: dict[str, Any]) -> float | None:
    """The number trials are ranked by: test accuracy, else validation accuracy."""
    return rec.get("test_accuracy") if rec.get("test_accuracy") is not None else rec.get("val_accuracy")


def _f(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _signed(v: float) -> str:
    return f"{v:+.3f}"


def _params(v: Any) -> str:
    return "–" if v is None else f"{v / 1e6:.2f}M"


def _with_paper(ours: float | None, paper: float | None) -> str:
    if ours is None:
        return "–"
    if paper is None:
        return f"{ours:.3f}"
    return f"{ours:.3f} ({paper:.2f}, {_signed(ours - paper)})"


def _train_device(rec: dict[str, Any]) -> str:
    """``"cpu"``, or the GPU a trial trained on (its record's ``machine``: name, else the torch device)."""
    m = rec.get("machine") or {}
    dev = str(m.get("device") or "cpu")
    return "cpu" if dev == "cpu" else str(m.get("gpu") or dev)


def _hours_cell(r: dict[str, Any]) -> str:
    """The ranking's training-time cell: CPU hours, or wall hours on a GPU marked as such."""
    return _f(r.get("cpu_hours"), 2) if r.get("gpu_hours") is None else f"{r['gpu_hours']:.2f} GPU"


#: late gain (accuracy units) from which a curve counts as still rising when its schedule ended: one point
RISING_FROM = 0.01


def late_gain(history: list[dict[str, Any]] | None, fraction: float = 0.2) -> float | None:
    """How much the best validation accuracy rose during the last ``fraction`` of a run's epochs.

    ``history``: the record's per-epoch dicts (``val_accuracy`` each). Returns ``best(all) − best(before the
    last ⌈fraction·n⌉ epochs)`` in accuracy units (≥ 0): about 0 for a curve that had levelled off when the
    schedule ended, ≥ 0.01 (one point) for one still rising; ``None`` without a history of ≥ 5 epochs. Rounded
    to 0.001 (a tenth of a point, as the report prints it), so a printed "+1.0" is never counted as levelled.
    """
    va = [h.get("val_accuracy") for h in history or []]
    if len(va) < 5 or any(v is None for v in va):
        return None
    k = max(1, math.ceil(fraction * len(va)))
    return round(float(max(va) - max(va[:-k])), 3)


def pooled_accuracy(rec: dict[str, Any]) -> float | None:
    """Accuracy of the trial's checkpoint on its validation and test splits together (count-weighted), or None.

    For FER2013 (PublicTest + PrivateTest) this is the 7 178-image Kaggle test folder, the split seed 000
    reports as "validation accuracy" and seeds 002/003 as test accuracy (docs/protocol.md §1.1).
    """
    evals = rec.get("evals") or {}
    parts = [evals.get(rec.get("val_split") or ""), evals.get(rec.get("test_split") or "")]
    if any(not p or p.get("n") is None or p.get("accuracy") is None for p in parts):
        return None
    n = sum(int(p["n"]) for p in parts)
    return sum(float(p["accuracy"]) * int(p["n"]) for p in parts) / n if n else None


def results_rows(records: list[dict[str, Any]], paper: PaperNumbers) -> list[dict[str, Any]]:
    """One flat row per trial (what ``results.csv`` holds)."""
    rows = []
    for rec in records:
        cfg = rec["config"]
        pv, against, src = paper.for_record(rec)
        test = (rec.get("evals") or {}).get(rec.get("test_split") or "", {})
        device, hours = _train_device(rec), (rec.get("train_time_s") or 0) / 3600
        threads = rec.get("threads") or cfg["train"].get("threads") or 1
        row: dict[str, Any] = {
            "key": rec["key"], "study": rec["study"], "architecture": arch_label(rec), "model": cfg["model"]["name"],
            "init": cfg["model"].get("init"), "method": (cfg.get("method") or {}).get("name"),
            "dataset": cfg["data"]["name"], "size": cfg["preprocessing"]["size"],
            "channels": cfg["preprocessing"]["channels"], "balancing": cfg["train"]["class_weights"],
            "seed": cfg.get("seed"), "fold": _fold(rec), "group": replicate_group(rec), "epochs": rec.get("epochs"), "best_epoch": rec.get("best_epoch"),
            "val_late_gain": late_gain(rec.get("history")),
            "train_time_s": rec.get("train_time_s"), "params": rec.get("params_count"), "gflops": rec.get("gflops"),
            "threads": threads,
            "train_device": device,
            "cpu_hours": hours * threads if hours and device == "cpu" else None,
            "gpu_hours": hours if hours and device != "cpu" else None,
            "latency_ms": rec.get("latency_ms"), "val_accuracy": rec.get("val_accuracy"),
            "val_test_accuracy": pooled_accuracy(rec),
            "test_accuracy": rec.get("test_accuracy"), "test_balanced_accuracy": rec.get("test_balanced_accuracy"),
            "test_f1_macro": rec.get("test_f1_macro"), "test_precision_weighted": test.get("precision_weighted"),
            "test_recall_weighted": test.get("recall_weighted"), "test_f1_hm": test.get("f1_hm"),
            "test_auc_weighted": test.get("auc_weighted"), "test_auc_macro": test.get("auc_macro"),
            "test_ece": test.get("ece"), "paper_value": pv, "paper_compares": against, "paper_source": src,
        }
        row["paper_diff"] = None
        if pv is not None:
            ours = row["val_accuracy"] if against == "val" else row["test_accuracy"]
            row["paper_diff"] = None if ours is None else ours - pv
        for ce in rec.get("cross") or []:
            row[f"cross_{ce['dataset']}_{ce['split']}_accuracy"] = ce.get("accuracy")
        for c, pc in (test.get("per_class") or {}).items():
            row[f"recall[{c}]"] = pc.get("recall")
        rows.append(row)
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (lower cost, higher accuracy); ``points`` = (cost, accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


# -- figures ----------------------------------------------------------------------------------------------
def _plt():
    """The figure helpers of :mod:`ferbench.report.plots` (``Figure`` objects, no pyplot global state)."""
    from types import SimpleNamespace

    from ferbench.report.plots import subplots

    return SimpleNamespace(subplots=subplots, close=lambda fig: None)


BALANCING_COLOURS = {"none": "#1f77b4", "simple": "#ff7f0e", "conservative": "#2ca02c"}


def _scatter(rows: list[dict[str, Any]], xkey: str, xlabel: str, out: Path, front: bool) -> Path | None:
    """Accuracy against a cost (log x), coloured by balancing, one label per architecture; optional Pareto front."""
    pts = [(r[xkey], _acc(r), r) for r in rows if r.get(xkey) and _acc(r) is not None]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes = {r["size"] for _, _, r in pts}
    labelled: set[str] = set()
    for k, (x, y, r) in enumerate(sorted(pts, key=lambda p: p[0])):
        ax.scatter(x, y, s=32, c=BALANCING_COLOURS.get(r["balancing"], "#7f7f7f"), zorder=3)
        name = r["architecture"] + (f" {r['size']}px" if len(sizes) > 1 else "")
        if name not in labelled:
            labelled.add(name)
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4 if k % 2 == 0 else -10), textcoords="offset points")
    if front:
        idx = pareto_front([(p[0], p[1]) for p in pts])
        ax.plot([pts[i][0] for i in idx], [pts[i][1] for i in idx], "r--", lw=1, marker="o", mfc="none", ms=11,
                label="Pareto front", zorder=2)
    for bal, colour in BALANCING_COLOURS.items():
        if any(r["balancing"] == bal for _, _, r in pts):
            ax.scatter([], [], c=colour, s=32, label=f"class weights: {bal}")
    ax.legend(fontsize=7, loc="best")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_acc_name(rows))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _acc(r: dict[str, Any]) -> float | None:
    return r["test_accuracy"] if r.get("test_accuracy") is not None else r.get("val_accuracy")


def _acc_name(rows: list[dict[str, Any]]) -> str:
    return "test accuracy" if any(r.get("test_accuracy") is not None for r in rows) else "validation accuracy"


def _class_order(rec: dict[str, Any], per_class: dict[str, Any]) -> list[str]:
    """The classes of a per-class dict in the model's order (records exported to JSONL have their keys sorted)."""
    known = [c for c in rec.get("classes") or [] if c in per_class]
    return known + [c for c in per_class if c not in known]


def recall_matrix(records: list[dict[str, Any]]) -> tuple[list[str], np.ndarray, list[str]]:
    """Per-class test recall of the trials sharing the first trial's classes → ``(row labels, (R, K), classes)``."""
    labels, mat, classes = [], [], None
    for rec in records:
        test = (rec.get("evals") or {}).get(rec.get("test_split") or "")
        if not test:
            continue
        classes = classes or _class_order(rec, test["per_class"])
        if set(test["per_class"]) != set(classes):  # another taxonomy: not one row of this heat-map
            continue
        labels.append(f"{arch_label(rec)} ({rec['config']['train']['class_weights']})")
        mat.append([test["per_class"][c]["recall"] for c in classes])
    return labels, np.asarray(mat, np.float64).reshape(len(mat), len(classes or [])), classes or []


def _recall_heatmap(records: list[dict[str, Any]], out: Path) -> Path | None:
    labels, m, classes = recall_matrix(records)
    if not len(m):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * m.shape[1], 1 + 0.32 * m.shape[0]))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if m[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title("per-class recall on the test split", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _curves(records: list[dict[str, Any]], out: Path) -> Path | None:
    recs = [r for r in records if r.get("history")]
    if not recs:
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for rec in recs:
        h = rec["history"]
        lab = f"{arch_label(rec)} ({rec['config']['train']['class_weights']})"
        ep = [x["epoch"] for x in h]
        a.plot(ep, [x["val_loss"] for x in h], marker=".", label=lab)
        b.plot(ep, [x["val_accuracy"] for x in h], marker=".", label=lab)
    a.set_xlabel("epoch")
    a.set_ylabel("validation loss")
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy")
    b.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# -- tables -----------------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                           for r in rows]


def _seed000_tables(rows: list[dict[str, Any]], paper: PaperNumbers) -> list[str]:
    """Architecture × (resolution, balancing) per training dataset; paper value and Δ in brackets."""
    md: list[str] = []
    for ds in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == ds and r["fold"] is None]
        if not sub:
            continue
        order = {"none": 0, "simple": 1, "conservative": 2}
        cols = sorted({(r["size"], r["balancing"]) for r in sub}, key=lambda c: (c[0], order.get(c[1], 3), c[1]))
        archs = list(dict.fromkeys(r["architecture"] for r in sorted(sub, key=lambda r: -(_acc(r) or 0))))
        cross_keys = sorted({k for r in sub for k in r if k.startswith("cross_")})
        for title, metric in [("validation accuracy", "val_accuracy"), ("test accuracy", "test_accuracy")] + [
                (f"cross-dataset accuracy on {k[6:-9]}", k) for k in cross_keys]:
            body = []
            for a in archs:
                cells = []
                for size, bal in cols:
                    vals = [r.get(metric) for r in sub if r["architecture"] == a and r["size"] == size
                            and r["balancing"] == bal and r.get(metric) is not None]
                    ours = float(np.mean(vals)) if vals else None
                    pv = None
                    model = a.split(" [")[0]
                    pds = PAPER_DATASETS.get(ds.lower())
                    pmetric = {"val_accuracy": "val_accuracy"}.get(metric, "btfer_accuracy" if metric.startswith(
                        "cross_") else None)
                    if pmetric and model in SEED000_NAMES and pds:
                        found = paper.seed000_cells(model, pds, size, bal, pmetric)
                        pv = found[0][1] if found else None
                    cells.append(_with_paper(ours, pv))
                if any(c != "–" for c in cells):
                    body.append([a, *cells])
            if body:
                note = {"val_accuracy": " — ours (paper, ours − paper)", "test_accuracy": ""}.get(
                    metric, " — ours (seed 000's BTFER accuracy, ours − BTFER: a different cross-domain test set)")
                md += ["", f"**{ds}: {title}**{note}", ""]
                md += _md_table(["architecture", *[f"{s}px, {b}" for s, b in cols]], body)
    return md


def _plain_trial(r: dict[str, Any]) -> bool:
    """A report row trained outside k-fold and FER methods: the kind of trial a seed-000 cell is compared with."""
    return r["fold"] is None and not r.get("method")


def seed000_cell_rows(rows: list[dict[str, Any]], paper: PaperNumbers) -> list[dict[str, Any]]:
    """Seed 000's validation-accuracy cells that this study reproduces, one dict per cell.

    A cell is matched with the trials of the network that produced it (:meth:`PaperNumbers.seed000_cells`,
    so a cell whose notebooks ran another network is matched with that network) at the same dataset,
    resolution and balancing, outside k-fold and FER methods; where those trials differ in more than their seed
    (say, two epoch budgets), the configuration that trained the most epochs is taken, the one nearest
    convergence. ``ours`` is the mean validation accuracy of its trials (replicates).
    Keys: ``cell``, ``balancing``, ``dataset``, ``size``, ``paper``, ``network``, ``ours``, ``diff``
    (ours − paper), ``ours_pooled`` / ``diff_pooled`` (the same on the validation + test splits together, seed
    000's own evaluation split for FER2013; None for other datasets or unless every matched trial has it), ``trials``, ``late_gain``
    (the largest of the trials' :func:`late_gain`, or None), ``ran_instead`` (the cell is named after another
    network).
    """
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if not _plain_trial(r) or r["balancing"] not in ("simple", "conservative"):
            continue
        if r.get("val_accuracy") is not None:
            groups[(r["model"], r["dataset"], int(r["size"]), r["balancing"])].append(r)
    out = []
    for (model, ds, size, bal), found in sorted(groups.items()):
        pds = PAPER_DATASETS.get(ds.lower())
        if pds is None:
            continue
        configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in found:
            configs[str(r.get("group"))].append(r)
        members = max(configs.values(), key=lambda g: max(int(r.get("epochs") or 0) for r in g))
        ours = float(np.mean([float(r["val_accuracy"]) for r in members]))
        pooled_vals = [r.get("val_test_accuracy") for r in members]  # seed 000's split on FER2013 only
        pooled = (float(np.mean(pooled_vals)) if pds == "FER2013" and all(v is not None for v in pooled_vals)
                  else None)
        for name, pv in paper.seed000_cells(model, pds, size, bal):
            out.append({"cell": name, "balancing": bal, "dataset": ds, "size": size, "paper": pv, "network": model,
                        "ours": ours, "diff": ours - pv, "ours_pooled": pooled,
                        "diff_pooled": None if pooled is None else pooled - pv, "trials": len(members),
                        "late_gain": max((r["val_late_gain"] for r in members if r.get("val_late_gain") is not None),
                                         default=None),
                        "ran_instead": seed000_ran_instead(name, bal, pds)})
    return sorted(out, key=lambda c: abs(c["diff_pooled"] if c["diff_pooled"] is not None else c["diff"]))


def levelled_networks(cells: list[dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(networks, still_rising)``: the networks behind ``cells`` (:func:`seed000_cell_rows`), sorted, and those
    of them without one trial whose curve had levelled off (:func:`late_gain` < :data:`RISING_FROM`) at any class
    weighting, on the cells' datasets and resolutions, outside k-fold and FER methods."""
    settings = {(c["network"], c["dataset"], c["size"]) for c in cells}
    levelled = {r["model"] for r in rows
                if (r["model"], r["dataset"], int(r["size"])) in settings and _plain_trial(r)
                and r.get("val_late_gain") is not None and r["val_late_gain"] < RISING_FROM}
    nets = sorted({n for n, _, _ in settings})
    return nets, [n for n in nets if n not in levelled]


def _seed000_cells_section(rows: list[dict[str, Any]], paper: PaperNumbers) -> list[str]:
    cells = seed000_cell_rows(rows, paper)
    if not cells:
        return []
    pooled = all(c["diff_pooled"] is not None for c in cells)
    body = []
    for c in cells:
        mean = f" (mean of {c['trials']})" if c["trials"] > 1 else ""
        row = [c["cell"] + (f" (its notebooks ran {c['network']})" if c["ran_instead"] else ""),
               f"{c['dataset']}, {c['size']} px, {c['balancing']}", f"{c['paper']:.3f}", c["network"]]
        if pooled:
            row += [_f(c["ours_pooled"]) + mean, _signed(c["diff_pooled"])]
        body.append(row + [_f(c["ours"]) + mean, _signed(c["diff"]),
                           "–" if c["late_gain"] is None else f"{100 * c['late_gain']:+.1f}"])

    def summary(key: str) -> str:
        d = [abs(c[key]) for c in cells]
        return (f"median |Δ| **{100 * float(np.median(d)):.2f} points**, {sum(v <= 0.02 for v in d)} of {len(d)} "
                "within 2 points")

    head = ["seed 000 cell", "setting", "paper", "network trained here"]
    if pooled:
        head += ["ours (val + test)", "Δ"]
    lines = (["", "## Seed 000's cells", "",
              "Every seed-000 validation-accuracy cell this study has a trial for, matched with the network its "
              "notebooks trained (docs/protocol.md §2.6, docs/protocol.md §2.11, docs/protocol.md §2.18: e.g. the "
              "conservative \"AlexNet\" and \"Sequential 4Conv\" cells came from the Modular and Sequential 3Conv "
              "networks), closest first. On FER2013, seed 000's \"validation\" split is the 7 178-image Kaggle test folder "
              "(docs/protocol.md §1.1) = our validation + test splits together (PublicTest + PrivateTest): *ours (val "
              "+ test)* is the checkpoint chosen on PublicTest scored on both; *ours (val)* is PublicTest alone, the "
              "split that chose the checkpoint (as the ranking's Δ). Where a network has trials at several budgets, its "
              "cell takes the one that trained the most epochs.", ""]
             + _md_table(head + ["ours (val)", "Δ (val)", "late gain"], body) + [""])
    if pooled:
        lines.append(f"Over these {len(cells)} cells, on seed 000's split (val + test): {summary('diff_pooled')}; "
                     f"on PublicTest alone: {summary('diff')}.")
    else:
        lines.append(f"Over these {len(cells)} cells (PublicTest): {summary('diff')}.")
    gains = [c["late_gain"] for c in cells if c["late_gain"] is not None]
    if gains:
        lines += ["", f"Trials whose curve had levelled off (late gain < 1 point, the ranking's column; the largest "
                     f"of a cell's trials): {sum(g < RISING_FROM for g in gains)} of {len(gains)} cells."]
    nets, rising = levelled_networks(cells, rows)
    lines += ["", f"Networks behind these cells: {len(nets)}; with at least one trial, at any class weighting, whose "
                  f"curve had levelled off: {len(nets) - len(rising)}"
                  + (f" (rising in every trial: {', '.join(rising)})" if rising else "") + "."]
    return lines


def _mean_std_tables(rows: list[dict[str, Any]], paper: PaperNumbers) -> list[str]:
    """Seed-001 style: groups of trials differing only in fold / seed → mean ± std of the test metrics."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return []
    metrics = [("test_accuracy", "accuracy"), ("test_balanced_accuracy", "balanced_accuracy"),
               ("test_precision_weighted", "weighted_precision"), ("test_recall_weighted", "weighted_recall"),
               ("test_f1_hm", "f1_hm_of_weighted_pr"), ("test_auc_weighted", "auc_roc_ovr_prevalence_weighted")]
    body = []
    for grp in groups.values():
        g0 = grp[0]
        arch, method, ds, size, bal = g0["architecture"], g0["method"], g0["dataset"], g0["size"], g0["balancing"]
        cells = []
        for col, pname in metrics:
            vals = [g[col] for g in grp if g.get(col) is not None]
            if not vals:
                cells.append("–")
                continue
            s = f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"
            pm = SEED001_METHODS.get(method or "")
            pds = PAPER_DATASETS.get(ds.lower())
            if pm and pds:
                pmean = paper.get("001", pm, f"{pname}_mean", pds)
                pstd = paper.get("001", pm, f"{pname}_std", pds)
                if pmean is not None:
                    s += f" ({pmean:.3f} ± {pstd or 0:.3f}, {_signed(float(np.mean(vals)) - pmean)})"
            cells.append(s)
        body.append([arch, ds, f"{size}px", bal, str(len(grp)), *cells])
    md = ["", "Mean ± std (population std) over the trials that differ only in fold or seed; seed 001's "
          "number (mean ± std, ours − paper) in brackets where it has one.", ""]
    return md + _md_table(["architecture", "dataset", "size", "balancing", "n", "accuracy", "balanced acc",
                           "weighted P", "weighted R", "F1 (HM of wP, wR)", "AUC (weighted)"], body)


def _per_class_tables(records: list[dict[str, Any]], paper: PaperNumbers) -> list[str]:
    """Seed-003 style per-class table for each of the best few trials; seed 003's per-class means beside."""
    md: list[str] = []
    ranked = sorted(records, key=lambda r: -(_headline(r) or 0))[:4]
    for rec in ranked:
        test = (rec.get("evals") or {}).get(rec.get("test_split") or "")
        if not test:
            continue
        s003 = rec["config"]["model"]["name"] in SEED003_NAMES
        body = []
        for c in _class_order(rec, test["per_class"]):
            pc = test["per_class"][c]
            row = [c] + [_f(pc.get(k), 3) for k in ("precision", "recall", "f1", "auc")] + [str(pc.get("support"))]
            if s003:
                row += [_f(paper.get("003", "mean(resnet18,resnet34,resnet50)", f"{k}[{c}]", "FER2013"), 3)
                        for k in ("precision", "recall", "f1", "auc_ovr")]
            body.append(row)
        header = ["class", "precision", "recall", "F1", "AUC", "support"]
        if s003:
            header += ["S3 P", "S3 R", "S3 F1", "S3 AUC"]
        md += ["", f"**{arch_label(rec)} ({rec['config']['train']['class_weights']}, "
                   f"{rec['config']['preprocessing']['size']}px) on {rec['config']['data']['name']}/"
                   f"{rec.get('test_split')}** (n = {test['n']}; accuracy {test['accuracy']:.4f}, macro AUC "
                   f"{_f(test.get('auc_macro'), 3)})", ""]
        md += _md_table(header, body)
    return md


def _matrix(records: list[dict[str, Any]]) -> list[str]:
    """Train dataset × test dataset accuracy: best trial (and mean over trials) per cell."""
    cells: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for rec in records:
        tr = rec["config"]["data"]["name"]
        if rec.get("test_accuracy") is not None:
            cells[(tr, f"{tr} ({rec.get('test_split')})")].append((rec["test_accuracy"], arch_label(rec)))
        for ce in rec.get("cross") or []:
            cells[(tr, f"{ce['dataset']} ({ce['split']})")].append((ce["accuracy"], arch_label(rec)))
    if not cells:
        return []
    trains = sorted({k[0] for k in cells})
    tests = sorted({k[1] for k in cells})
    body = []
    for tr in trains:
        row = [tr]
        for te in tests:
            v = cells.get((tr, te))
            row.append("–" if not v else f"{max(v)[0]:.3f} ({max(v)[1]}); mean {np.mean([x[0] for x in v]):.3f}")
        body.append(row)
    md = ["", "Rows: training set; columns: test set (cross-dataset cells score only the classes both share). "
          "Cell: best trial (its architecture); mean over all trials of that row.", ""]
    return md + _md_table(["trained on \\ tested on", *tests], body)


def _recommendation(rows: list[dict[str, Any]]) -> list[str]:
    """Findings computed from the numbers: best model, accuracy/latency trade-off, balancing, resolution."""
    ranked = [r for r in rows if _acc(r) is not None]
    if not ranked:
        return []
    ranked.sort(key=lambda r: -_acc(r))
    best = ranked[0]
    name = _acc_name(rows)
    out = [f"- **Most accurate**: {best['architecture']} ({best['balancing']} balancing, {best['size']} px) with "
           f"{name} {_acc(best):.4f}, balanced accuracy {_f(best.get('test_balanced_accuracy'), 4)}, "
           f"{_params(best.get('params'))} parameters, {_f(best.get('latency_ms'), 2)} ms per image on the CPU."]
    timed = [r for r in ranked if r.get("latency_ms")]
    if timed:
        idx = pareto_front([(r["latency_ms"], _acc(r)) for r in timed])
        front = [timed[i] for i in idx]
        out.append("- **Pareto front** (no other trial is both faster and more accurate): " + ", ".join(
            f"{r['architecture']} ({r['balancing']}; {_acc(r):.3f} @ {r['latency_ms']:.2f} ms)" for r in front) + ".")
        near = [r for r in timed if _acc(r) >= _acc(best) - 0.01]
        fast = min(near, key=lambda r: r["latency_ms"])
        if fast["architecture"] != best["architecture"]:
            out.append(f"- **Deployment pick**: {fast['architecture']} ({fast['balancing']}) is within 1 point of "
                       f"the best ({_acc(fast):.3f} vs {_acc(best):.3f}) at {fast['latency_ms']:.2f} ms instead "
                       f"of {best.get('latency_ms') or 0:.2f} ms.")
        else:
            out.append(f"- **Deployment pick**: {best['architecture']} is also the fastest trial within 1 point of "
                       "the best accuracy.")
    by_arch: dict[tuple[str, Any, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_arch[(r["architecture"], r["size"], r["dataset"])][r["balancing"]] = r
    for scheme in ("simple", "conservative"):
        d_acc, d_bal = [], []
        for v in by_arch.values():
            if "none" in v and scheme in v and _acc(v["none"]) is not None and _acc(v[scheme]) is not None:
                d_acc.append(_acc(v[scheme]) - _acc(v["none"]))
                a, b = v[scheme].get("test_balanced_accuracy"), v["none"].get("test_balanced_accuracy")
                if a is not None and b is not None:
                    d_bal.append(a - b)
        if d_acc:
            more = sum(x > 0 for x in d_bal)
            out.append(f"- **{scheme.capitalize()} class weights vs none** ({len(d_acc)} architecture(s)): "
                       f"accuracy {_signed(float(np.mean(d_acc)))} on average; balanced accuracy "
                       f"{_signed(float(np.mean(d_bal))) if d_bal else '–'} (higher for {more} of {len(d_bal)}).")
    by_size: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        if _acc(r) is not None:
            by_size[(r["architecture"], r["balancing"], r["dataset"])][int(r["size"])] = _acc(r)
    pairs = [(v[min(v)], v[max(v)]) for v in by_size.values() if len(v) > 1]
    if pairs:
        d = float(np.mean([b - a for a, b in pairs]))
        out.append(f"- **Resolution**: the larger input changed accuracy by {_signed(d)} on average over "
                   f"{len(pairs)} architecture(s).")
    gaps = []
    for r in rows:
        for k, v in r.items():
            if k.startswith("cross_") and v is not None and _acc(r) is not None:
                gaps.append(_acc(r) - v)
    if gaps:
        out.append(f"- **Cross-domain gap**: in-domain minus cross-dataset accuracy is {np.mean(gaps):.3f} on "
                   f"average (seed 000 found its BTFER set 0.15–0.25 below validation).")
    small = [r for r in ranked if r.get("params") and r["params"] < 1e6]
    if small and small[0]["architecture"] != best["architecture"]:
        s = small[0]
        out.append(f"- **Smallest competitive model**: {s['architecture']} ({_params(s['params'])}) reaches "
                   f"{_acc(s):.3f}, {_signed(_acc(s) - _acc(best))} from the best.")
    return out


def _this_machine() -> str:
    """This machine in words (CPU, cores, the vector unit PyTorch's kernels use), for the latency column's header."""
    import torch

    from ferbench.device import machine_info
    from ferbench.report.context import machine_line

    info = {k: v for k, v in machine_info().items() if k != "torch_threads"}  # the latency sets its own: 1
    isa = torch.backends.cpu.get_cpu_capability()  # "AVX2", "AVX512", … ("DEFAULT": none to name)
    return machine_line(info) + (f"; widest vector unit: {isa}" if isa != "DEFAULT" else "")


def remeasure_latency(records: list[dict[str, Any]]) -> int:
    """Re-measure every distinct architecture's batch-1 CPU latency (1 thread) here, one after the other.

    Latencies taken inside workers that trained side by side are noisy; the report's are measured on a quiet
    driver instead. Updates ``latency_ms`` in place; returns how many architectures were measured.
    """
    import json

    try:
        from ferbench.models.cost import latency_ms
    except ImportError:
        return 0
    from ferbench.loader import build_model

    done: dict[str, float] = {}
    for rec in records:
        arch = rec.get("architecture")
        if not arch:
            continue
        key = json.dumps(arch, sort_keys=True, default=str)
        if key not in done:
            try:
                model = build_model(arch).eval()
                done[key] = latency_ms(model, int(arch["in_chans"]), int(arch["input_size"]), threads=1, runs=30,
                                       warmup=5)
            except (RuntimeError, ValueError, FerbenchError):  # keep the worker's number for this one
                done[key] = rec.get("latency_ms")
        rec["latency_ms"] = done[key]
    return len(done)


# -- the report -------------------------------------------------------------------------------------------
LOW_ACCURACY = 0.50  # rows under this test accuracy are listed with the cause their study file states


def _study_notes(names: set[str], sources: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``{study name: its notes: entries}``: from the study text the store registered, else (a sweep run before
    the study had notes) from the shipped study file of that name; ``[]`` when neither has any."""
    import yaml

    from ferbench.sweep.study import load_study

    out: dict[str, list[dict[str, Any]]] = {}
    for n in sorted(names):
        try:
            notes = (yaml.safe_load(sources.get(n) or "") or {}).get("notes") or []
        except (yaml.YAMLError, AttributeError):
            notes = []
        if not notes:
            try:
                notes = load_study(f"studies/{n}").notes
            except FerbenchError:
                notes = []
        out[n] = notes if isinstance(notes, list) else []
    return out


def _low_rows_section(rows: list[dict[str, Any]], records_by_key: dict[str, dict[str, Any]],
                      sources: dict[str, str]) -> list[str]:
    """Markdown: every row under :data:`LOW_ACCURACY` test accuracy with the cause its study's ``notes:`` state."""
    from ferbench.sweep.study import note_for

    low = [r for r in rows if r.get("test_accuracy") is not None and r["test_accuracy"] < LOW_ACCURACY]
    if not low:
        return []
    notes = _study_notes({str(records_by_key[r["key"]].get("study")) for r in low}, sources)
    body = []
    for r in low:
        rec = records_by_key[r["key"]]
        note = note_for(notes.get(str(rec.get("study")), []), rec["config"])
        body.append([r["architecture"], r["balancing"], _f(r["test_accuracy"]),
                     note or "**no cause stated** (the study file's `notes:` has none for this trial)"])
    return (["", f"## Rows below {LOW_ACCURACY:.2f} test accuracy", "",
             "Each with the cause its study file states (`notes:`, written from measurements of the run; "
             "the evidence is in `benchmarks/results/reproduction.md`).", ""]
            + _md_table(["architecture", "balancing", "test acc", "cause"], body))


def write_study_report(db: str | Path, out: str | Path, measure_latency: bool = True) -> Path:
    """Write ``out/report.md``, ``out/report.html``, ``out/results.csv`` and PNG figures from a results store.

    Args:
        db: a sweep's ``results.db``.
        out: output folder (created).
        measure_latency: re-measure CPU latency per architecture here (see :func:`remeasure_latency`);
            False keeps the numbers the workers measured after training.

    Returns:
        The path of ``report.md``.
    """
    from ferbench.report.context import markdown_to_html, study_context_lines
    from ferbench.report.plots import confusion_figure, learning_curves
    from ferbench.sweep.store import ResultsStore

    db, out = Path(db), Path(out)
    with ResultsStore(db, create=False) as store:
        records = store.results()
        trials = store.trials()
        sources = store.study_sources()
    if not records:
        raise FerbenchError(f"{db}: no finished trial to report on")
    out.mkdir(parents=True, exist_ok=True)
    n_measured = remeasure_latency(records) if measure_latency else 0
    paper = PaperNumbers(seed_results_path())
    rows = results_rows(records, paper)
    records_by_key = {r["key"]: r for r in records}
    rows.sort(key=lambda r: -(_acc(r) or 0))

    # results.csv (every column any row has, stable order)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out / "results.csv", buf.getvalue())

    studies = sorted({r["study"] for r in rows})
    status: dict[str, int] = defaultdict(int)
    partial = []  # unfinished trials with committed epochs: how far each got
    for t in trials:  # a killed driver leaves its trial "running" in the store: say so only while one trains it
        st, prog = live_status(t)
        status[{"interrupted": "interrupted (resumable)",
                "retired": "retired (no longer in the study file; not resumed)"}.get(st, st)] += 1
        if prog is not None:
            cap = prog["epochs_max"] or "?"
            best = "–" if prog["best_val_accuracy"] is None else f"{prog['best_val_accuracy']:.4f}"
            label = trial_label(t.get("params") or {})
            left = (f" (at most {prog['seconds_left'] / 3600:.1f} h more at its median epoch time)"
                    if prog["seconds_left"] is not None else "")
            partial.append(f"- `{t['key']}` ({label}): {prog['epochs_done']} of {cap} epochs{left}, best validation "
                           f"accuracy so far {best}, " + ("training now" if prog["busy"] else "interrupted (resumes "
                                                          "from its last epoch when the sweep runs again)"))
    budgets = sorted({(rec["config"]["train"]["epochs"], rec["config"]["train"].get("time_limit_min"),
                       rec["config"]["data"].get("limit")) for rec in records}, key=str)
    md = [f"# Study report: {', '.join(studies)}", "",
          f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from `{db.name}`: "
          f"{len(records)} finished trials (" + ", ".join(f"{k} {v}" for k, v in sorted(status.items())) + ").",
          "Per-trial budget(s) (epochs cap, time limit in min, training-image limit): "
          + "; ".join(f"{e}, {t or '–'}, {lim or 'all'}" for e, t, lim in budgets) + ".",
          f"Paper numbers: `{paper.path.name if paper.path else 'not found'}` (docs/protocol.md §9). Latency: "
          "batch 1, 1 CPU thread, median of 30 (`ferbench.models.cost.latency_ms`), "
          + (f"re-measured for the {n_measured} architectures one after the other on FER2013 test faces when "
             f"this report was written, on {_this_machine()}."
             if n_measured else "measured by each worker right after training, on its trial's test faces."), ""]

    if partial:
        md += ["Unfinished trials with committed epochs (not in the tables below):", "", *partial, ""]
    md += study_context_lines(records) + [""]
    md += ["## Ranking", "", f"Sorted by {_acc_name(rows)}. *paper* = the seed's number for the same cell "
           "(model, dataset, resolution, balancing) and the split it is measured on; *ours (val)* is our number on "
           "that split (seed 000 reports validation accuracy) and Δ = ours − paper. *test* = the study's test split "
           "(FER2013 PrivateTest), the cross-dataset columns are the same checkpoint on other datasets (shared "
           "classes only). *late gain* = how many points the best validation accuracy rose over the last fifth of the "
           "epochs: ≈ 0 where the curve had levelled off when the schedule ended, ≥ 1 where it was still rising "
           "(a longer schedule would likely pay). CPU h = training wall time × threads; a trial trained on a GPU "
           "shows its wall hours there, marked GPU (which GPU: `train_device` in `results.csv`).", ""]
    cross_cols = list(dict.fromkeys(k for r in rows for k in r if k.startswith("cross_") and k.endswith("_accuracy")))
    body = []
    for i, r in enumerate(rows, 1):
        pv = "–" if r["paper_value"] is None else f"{r['paper_value']:.3f} ({r['paper_compares']})"
        diff = "–" if r["paper_diff"] is None else _signed(r["paper_diff"])
        body.append([str(i), r["architecture"], r["dataset"], f"{r['size']}", r["balancing"], pv,
                     _f(r["val_accuracy"]), diff, _f(r["test_accuracy"]), _f(r["test_balanced_accuracy"]),
                     _f(r["test_f1_macro"]), *[_f(r.get(c)) for c in cross_cols], _params(r["params"]),
                     _f(r.get("gflops"), 3), _f(r["latency_ms"], 2), str(r["epochs"]),
                     "–" if r.get("val_late_gain") is None else f"{100 * r['val_late_gain']:+.1f}", _hours_cell(r)])
    md += _md_table(["#", "architecture", "data", "px", "balancing", "paper", "ours (val)", "Δ", "test acc",
                     "test bal. acc", "test macro F1",
                     *[c[len("cross_"):-len("_accuracy")].replace("_", " ") + " acc" for c in cross_cols],
                     "params", "GFLOPs", "ms", "epochs", "late gain", "CPU h"], body)
    gains = [r["val_late_gain"] for r in rows if r.get("val_late_gain") is not None]
    if gains:
        md += ["", f"Levelled off when the schedule ended (late gain < 1 point): {sum(g < RISING_FROM for g in gains)} of "
               f"{len(gains)} trials; still rising: " + (", ".join(
                   f"{r['architecture']} ({r['balancing']}, {100 * r['val_late_gain']:+.1f})" for r in rows
                   if r.get("val_late_gain") is not None and r["val_late_gain"] >= RISING_FROM) or "none") + "."]

    md += _seed000_cells_section(rows, paper)
    md += _low_rows_section(rows, records_by_key, sources)
    md += ["", "## Seed-000 tables", "",
           "Architecture × (resolution, balancing). Cells: ours (paper's value, ours − paper) where seed 000 "
           "reports the same cell; `–` = not run. Seed 000's cross-domain column is its private BTFER set; "
           "ours are the `cross_eval` datasets of the study."]
    md += _seed000_tables(rows, paper)
    ms = _mean_std_tables(rows, paper)
    if ms:
        md += ["", "## Mean ± std (seed-001 style)"] + ms
    md += ["", "## Per-class results (seed-003 style)"] + _per_class_tables(records, paper)
    mat = _matrix(records)
    if mat:
        md += ["", "## Train × test dataset accuracy"] + mat

    figs: list[tuple[str, str]] = []
    for fn, cap in ((_scatter(rows, "latency_ms", "CPU latency, batch 1, 1 thread (ms, log)",
                              out / "acc_vs_latency.png", True), "accuracy vs CPU latency (Pareto front dashed)"),
                    (_scatter(rows, "params", "parameters (log)", out / "acc_vs_params.png", False),
                     "accuracy vs parameters"),
                    (_recall_heatmap([records_by_key[r["key"]] for r in rows], out / "per_class_recall.png"),
                     "per-class recall across trials"),
                    (_curves([records_by_key[r["key"]] for r in rows], out / "learning_curves.png"),
                     "validation loss and accuracy per epoch, all trials")):
        if fn is not None:
            figs.append((cap, fn.name))
    for r in rows[:MAX_CONFUSION_FIGS]:
        rec = records_by_key[r["key"]]
        test = (rec.get("evals") or {}).get(rec.get("test_split") or "")
        if test and test.get("confusion_matrix_normalized"):
            p = confusion_figure(test["confusion_matrix_normalized"], test["classes"], out / f"cm_{r['key']}.png",
                                 title=f"{r['architecture']} ({r['balancing']}, {r['size']}px) — "
                                       f"{rec.get('test_split')}, row-normalised")
            figs.append((f"confusion matrix: {r['architecture']} ({r['balancing']})", p.name))
    if rows and records_by_key[rows[0]["key"]].get("history"):
        p = learning_curves(records_by_key[rows[0]["key"]]["history"], out / f"curves_{rows[0]['key']}.png",
                            title=f"best trial: {rows[0]['architecture']} ({rows[0]['balancing']})")
        figs.append((f"learning curves of the best trial ({rows[0]['architecture']})", p.name))

    md += ["", "## Recommendation", "", "Derived from the numbers above (same budget for every trial):", ""]
    md += _recommendation(rows)
    md += ["", "## Figures", ""] + [f"![{cap}]({fn})" for cap, fn in figs]
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", markdown_to_html(text, f"ferbench study: {', '.join(studies)}"))
    return out / "report.md"
