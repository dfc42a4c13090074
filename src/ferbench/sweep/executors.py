"""Run a study's trials: in this process, in ``N`` local worker processes, or as Ray tasks.

The split of work is the same for every executor:

* a *worker* runs :func:`run_trial` on one trial spec (plain JSON: config, run dir, cross-evaluations). It
  trains with ``resume=True`` (a killed trial continues from its last finished epoch; a finished one is only
  re-evaluated), evaluates, measures cost, and returns a JSON-able *record*. Workers never touch the DB.
* the *driver* (the ``ferbench sweep`` process) owns ``results.db``: it marks trials running, and writes each
  returned record in one transaction (:meth:`ResultsStore.record_result`).

Data travel by path (``data.root`` in the config), so a Ray cluster needs the data and the output folder on
a shared filesystem. A run directory is locked (``flock``) while a worker trains in it, so two workers (say,
an orphan of a killed sweep and the re-run) never train the same trial at once.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ferbench.errors import FerbenchError
from ferbench.persist import RunDir, read_sidecar
from ferbench.sweep.store import ResultsStore
from ferbench.sweep.study import Study, Trial, materialize

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]


class TrialBusy(FerbenchError):
    """Another process holds the trial's run directory."""


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Exclusive, non-blocking ``flock`` on ``run_dir/.lock`` (released by the OS if the process dies)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        if not _try_flock(fd):
            raise TrialBusy(f"{run_dir} is being trained by another process")
        yield
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def run_dir_busy(run_dir: str | Path) -> bool:
    """Whether a live process trains in ``run_dir`` now (holds its ``.lock``); probes without keeping the lock.

    A trial whose driver was killed stays ``running`` in the results store, but the OS released its lock.
    """
    lock = Path(run_dir) / ".lock"
    if not lock.is_file():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        return not _try_flock(fd)
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken here


def trial_progress(run_dir: str | Path | None) -> dict[str, Any] | None:
    """How far an unfinished trial got: ``{"epochs_done", "best_val_accuracy", "epoch_s", "busy"}``, or ``None``.

    Read from the run folder's ``metrics.jsonl`` (committed epochs only, so a killed epoch is not counted);
    ``epoch_s`` is the median epoch time in seconds (``None`` when not logged); ``busy`` says whether a live
    process trains it now (:func:`run_dir_busy`). ``None`` when the folder has no committed epoch or its
    metrics cannot be read (the table then shows nothing rather than failing).
    """
    if not run_dir or not Path(run_dir).is_dir():
        return None
    try:
        rows = RunDir(Path(run_dir)).read_metrics()
    except (OSError, ValueError):
        return None
    if not rows:
        return None
    vals = [r["val_accuracy"] for r in rows if isinstance(r.get("val_accuracy"), int | float)]
    secs = [r["time_s"] for r in rows if isinstance(r.get("time_s"), int | float)]
    return {"epochs_done": max(int(r.get("epoch", 0)) for r in rows),
            "best_val_accuracy": max(vals) if vals else None,
            "epoch_s": sorted(secs)[len(secs) // 2] if secs else None,  # median: robust to one paused epoch
            "busy": run_dir_busy(run_dir)}


def live_status(trial: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A results-store trial row's status as it is now, and its :func:`trial_progress` (or ``None``).

    A killed driver leaves its trial ``running`` in the store: such a trial reads ``running`` only while a
    process holds its run folder, else ``interrupted``; a ``pending`` trial with committed epochs (trained
    by another store's driver, say) reads the same way. Finished and failed trials read as stored. The
    progress gains ``epochs_max`` (the trial's ``train.epochs``) and ``seconds_left`` (the epochs left to that
    cap at the median epoch time: an upper bound when early stopping may end it; ``None`` when unknown).
    """
    status = trial["status"]
    if status not in ("pending", "running"):
        return status, None
    prog = trial_progress(trial.get("run_dir"))
    if prog is not None:
        cap = ((trial.get("config") or {}).get("train") or {}).get("epochs")
        prog["epochs_max"] = cap
        prog["seconds_left"] = ((cap - prog["epochs_done"]) * prog["epoch_s"]
                                if isinstance(cap, int) and prog["epoch_s"] else None)
    busy = prog["busy"] if prog is not None else bool(trial.get("run_dir")) and run_dir_busy(trial["run_dir"])
    if status == "running" or prog is not None:
        status = "running" if busy else "interrupted"
    return status, prog


def skipped_line(t: Trial) -> str:
    """The one line for a trial another driver holds (its run dir is locked): skipped, not failed."""
    return f"skipped {t.key} ({t.label()}): claimed by another driver"


def trial_spec(study: Study, trial: Trial, run_dir: Path) -> dict[str, Any]:
    """What a worker needs to run one trial (JSON only, so it ships to any process or Ray node)."""
    from ferbench.data.root import candidate_roots

    try:  # where the driver would find the data when the config names no root (for workers in other folders)
        roots = [str(r.resolve()) for r in candidate_roots(None)]
    except FerbenchError:
        roots = []
    return {"key": trial.key, "study": study.name, "params": trial.params, "config": trial.config,
            "run_dir": str(run_dir), "threads": int(study.resources.get("cpus") or 1),
            "data_roots": roots}


def run_trial(spec: dict[str, Any], progress: bool | Literal["lines"] = False, log: Log | None = None) -> dict[str, Any]:
    """Train (or resume, or re-evaluate) one trial and return its record. Runs in the worker.

    Returns:
        JSON-able dict: ``key``, ``study``, ``params``, ``config`` (compact, as hashed), ``run_dir``,
        ``val_accuracy``, ``test_accuracy``, ``test_balanced_accuracy``, ``test_f1_macro``, ``evals``
        (split → full metrics), ``cross`` (list of cross-dataset metrics), ``history`` (metrics.jsonl rows),
        ``params_count``, ``latency_ms`` (batch-1 CPU, 1 thread), ``epochs``, ``best_epoch``,
        ``train_time_s``, ``stopped``.
    """
    import torch

    from ferbench.train.loop import train

    say = log or (lambda s: None)
    run_dir = Path(spec["run_dir"])
    torch.set_num_threads(max(1, int(spec.get("threads") or 1)))
    if spec.get("worker") and spec["config"]["data"].get("root") is None and spec.get("data_roots"):
        os.environ.setdefault("FERBENCH_DATA", spec["data_roots"][0])
    cfg = materialize(spec["config"])
    with run_dir_lock(run_dir):
        train(cfg, run_dir, resume=True, progress=progress, log=say)  # also scores the study's cross_eval
    return _collect(spec, run_dir)


def _collect(spec: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Read the run directory back into a record (numbers only; no tensors)."""
    from ferbench.data.registry import canonical_dataset_name
    from ferbench.train.build import fill_split_defaults

    rd = RunDir(run_dir)
    best = read_sidecar(rd.best)
    last = rd.read_last() or {}
    history = rd.read_metrics()
    evals = rd.read_evals()
    cfg = spec["config"]
    cross_keys = [RunDir.cross_key(canonical_dataset_name(ce["data"]), ce.get("split", "test"))
                  for ce in (cfg.get("eval") or {}).get("cross") or []]
    cross = [evals[k] for k in cross_keys if k in evals]  # a dataset missing on this machine: logged, left out
    evals = {k: v for k, v in evals.items() if k not in cross_keys}
    data_cfg = fill_split_defaults(copy.deepcopy(cfg))["data"]  # the split names the trainer used
    indexed = isinstance(data_cfg.get("indices"), dict)
    val_name = "val" if indexed else data_cfg.get("val_split")
    test_name = "test" if indexed else data_cfg.get("test_split")
    val, test = evals.get(val_name or ""), evals.get(test_name or "")
    cost = _cost(best, data_cfg)
    machine = run_dir / "machine.json"
    return {
        "key": spec["key"], "study": spec["study"], "params": spec["params"], "config": cfg,
        "run_dir": str(run_dir), "classes": best.get("classes"),
        # the results store keeps the input size with the architecture (reports build the network from it)
        "architecture": {**best["architecture"], "in_chans": best["preprocessing"]["channels"],
                         "input_size": best["preprocessing"]["size"]},
        "val_split": val_name, "test_split": test_name,
        "val_accuracy": val["accuracy"] if val else None,
        "test_accuracy": test["accuracy"] if test else None,
        "test_balanced_accuracy": test["balanced_accuracy"] if test else None,
        "test_f1_macro": test["f1_macro"] if test else None,
        "evals": evals, "cross": cross, "history": history,
        "epochs": last.get("epoch"), "best_epoch": best.get("epoch"), "train_time_s": last.get("elapsed_s"),
        "stopped": last.get("stopped"), "threads": int(spec.get("threads") or 1), **cost,
        "machine": json.loads(machine.read_text()) if machine.is_file() else None,
    }


def _test_faces(data_cfg: dict[str, Any], pre: dict[str, Any], n: int = 64) -> torch.Tensor:
    """The first ``n`` faces of the trial's test split (all of its data if the split is not named), as model input."""
    from ferbench.data import load_dataset, split_name
    from ferbench.data.preprocess import Preprocessing

    ds = load_dataset(data_cfg["name"], data_cfg.get("root"))
    test = data_cfg.get("test_split") or split_name(data_cfg["name"], "test")
    return Preprocessing.from_dict(pre)(ds.split(test if test in ds.split_names else "all").images[:n])


def _cost(sidecar: dict[str, Any], data_cfg: dict[str, Any]) -> dict[str, Any]:
    """Parameter count and batch-1 CPU latency (1 thread, median, on the trial's own test faces)."""
    from ferbench.loader import build_model
    from ferbench.models.registry import count_params

    arch, pre = sidecar["architecture"], sidecar["preprocessing"]
    model = build_model(arch, pre).eval()
    out: dict[str, Any] = {"params_count": count_params(model), "latency_ms": None, "latency_threads": 1}
    try:
        from ferbench.models.cost import flops, latency_ms
    except ImportError:
        return out
    try:
        out["gflops"] = flops(model, int(pre["channels"]), int(pre["size"])) / 1e9
    except (RuntimeError, ValueError):  # data-dependent forwards that the counter cannot trace
        out["gflops"] = None
    try:
        faces = _test_faces(data_cfg, pre)
    except FerbenchError:  # the data went away after training: keep the trial, leave its latency unknown
        return out
    out["latency_ms"] = latency_ms(model, int(pre["channels"]), int(pre["size"]), threads=1, runs=20,
                                   warmup=3, inputs=faces)
    return out


def _error_line(e: BaseException) -> str:
    if isinstance(e, FerbenchError):
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"


# -- drivers ------------------------------------------------------------------------------------------------
def plan(study: Study, store: ResultsStore, out: Path, data_root: str | Path | None = None) -> list[Trial]:
    """Register the study and its trials in the store; return the trials not finished yet.

    Unfinished trials of an earlier version of the study file (a changed or removed grid point) become
    ``retired``: kept in the store, never resumed (:meth:`ResultsStore.retire_absent`).
    """
    trials = study.trials(data_root)
    store.register_study(study.name, study.source)
    store.retire_absent(study.name, {t.key for t in trials})
    todo = []
    for t in trials:
        store.add_trial(t.key, study.name, t.params, t.config, str(out / "runs" / t.key))
        if store.status(t.key) != "finished":
            todo.append(t)
    return todo


def run_local(study: Study, store: ResultsStore, out: Path, todo: list[Trial], max_parallel: int = 1,
              on_done: Callable[[Trial, dict[str, Any] | None, str | None], None] | None = None,
              log: Log | None = None) -> dict[str, int]:
    """Run ``todo`` here (``max_parallel`` 1) or in that many spawned worker processes.

    Returns counts ``{"finished": n, "failed": n, "busy": n}``; ``busy`` trials (claimed by another driver)
    are only logged: ``on_done`` is called for finished and failed ones.
    """
    say = log or print
    counts = {"finished": 0, "failed": 0, "busy": 0}

    def finish(t: Trial, record: dict[str, Any] | None, err: BaseException | None) -> None:
        if record is not None:
            store.record_result(t.key, record)
            counts["finished"] += 1
            msg = None
        elif isinstance(err, TrialBusy):  # not a failure: another driver trains it and records the result
            counts["busy"] += 1
            say(skipped_line(t))
            return
        else:
            msg = _error_line(err) if err else "unknown error"
            store.mark_failed(t.key, msg)
            counts["failed"] += 1
            say(f"trial {t.key} ({t.label()}) failed: {msg}")
        if on_done:
            on_done(t, record, msg)

    specs = {t.key: trial_spec(study, t, out / "runs" / t.key) for t in todo}
    if max_parallel <= 1:
        for t in todo:  # one line per epoch through ``say`` (above a terminal's sweep bar, or into the log file)
            store.mark_running(t.key)
            say(f"trial {t.key} ({t.label()}) starts")
            try:
                rec = run_trial(specs[t.key], progress="lines", log=say)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one bad trial must not stop the sweep; its error is recorded
                finish(t, None, e)
            else:
                finish(t, rec, None)
        return counts

    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max_parallel, mp_context=ctx, initializer=_worker_init) as pool:
        running: dict[Future[dict[str, Any]], Trial] = {}
        queue = list(todo)
        while queue or running:
            while queue and len(running) < max_parallel:
                t = queue.pop(0)
                store.mark_running(t.key)
                running[pool.submit(run_trial, {**specs[t.key], "worker": True})] = t
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in done:
                t = running.pop(f)
                err = f.exception()
                finish(t, None if err else f.result(), err)
    return counts


def _worker_init() -> None:
    """Worker processes die with the driver (Linux ``PR_SET_PDEATHSIG``) and use one BLAS thread each."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_ray(study: Study, store: ResultsStore, out: Path, todo: list[Trial], address: str | None = None,
            max_parallel: int | None = None,
            on_done: Callable[[Trial, dict[str, Any] | None, str | None], None] | None = None,
            log: Log | None = None, ray_init_kwargs: dict[str, Any] | None = None) -> dict[str, int]:
    """One Ray task per trial with the study's ``resources`` (``cpus``, ``gpus``); results come back here.

    ``address=None`` starts a local Ray instance (``ray.init()``); otherwise connects to that cluster.
    """
    try:
        import ray
    except ImportError:
        raise FerbenchError("the Ray executor needs ray: pip install 'ferbench[ray]'") from None
    say = log or print
    counts = {"finished": 0, "failed": 0, "busy": 0}
    started_here = not ray.is_initialized()
    if started_here:
        kw = {"include_dashboard": False, "log_to_driver": False, **(ray_init_kwargs or {})}
        if address:
            kw["address"] = address
        try:
            ray.init(**kw)
        except Exception as e:  # connection refused, bad address: one line, not a traceback
            raise FerbenchError(f"cannot start/connect to Ray ({'address ' + address if address else 'local'}): "
                                f"{str(e).splitlines()[0]}") from None
    try:
        res = study.resources
        remote = ray.remote(num_cpus=float(res.get("cpus") or 1), num_gpus=float(res.get("gpus") or 0),
                            max_retries=0)(run_trial)
        limit = max_parallel or len(todo) or 1
        queue = list(todo)
        running: dict[Any, Trial] = {}
        while queue or running:
            while queue and len(running) < limit:
                t = queue.pop(0)
                store.mark_running(t.key)
                spec = {**trial_spec(study, t, (out / "runs" / t.key).resolve()), "worker": True}
                running[remote.remote(spec)] = t
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                t = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as e:
                    cause = getattr(e, "cause", None) or e
                    msg = _error_line(cause)
                    if "TrialBusy" in type(cause).__name__ or "being trained by another" in str(e):
                        counts["busy"] += 1
                        say(skipped_line(t))
                        continue
                    store.mark_failed(t.key, msg)
                    counts["failed"] += 1
                    say(f"trial {t.key} ({t.label()}) failed: {msg}")
                    if on_done:
                        on_done(t, None, msg)
                    continue
                store.record_result(t.key, rec)
                counts["finished"] += 1
                if on_done:
                    on_done(t, rec, None)
    finally:
        if started_here:
            ray.shutdown()
    return counts


def run_study(study_path: str | Path, out: str | Path | None = None, executor: str = "local",
              address: str | None = None, max_parallel: int = 1, data_root: str | Path | None = None,
              dry_run: bool = False, log: Log | None = None,
              on_done: Callable[[Trial, dict[str, Any] | None, str | None], None] | None = None,
              import_from: str | Path | None = None, only: list[str] | None = None,
              ) -> dict[str, Any]:
    """Plan and run a study; returns ``{"db", "out", "trials", "todo", "finished", "failed", "busy", "imported"}``.

    ``out`` defaults to ``runs/<study name>``; the store is ``out/results.db``, run dirs ``out/runs/<key>``.
    ``import_from``: an exported results file (``ferbench results --export``); its records of this study's
    trials are stored as finished before planning, so those trials are not run again.
    ``only``: run just the trials matching these keys or patterns (:func:`~ferbench.sweep.study.select_trials`),
    e.g. the one long trial that fits this machine's session; the others stay registered and untouched.
    """
    from ferbench.sweep.study import load_study, select_trials

    study = load_study(study_path)
    out_dir = Path(out) if out else Path("runs") / study.name
    if executor not in ("local", "ray"):
        raise FerbenchError(f"unknown executor {executor!r}; choose local or ray")
    if dry_run:
        trials = select_trials(study.trials(data_root), only or [])
        return {"db": out_dir / "results.db", "out": out_dir, "trials": trials, "todo": trials, "finished": 0,
                "failed": 0, "busy": 0, "study": study}
    all_trials = study.trials(data_root)
    chosen = {t.key for t in select_trials(all_trials, only or [])}  # a pattern matching nothing fails here
    out_dir.mkdir(parents=True, exist_ok=True)
    imported_recs = None
    if import_from is not None:
        from ferbench.sweep.store import read_jsonl

        imported_recs = read_jsonl(import_from)  # a bad file fails before anything is written
    with ResultsStore(out_dir / "results.db") as store:
        imported = 0
        if imported_recs:
            store.register_study(study.name, study.source)
            imported = store.import_records(imported_recs, {t.key for t in all_trials})
        todo = [t for t in plan(study, store, out_dir, data_root) if t.key in chosen]
        t0 = time.perf_counter()
        if executor == "ray":
            counts = run_ray(study, store, out_dir, todo, address, max_parallel if max_parallel > 1 else None,
                             on_done, log)
        else:
            counts = run_local(study, store, out_dir, todo, max_parallel, on_done, log)
    return {"db": out_dir / "results.db", "out": out_dir, "trials": all_trials, "todo": todo, "study": study,
            "elapsed_s": time.perf_counter() - t0, "imported": imported, **counts}
