"""The zoo's shipped cost table (``cost_table.csv``): names, aliases, params, GFLOPs, read without torch.

``ferbench models list --recompute --csv src/ferbench/models/cost_table.csv`` writes it, stamped with a
SHA-1 of this package's ``*.py`` files; a stale or missing table reads as ``None`` (then callers build the
models themselves). Importing this module loads neither torch nor the model families, so the CLI can list
the zoo and refuse a misspelt model name in a fraction of a second.
"""

from __future__ import annotations

import csv
import difflib
import fnmatch
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path

from ferbench.errors import FerbenchError

COST_TABLE = Path(__file__).resolve().parent / "cost_table.csv"
COST_TABLE_SOURCES = COST_TABLE.with_suffix(".json")  # {"sources_sha1": …} of the models/ code it counted
COLUMNS = ("name", "family", "paper", "aliases", "input_size", "params", "params_224", "gflops_48", "gflops_224",
           "latency_ms_48", "notes")


def models_sources_sha1() -> str:
    """SHA-1 over the ``ferbench/models/*.py`` files (read as bytes, not imported): the table's freshness key."""
    h = hashlib.sha1()
    for f in sorted(COST_TABLE.parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def shipped_rows(pattern: str) -> list[dict[str, object]] | None:
    """Rows of :data:`COST_TABLE` whose name or an alias matches the shell ``pattern`` (ints / floats parsed);
    ``None`` when the table is missing or stale (the models/ code changed since it was counted)."""
    if not COST_TABLE.is_file() or not COST_TABLE_SOURCES.is_file():
        return None
    try:
        if json.loads(COST_TABLE_SOURCES.read_text()).get("sources_sha1") != models_sources_sha1():
            return None
    except (OSError, ValueError):
        return None
    rows: list[dict[str, object]] = []
    with COST_TABLE.open(newline="") as f:
        for r in csv.DictReader(f):
            names = [r["name"], *(r.get("aliases") or "").split()]
            if not any(fnmatch.fnmatch(n, pattern) for n in names):  # an alias selects its network
                continue
            row: dict[str, object] = dict(r)
            for k in ("input_size", "params", "params_224"):
                row[k] = int(r[k]) if r[k] else None
            for k in ("gflops_48", "gflops_224", "latency_ms_48"):
                row[k] = float(r[k]) if r[k] else None
            rows.append(row)
    return rows


def unknown_model_error(name: str, known: Iterable[str]) -> FerbenchError:
    """The one-line error for a name the zoo does not have, with up to 3 close matches from ``known``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else " See `ferbench models list`."
    return FerbenchError(f"unknown model {name!r}.{hint}")


def check_model_name(name: str) -> None:
    """Refuse a model name the shipped table (every registered name and alias) does not list, before torch loads.

    A fresh table lists exactly the package's registry, so this is the registry's own answer; with a stale
    or missing table it checks nothing (:func:`ferbench.models.model_info` will). Only for processes where
    no user code registered models of its own (the CLI).

    Raises:
        FerbenchError: ``unknown model 'x'. Did you mean: …?``
    """
    rows = shipped_rows("*")
    if rows is None:
        return
    known = [n for r in rows for n in (str(r["name"]), *str(r["aliases"] or "").split())]
    if name not in known:
        raise unknown_model_error(name, known)


def write_csv(rows: list[dict[str, object]], out: Path) -> None:
    """Write cost rows (:data:`COLUMNS`) to ``out`` atomically."""
    from ferbench.persist.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]))
                    for k in COLUMNS})
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, buf.getvalue())


def write_cost_table(rows: list[dict[str, object]]) -> None:
    """Ship ``rows`` as :data:`COST_TABLE`, stamped with the current :func:`models_sources_sha1`."""
    from ferbench.persist.atomic import atomic_write_text

    write_csv(rows, COST_TABLE)
    atomic_write_text(COST_TABLE_SOURCES, json.dumps({"sources_sha1": models_sources_sha1()}) + "\n")
