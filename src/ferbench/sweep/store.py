"""The results store: one SQLite file (``results.db``, WAL mode) next to a study's run directories.

Two tables:

* ``trials``: every trial of every study run against this file, keyed by the trial's config hash, with its
  status (``pending`` → ``running`` → ``finished`` | ``failed``; ``retired`` once an unfinished trial's point
  leaves the study file), assignments, resolved config and run dir.
* ``results``: one row per *finished* trial (primary key = trial key): headline numbers as columns, plus the
  whole record (metrics of every evaluated split, history, cost) as JSON.

A trial's result row and its ``finished`` status are written in ONE transaction, so a kill at any moment
leaves either both or neither; the primary key makes a second insert impossible.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ferbench.errors import FerbenchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY, source TEXT, created REAL, updated REAL
);
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY, study TEXT NOT NULL, params TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', run_dir TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, host TEXT, created REAL, started REAL, finished REAL
);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY REFERENCES trials(key), study TEXT NOT NULL, model TEXT, dataset TEXT,
    size INTEGER, class_weights TEXT, init TEXT, method TEXT, seed INTEGER, fold INTEGER,
    val_accuracy REAL, test_accuracy REAL, test_balanced_accuracy REAL, test_f1_macro REAL,
    params_count INTEGER, latency_ms REAL, epochs INTEGER, train_time_s REAL, record TEXT NOT NULL,
    recorded REAL
);
CREATE INDEX IF NOT EXISTS trials_study ON trials(study);
"""

STATUSES = ("pending", "running", "finished", "failed", "retired")


def portable_record(rec: Any, base: Path) -> Any:
    """A copy of a trial record without machine-specific paths, for a file that is committed or moved.

    ``config.data.root`` becomes ``None`` (where the data lives is not part of the experiment; trial keys
    exclude it too), and every path under ``base`` (the store's folder: run dirs, checkpoints) becomes
    relative to it, e.g. ``runs/<key>/best.safetensors``.
    """
    base_s = str(base.resolve())
    if isinstance(rec, dict):
        out = {k: portable_record(v, base) for k, v in rec.items()}
        data = out.get("config", {}).get("data") if isinstance(out.get("config"), dict) else None
        if isinstance(data, dict) and "root" in data:
            data["root"] = None
        return out
    if isinstance(rec, list):
        return [portable_record(v, base) for v in rec]
    if isinstance(rec, str) and rec.startswith(base_s + os.sep):
        return rec[len(base_s) + 1:]
    return rec


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of an exported results file; a bad line is an error naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise FerbenchError(f"results file {p} not found")
    out = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise FerbenchError(f"{p}:{i}: not a JSON record ({e.msg})") from None
        if not isinstance(rec, dict) or "key" not in rec or "config" not in rec:
            raise FerbenchError(f"{p}:{i}: not a ferbench trial record (needs 'key' and 'config')")
        out.append(rec)
    return out


class ResultsStore:
    """A connection to ``results.db``. Only the sweep's driver process writes to it."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            near = sorted(str(q) for q in Path("runs").glob("*/results.db"))[:5]  # where sweeps write by default
            hint = f"; sweeps here wrote: {', '.join(near)} (pass --db)" if near else ""
            raise FerbenchError(f"results database {self.path} not found{hint}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise FerbenchError(f"{self.path}: not a ferbench results database ({e})") from None
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (driver only) ------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: every statement in the block commits together, or none does."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._transaction() as db:
            db.execute(sql, args)

    def register_study(self, name: str, source: str) -> None:
        now = time.time()
        self._tx("INSERT INTO studies(name, source, created, updated) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(name) DO UPDATE SET source=excluded.source, updated=excluded.updated",
                 (name, source, now, now))

    def study_sources(self) -> dict[str, str]:
        """``{study name: its YAML text}`` as last registered by a sweep run against this store."""
        return dict(self.db.execute("SELECT name, source FROM studies").fetchall())

    def add_trial(self, key: str, study: str, params: dict[str, Any], config: dict[str, Any], run_dir: str) -> None:
        """Insert a trial as ``pending`` unless the key is already known (then nothing changes)."""
        self._tx("INSERT OR IGNORE INTO trials(key, study, params, config, status, run_dir, created) "
                 "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                 (key, study, json.dumps(params, default=str), json.dumps(config, default=str), run_dir, time.time()))

    def retire_absent(self, study: str, keys: set[str]) -> int:
        """Mark ``study``'s unfinished trials whose key is not in ``keys`` (the study file's trials now) ``retired``,
        and bring a retired trial whose key is back in ``keys`` to ``pending``; returns how many were retired.

        A retired trial keeps its row and run folder (its committed epochs stay readable) but no sweep resumes
        it. Finished trials are never touched: their results stay in the store and its exports.
        """
        with self._transaction() as db:  # read and write in one transaction: no trial finishes in between
            rows = db.execute("SELECT key, status FROM trials WHERE study=?", (study,)).fetchall()
            gone = [r["key"] for r in rows if r["key"] not in keys and r["status"] in ("pending", "running", "failed")]
            back = [r["key"] for r in rows if r["key"] in keys and r["status"] == "retired"]
            db.executemany("UPDATE trials SET status='retired' WHERE key=?", [(k,) for k in gone])
            db.executemany("UPDATE trials SET status='pending' WHERE key=?", [(k,) for k in back])
        return len(gone)

    def mark_running(self, key: str) -> None:
        self._tx("UPDATE trials SET status='running', attempts=attempts+1, started=?, error=NULL, host=? "
                 "WHERE key=? AND status!='finished'", (time.time(), f"{socket.gethostname()}:{os.getpid()}", key))

    def mark_failed(self, key: str, error: str) -> None:
        self._tx("UPDATE trials SET status='failed', error=?, finished=? WHERE key=? AND status!='finished'",
                 (error[:2000], time.time(), key))

    def record_result(self, key: str, record: dict[str, Any]) -> bool:
        """Store a finished trial's record and mark it finished, atomically. False if it was already there."""
        cfg = record["config"]
        ix = cfg["data"].get("indices")
        fold = ix.get("fold") if isinstance(ix, dict) else None
        row = (key, record["study"], cfg["model"]["name"], cfg["data"]["name"], cfg["preprocessing"]["size"],
               cfg["train"]["class_weights"], cfg["model"].get("init"), (cfg.get("method") or {}).get("name"),
               cfg.get("seed"), fold, record.get("val_accuracy"), record.get("test_accuracy"),
               record.get("test_balanced_accuracy"), record.get("test_f1_macro"), record.get("params_count"),
               record.get("latency_ms"), record.get("epochs"), record.get("train_time_s"),
               json.dumps(record, default=str), time.time())
        with self._transaction() as db:
            exists = db.execute("SELECT 1 FROM results WHERE key=?", (key,)).fetchone()
            if exists is None:
                db.execute(f"INSERT INTO results VALUES ({', '.join('?' * len(row))})", row)
            db.execute("UPDATE trials SET status='finished', error=NULL, finished=? WHERE key=?", (time.time(), key))
        return exists is None

    def import_records(self, records: list[dict[str, Any]], keys: set[str] | None = None) -> int:
        """Store finished-trial records exported from another store (:meth:`export_jsonl`); returns how many were new.

        A record whose key is already finished here is skipped (nothing counted twice); ``keys`` restricts
        the import to those trial keys (a study's current trials). The run directories of imported trials
        are usually absent: reports then use the record's numbers and skip that trial's figures.
        """
        n = 0
        for rec in records:
            key = rec.get("key")
            if not key or "config" not in rec or (keys is not None and key not in keys):
                continue
            if self.status(key) == "finished":
                continue
            run_dir = rec.get("run_dir") or ""
            if run_dir and not Path(run_dir).is_absolute():  # exported relative to the store's folder
                run_dir = str(self.path.parent / run_dir)
            self.add_trial(key, rec.get("study", ""), rec.get("params") or {}, rec["config"], run_dir)
            n += int(self.record_result(key, rec))
        return n

    # -- reading --------------------------------------------------------------------------------
    def status(self, key: str) -> str | None:
        r = self.db.execute("SELECT status FROM trials WHERE key=?", (key,)).fetchone()
        return None if r is None else r["status"]

    def trials(self, study: str | None = None) -> list[dict[str, Any]]:
        """All trials (optionally of one study) with params/config decoded, in insertion order."""
        sql, args = "SELECT * FROM trials", ()
        if study:
            sql, args = sql + " WHERE study=?", (study,)
        rows = self.db.execute(sql + " ORDER BY rowid", args).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["params"], d["config"] = json.loads(d["params"]), json.loads(d["config"])
            out.append(d)
        return out

    def results(self, study: str | None = None) -> list[dict[str, Any]]:
        """Finished trials' records (the JSON written by the executor), in recording order."""
        sql, args = "SELECT record FROM results", ()
        if study:
            sql, args = sql + " WHERE study=?", (study,)
        return [json.loads(r["record"]) for r in self.db.execute(sql + " ORDER BY recorded", args).fetchall()]

    def export_jsonl(self, path: str | Path, study: str | None = None) -> int:
        """Write every finished record (one JSON object per line) to ``path`` atomically; returns the count.

        The file is small enough to commit: a study that runs over several machines or sessions carries its
        finished trials in it (``ferbench sweep --import``) while run directories stay out of git. Records are
        written without machine-specific paths (:func:`portable_record`).
        """
        from ferbench.persist.atomic import atomic_write_text

        recs = [portable_record(r, self.path.parent) for r in self.results(study)]
        atomic_write_text(Path(path), "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in recs))
        return len(recs)

    def counts(self, study: str | None = None) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for t in self.trials(study):
            out[t["status"]] = out.get(t["status"], 0) + 1
        return out
