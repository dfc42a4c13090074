"""Kill a training run at every file write (before and after the rename that commits it, as ``kill -9`` would)
and check that the next start repairs everything: the sidecar matches the weights, no temp file survives, and
the resumed run has every epoch exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ferbench.persist import read_sidecar
from ferbench.persist.checkpoint import _embedded


class _Killer:
    """``os.replace`` that ends the process (``os._exit``, as ``kill -9``: no cleanup runs) at write ``target``."""

    def __init__(self, target: int, mode: str) -> None:
        self.target, self.mode, self.count, self.real = target, mode, 0, os.replace

    def __call__(self, src: object, dst: object) -> None:
        self.count += 1
        if self.count == self.target and self.mode == "before":
            os._exit(137)  # the temp file is written, the rename never happens
        self.real(src, dst)
        if self.count == self.target and self.mode == "after":
            os._exit(137)  # this write is committed, the next one never starts


def _train(run_dir: Path, root: Path) -> Path:
    from ferbench.train.loop import train

    return train(_config(root), out_dir=run_dir, resume=True, progress=False, log=lambda s: None)


def _killed_run(run_dir: Path, root: Path, target: int, mode: str) -> int:
    """Run the training in a forked child that dies at write ``target``; returns the child's exit code."""
    import ferbench.persist.atomic as atomic

    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            atomic.os.replace = _Killer(target, mode)  # type: ignore[assignment]
            _train(run_dir, root)
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _config(root: Path) -> dict:
    return {"model": {"name": "lenet5"}, "data": {"root": str(root)}, "preprocessing": {"size": 48, "channels": 1},
            "train": {"epochs": 2, "batch_size": 64, "augment": "none", "scheduler": "none", "precision": "fp32"}}


def _check_consistent(run_dir: Path) -> None:
    best = run_dir / "best.safetensors"
    if best.exists():
        # readers always get the sidecar that belongs to these weights
        assert read_sidecar(best)["weights_id"] == _embedded(best)["weights_id"]


def _scenario(tiny_root: Path, tmp_path: Path) -> None:
    import ferbench.persist.atomic as atomic

    _train(tmp_path / "warm", tiny_root)  # fills the decoded-data cache, so every run below writes the same files
    counter = _Killer(0, "none")
    real, atomic.os.replace = atomic.os.replace, counter  # type: ignore[assignment]
    try:
        _train(tmp_path / "clean", tiny_root)
    finally:
        atomic.os.replace = real  # type: ignore[assignment]
    n_writes = counter.count
    assert n_writes >= 10
    ref = [json.loads(x)["val_loss"] for x in (tmp_path / "clean" / "metrics.jsonl").read_text().splitlines()]
    for k in range(1, n_writes + 1):
        for mode in ("before", "after"):
            rd = tmp_path / f"k{k}-{mode}"
            assert _killed_run(rd, tiny_root, k, mode) == 137
            _check_consistent(rd)
            _train(rd, tiny_root)  # the next start: resume to the end
            leftovers = [p.name for p in rd.iterdir() if ".tmp" in p.name]
            assert leftovers == [], f"k={k} {mode}: temp files survived: {leftovers}"
            best = rd / "best.safetensors"
            on_disk = json.loads(best.with_suffix(".json").read_text())
            assert on_disk["weights_id"] == _embedded(best)["weights_id"], f"k={k} {mode}: stale best.json"
            rows = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines()]
            assert [r["epoch"] for r in rows] == [1, 2], f"k={k} {mode}"
            assert [r["val_loss"] for r in rows] == pytest.approx(ref, abs=1e-5), f"k={k} {mode}"
            assert (rd / "eval_PrivateTest.json").exists()


def _run_scenario(root: str, tmp: str, queue: object) -> None:
    import traceback

    import torch

    torch.set_num_threads(1)  # as in the test process: no OpenMP team for the forked children to inherit
    try:
        _scenario(Path(root), Path(tmp))
        queue.put(None)  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001 - reported to the test process
        queue.put(traceback.format_exc())  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_at_every_write_is_repaired_on_the_next_start(tiny_root: Path, tmp_path: Path) -> None:
    # The scenario (which forks one child per killed run) runs in a freshly spawned process: a child forked
    # from the pytest process itself cannot run backward once an earlier test ran an ONNX (torch.export)
    # export there ("Unable to handle autograd's threading in combination with fork-based multiprocessing").
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_run_scenario, args=(str(tiny_root), str(tmp_path), queue))
    p.start()
    err = queue.get(timeout=900)
    p.join()
    assert err is None, err
