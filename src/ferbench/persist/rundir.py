"""The run folder: one class owns its layout, for the trainer that writes it and every reader.

::

    RUN/config.yaml              the resolved config (written once when the run starts)
    RUN/best.safetensors + .json the best checkpoint so far (see :mod:`ferbench.persist.checkpoint`)
    RUN/last.json                commit point of the last finished epoch (names its tensors file)
    RUN/last-eNNNN.safetensors   model + optimiser + EMA tensors of that epoch
    RUN/metrics.jsonl            one JSON row per finished epoch, rewritten from last.json's history
    RUN/eval_<split>.json        final metrics of best on each evaluated split
    RUN/report/                  report.md / report.html / figures
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferbench.errors import FerbenchError
from ferbench.persist.atomic import atomic_write_text, clean_temp_files
from ferbench.persist.checkpoint import repair_sidecar, save_tensors


@dataclass(frozen=True)
class RunDir:
    """Paths and small readers/writers of one training run folder."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # --- paths ---------------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def best(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def last(self) -> Path:
        return self.path / "last.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def eval_file(self, split: str) -> Path:
        return self.path / f"eval_{split}.json"

    @staticmethod
    def cross_key(data: str, split: str) -> str:
        """File-name part for another dataset's split scored in this run: ``"folder:/a b", "test"`` → ``folder__a_b_test``
        (``eval_<key>.json`` of ``eval.cross``, which a study's ``cross_eval`` fills)."""
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{data}_{split}")

    # --- state ---------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_dir()

    def has_state(self) -> bool:
        return self.last.exists()

    def recover(self) -> list[str]:
        """Undo what a killed writer left: temp files, a ``best.json`` that lags its weights. Returns notes."""
        notes = [f"removed {p.name}" for p in clean_temp_files(self.path)]
        if self.best.exists() and repair_sidecar(self.best):
            notes.append("rewrote best.json from the weights' embedded sidecar")
        return notes

    def read_last(self) -> dict[str, Any] | None:
        """``last.json`` (the last committed epoch) or ``None``; one-line error when it is damaged."""
        if not self.last.exists():
            return None
        try:
            meta = json.loads(self.last.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FerbenchError(f"{self.last}: damaged resume state ({e.__class__.__name__}); "
                                "delete the run folder or start a new one with --out") from None
        need = ("epoch", "tensors_file", "history")
        if not isinstance(meta, dict) or any(k not in meta for k in need):
            raise FerbenchError(f"{self.last}: damaged resume state (needs {', '.join(need)}); "
                                "delete the run folder or start a new one with --out")
        if not (self.path / str(meta["tensors_file"])).exists():
            raise FerbenchError(f"{self.last}: names {meta['tensors_file']}, which is missing")
        return meta

    def read_state(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(tensors, last.json)`` of the last finished epoch, or ``None`` when there is none."""
        meta = self.read_last()
        if meta is None:
            return None
        from safetensors.torch import load_file

        f = self.path / meta["tensors_file"]
        try:
            return load_file(str(f)), meta
        except Exception as e:  # safetensors' own error types
            raise FerbenchError(f"{f}: unreadable resume tensors ({e})") from None

    def write_state(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write ``last-eNNNN.safetensors`` then ``last.json`` naming it (the epoch's commit point).

        A kill before ``last.json`` is replaced leaves the previous epoch's pair intact; older tensor files are
        removed only after it.
        """
        fname = f"last-e{int(meta['epoch']):04d}.safetensors"
        save_tensors(self.path / fname, tensors)
        atomic_write_text(self.last, json.dumps({**meta, "tensors_file": fname}, indent=1))
        for old in self.path.glob("last-e*.safetensors"):
            if old.name != fname:
                old.unlink(missing_ok=True)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` from the committed history (so no epoch is ever counted twice)."""
        atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in history))

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def write_eval(self, split: str, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.eval_file(split), json.dumps(metrics, indent=1))

    def read_evals(self) -> dict[str, dict[str, Any]]:
        """``{split: metrics}`` of every ``eval_<split>.json``."""
        return {p.stem[5:]: json.loads(p.read_text()) for p in sorted(self.path.glob("eval_*.json"))}
