"""Studies: a YAML file = a base config + a ``grid:`` (cartesian) + ``include:`` / ``exclude:`` lists.

Example (``configs/studies/seed000_quick.yaml``)::

    name: seed000_quick
    base: protocols/seed000.yaml        # a config (beside the study, in its parent or configs/) ...
    set:                                # ... plus a layer of config keys applied to every trial
      train: {epochs: 3, time_limit_min: 1.5}
    grid:                               # dotted config key -> list of values (cartesian product)
      model.name: [lenet5, fer_vgg_s]
      train.class_weights: [none]
      arch:                             # a *named axis*: each value sets several keys at once
        - {model.name: lenet5, train.lr: 1.0e-3}
        - {model.name: vgg16_in}
    include:                            # extra trials (keys not given keep the base value)
      - {model.name: fer_vgg_s, train.class_weights: simple}
    exclude:                            # drop every grid point matching all the given keys (axis names
      - {model.name: lenet5, train.class_weights: simple}   # or dotted keys of the resolved config)
    first:                              # optional run order: trials matching the first pattern run first,
      - {train.class_weights: simple}   # then the second's ...; the rest keep their order (keys unchanged)
    kfold: {k: 5}                       # optional: every trial becomes k fold trials (seed-001 protocol)
    cross_eval:                         # optional: also score every trial on these dataset splits
      - {data: ckplus, split: all}      # (added to each trial's eval.cross, which is not part of its key)
    resources: {cpus: 1, gpus: 0}       # per-trial request (Ray task / local process)
    notes:                              # optional: what is known about matching trials (dotted config keys),
      - {model.name: lenet5, note: "…"} # shown by `ferbench report --db` (e.g. the cause of a low row)

Each trial is the base config with its assignments applied; its key is the :func:`ferbench.config.config_hash`
of that resolved config (``data.root`` excluded: where the data lives is not part of the experiment).
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferbench.config import (
    CrossEvalConfig,
    config_hash,
    deep_merge,
    find_config,
    load_config,
    read_yaml,
    set_key,
)
from ferbench.errors import ConfigError, DataError

STUDY_KEYS = {"name", "description", "base", "set", "grid", "include", "exclude", "kfold", "cross_eval",
              "resources", "paper", "first", "notes"}


@dataclass
class Trial:
    """One point of a study: its assignments (``params``), resolved config and key."""

    key: str
    params: dict[str, Any]
    config: dict[str, Any]

    def label(self) -> str:
        """Short human label, e.g. ``model.name=lenet5 train.class_weights=simple``."""
        return trial_label(self.params)


@dataclass
class Study:
    """A parsed study file (see the module docstring for the format)."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    kfold: dict[str, Any] | None = None
    cross_eval: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1, "gpus": 0})
    first: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    notes: list[dict[str, Any]] = field(default_factory=list)

    def note_for(self, config: dict[str, Any]) -> str | None:
        """The ``note`` of the first ``notes:`` entry whose keys all hold in a trial's resolved ``config``."""
        return note_for(self.notes, config)

    def trials(self, data_root: str | Path | None = None) -> list[Trial]:
        """Expand grid × include − exclude (× folds) into trials, in a stable order, without duplicates."""
        points = [dict(p) for p in _cartesian(self.grid)]
        points = [p for p in points if not any(_matches(p, self.resolve(p), ex) for ex in self.exclude)]
        points += [dict(inc) for inc in self.include]
        if self.kfold:
            k = int(self.kfold.get("k", 5))
            points = [{**p, "fold": i} for p in points for i in range(k)]
        out: list[Trial] = []
        seen: set[str] = set()
        for p in points:
            cfg = self.resolve(p, data_root)
            key = trial_key(cfg)
            if key not in seen:
                seen.add(key)
                out.append(Trial(key, p, cfg))
        if self.first:  # stable: within one priority the listed order is kept
            out.sort(key=lambda t: next((i for i, pat in enumerate(self.first) if _matches(t.params, t.config, pat)),
                                        len(self.first)))
        return out

    def resolve(self, params: dict[str, Any], data_root: str | Path | None = None) -> dict[str, Any]:
        """The full config of the trial with assignments ``params``."""
        cfg = copy.deepcopy(self.base)
        for key, value in params.items():
            if key == "fold":
                kf = self.kfold or {}
                cfg["data"]["indices"] = {"kfold": int(kf.get("k", 5)), "fold": int(value),
                                          "seed": int(kf.get("seed", 10)),
                                          "subject_independent": kf.get("subject_independent")}
            elif isinstance(value, dict) and key in self.grid and not _is_config_key(cfg, key):
                for sub_key, sub_value in value.items():  # named axis: one value sets several keys
                    _assign(cfg, sub_key, sub_value)
            else:
                _assign(cfg, key, value)
        cfg["name"] = self.name
        cross = cfg.setdefault("eval", {}).setdefault("cross", [])
        for ce in self.cross_eval:  # scored by the trainer after the trial, like any run's eval.cross
            if all((c.get("data"), c.get("split", "test")) != (ce["data"], ce.get("split", "test")) for c in cross):
                cross.append(dict(ce))
        if data_root is not None:  # absolute, so a resumed run (or a Ray worker elsewhere) sees the same path
            cfg["data"]["root"] = str(Path(data_root).expanduser().resolve())
        return cfg


def note_for(notes: list[dict[str, Any]], config: dict[str, Any]) -> str | None:
    """The ``note`` of the first entry of a study's ``notes:`` whose keys all hold in the resolved ``config``."""
    for entry in notes:
        if isinstance(entry, dict) and _matches({}, config, {k: v for k, v in entry.items() if k != "note"}):
            return str(entry.get("note"))
    return None


def select_trials(trials: list[Trial], only: list[str]) -> list[Trial]:
    """The trials matching any of ``only`` (all of them when ``only`` is empty), in their order.

    Each entry is a trial key (``1c7c2c8dcc44``) or a pattern ``key=value[,key=value...]`` over axis names and
    dotted config keys, values read as YAML (``model.name=seq4conv,train.class_weights=none``), as in ``first:``.
    An entry that matches no trial is an error naming it, so a typo does not silently run nothing.
    """
    if not only:
        return trials
    import yaml

    keep: set[str] = set()
    for entry in only:
        if "=" not in entry:
            hit = [t.key for t in trials if t.key == entry.strip()]
        else:
            pattern: dict[str, Any] = {}
            for part in entry.split(","):
                k, sep, v = part.partition("=")
                if not sep or not k.strip():
                    raise ConfigError(f"--only {entry!r}: expected a trial key or key=value[,key=value]")
                pattern[k.strip()] = yaml.safe_load(v)
            hit = [t.key for t in trials if _matches(t.params, t.config, pattern)]
        if not hit:
            raise ConfigError(f"--only {entry!r} matches no trial of this study (see --dry-run for keys and labels)")
        keep.update(hit)
    return [t for t in trials if t.key in keep]


def trial_key(cfg: dict[str, Any]) -> str:
    """``config_hash`` of a resolved trial config, without ``data.root``."""
    c = copy.deepcopy(cfg)
    c["data"]["root"] = None
    return config_hash(c)


def load_study(path: str | Path) -> Study:
    """Parse a study YAML (also looked up under ``configs/``); errors name the file and the key."""
    try:
        p = find_config(str(path), None)
    except ConfigError:
        raise ConfigError(f"study {str(path)!r} not found (also looked under configs/)") from None
    raw = read_yaml(p)
    unknown = set(raw) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"{p}: unknown study key(s) {', '.join(sorted(unknown))}; "
                          f"expected {', '.join(sorted(STUDY_KEYS))}")
    base_ref = raw.get("base")
    layer = raw.get("set") or {}
    if not isinstance(layer, dict):
        raise ConfigError(f"{p}: 'set' must be a mapping of config keys")
    if base_ref is None:
        base = load_config(layer)
    elif isinstance(base_ref, dict):
        base = load_config(deep_merge(base_ref, layer))
    else:
        near = [p.parent / base_ref, p.parent.parent / base_ref]  # beside the study, or in configs/
        ref = next((str(c) for c in near if c.is_file()), str(base_ref))
        base = load_config({"extends": str(ref), **layer}) if layer else load_config(str(ref))
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"{p}: 'grid' must map each key to a non-empty list of values")
    include, exclude, first = raw.get("include") or [], raw.get("exclude") or [], raw.get("first") or []
    notes = raw.get("notes") or []
    for name, lst in (("include", include), ("exclude", exclude), ("first", first), ("notes", notes)):
        if not isinstance(lst, list) or any(not isinstance(e, dict) for e in lst):
            raise ConfigError(f"{p}: '{name}' must be a list of mappings")
    kfold = raw.get("kfold")
    if kfold is not None and not isinstance(kfold, dict):
        raise ConfigError(f"{p}: 'kfold' must be a mapping like {{k: 5}}")
    cross_eval = raw.get("cross_eval") or []
    if not isinstance(cross_eval, list) or any(not isinstance(ce, dict) or "data" not in ce
                                               or set(ce) - set(CrossEvalConfig.model_fields) for ce in cross_eval):
        raise ConfigError(f"{p}: each cross_eval entry needs 'data' (and optionally 'split', 'root')")
    if cross_eval:  # a misspelt dataset fails now, not after the first trial's training
        from ferbench.data.registry import get_spec

        for ce in cross_eval:
            try:
                get_spec(str(ce["data"]))
            except DataError as e:
                raise ConfigError(f"{p}: cross_eval: {e}") from None
    resources = {"cpus": 1, "gpus": 0, **(raw.get("resources") or {})}
    study = Study(name=str(raw.get("name") or p.stem), base=base, grid=grid, include=include, exclude=exclude,
                  kfold=kfold, cross_eval=list(cross_eval), resources=resources,
                  first=first, source=p.read_text(), notes=notes)
    for axis, values in grid.items():
        if _is_config_key(base, axis) and any(isinstance(v, dict) and any("." in str(k) for k in v) for v in values):
            raise ConfigError(f"{p}: grid axis {axis!r} is a config key; give a named axis another name")
    for axis, values in grid.items():  # validate every key now, not in the middle of a sweep
        for v in values:
            study.resolve({axis: v})
    for e in include:
        study.resolve(e)
    for e in exclude + first:
        for k in e:
            if k not in grid and not _is_config_key(base, k):
                raise ConfigError(f"{p}: exclude/first key {k!r} is neither a grid axis nor a config key")
    for e in notes:
        if not isinstance(e.get("note"), str) or len(e) < 2:
            raise ConfigError(f"{p}: each notes entry needs 'note: text' and at least one config key to match")
        bad = [k for k in e if k != "note" and not _is_config_key(base, k)]
        if bad:
            raise ConfigError(f"{p}: notes key {bad[0]!r} is not a config key (notes match resolved configs)")
    return study


def materialize(cfg: dict[str, Any]) -> dict[str, Any]:
    """Replace a compact fold spec in ``data.indices`` by the fold's index lists (seed-001 protocol).

    ``{"kfold": k, "fold": i, "seed": s, "subject_independent": b}`` → ``{"train": [...], "val": [...],
    "test": [...]}`` from :func:`ferbench.sweep.kfold.kfold_indices`. Other configs are returned unchanged.
    """
    ix = cfg["data"].get("indices")
    if not (isinstance(ix, dict) and "kfold" in ix):
        return cfg
    from ferbench.data import load_dataset
    from ferbench.sweep.kfold import kfold_indices

    ds = load_dataset(cfg["data"]["name"], cfg["data"].get("root"))
    subj = ix.get("subject_independent")
    if subj is None:
        subj = ds.subjects is not None
    if subj and ds.subjects is None:
        raise ConfigError(f"kfold.subject_independent: {ds.name} has no subject ids")
    folds = kfold_indices(ds.labels.numpy(), int(ix["kfold"]), seed=int(ix["seed"]),
                          groups=ds.subjects if subj else None)
    out = copy.deepcopy(cfg)
    out["data"]["indices"] = folds[int(ix["fold"])]
    return out


def _cartesian(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _matches(point: dict[str, Any], cfg: dict[str, Any], pattern: dict[str, Any]) -> bool:
    """True when every ``key: value`` of ``pattern`` holds for the point (axis value or resolved config key)."""
    for k, v in pattern.items():
        if k in point:
            have = point[k]
        elif _is_config_key(cfg, k):
            have = _get(cfg, k)
        else:
            return False
        if _canon(have) != _canon(v):
            return False
    return True


def _get(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _is_config_key(cfg: dict[str, Any], key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _assign(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` (validated like ``--set``) to a Python value."""
    set_key(cfg, f"{key}={json.dumps(value)}")


def trial_label(params: dict[str, Any]) -> str:
    """``{"arch": {"model.name": "lenet5", "train.lr": 0.001}, "train.class_weights": "none"}`` →
    ``arch=lenet5/0.001 train.class_weights=none`` (``base`` for no parameters)."""
    return " ".join(f"{k}={_short(v)}" for k, v in params.items()) or "base"


def _short(v: Any) -> str:
    """A named axis's entry (dotted config keys) shows its values joined by ``/``; any other mapping (such as
    ``model.kwargs``) keeps its keys: ``{stem_pool:False}``."""
    if isinstance(v, dict):
        if v and all("." in str(k) for k in v):
            return "/".join(_short(x) for x in v.values())
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()) + "}"
    return str(v)
