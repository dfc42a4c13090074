"""The layering rule of docs/architecture.md, checked on the source: every import (module-level or inside a
function) goes to the same layer or a lower one, and no import circle spans more than two files."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ferbench"

# lowest first; a module may import its own layer and the layers listed before it
LAYERS: list[tuple[str, ...]] = [
    ("errors", "version", "config", "persist", "progress", "device"),
    ("data",),
    ("faces",),
    ("models",),
    ("methods",),
    ("loader",),
    ("evaluate",),
    ("train",),
    ("sweep",),
    ("report",),
    ("deploy",),
    ("explain",),
    ("cli",),
]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = f
    return mods


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m:
                    edges[m].add(t)
    return edges


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:  # ferbench/__init__.py: the lazy public facade may name any layer
        return None
    return RANK.get(parts[1], -1)


def test_every_package_has_a_layer() -> None:
    top = {p.name if p.is_dir() else p.stem for p in SRC.iterdir()
           if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert top - set(RANK) == set(), "add new packages to LAYERS here and in docs/architecture.md"


def test_imports_only_go_down() -> None:
    mods = _modules()
    bad = []
    for m, targets in _edges(mods).items():
        lm = _layer(m)
        if lm is None:
            continue
        for t in targets:
            lt = _layer(t)
            if lt is None or lt > lm:
                bad.append(f"{m} -> {t}")
    assert bad == []


def test_no_import_circle_of_more_than_two_files() -> None:
    edges = _edges(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in edges:
        if v not in index:
            visit(v)
    assert [sorted(c) for c in comps if len(c) > 2] == []
