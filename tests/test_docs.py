"""Documentation the code relies on: every ``docs/protocol.md §N.M`` citation names a real section."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "protocol.md"
SEARCHED = ("src", "tests", "configs", "benchmarks", "scripts")
TEXT = {".py", ".yaml", ".yml", ".md", ".toml", ".txt", ".html", ".sh"}
CITATION = re.compile(r"docs/protocol\.md §(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", re.MULTILINE)


def _sections() -> set[str]:
    return set(HEADING.findall(PROTOCOL.read_text(encoding="utf-8")))


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "MODEL_CARD.md"]
    for top in SEARCHED:
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in TEXT
                  and not any(part.startswith(".venv") for part in p.parts)]  # also benchmarks/peers/.venv-fer
    return [p for p in files if p.exists() and p != Path(__file__).resolve()]


def test_protocol_sections_are_numbered() -> None:
    sections = _sections()
    assert {str(n) for n in range(11)} <= sections  # 0 … 10
    assert {f"2.{i}" for i in range(19)} <= sections  # the model zoo, 2.0 … 2.18
    assert {"1.5", "1.7", "1.8", "3.1", "3.2", "3.3", "3.4", "4.5"} <= sections


def test_every_citation_points_at_a_section() -> None:
    sections = _sections()
    bad, n = [], 0
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in CITATION.finditer(text):
            n += 1
            for sec in filter(None, m.groups()):
                if sec not in sections:
                    line = text.count("\n", 0, m.start()) + 1
                    bad.append(f"{path.relative_to(ROOT)}:{line}: §{sec}")
        # a section sign must always say which document it cites
        for m in re.finditer("§", text):
            if not text[max(0, m.start() - 17):m.start()].endswith("docs/protocol.md "):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(ROOT)}:{line}: § without 'docs/protocol.md'")
    assert n >= 40, n
    assert not bad, "\n".join(bad)


def test_no_comment_points_at_an_issue_number() -> None:
    pattern = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
    hits = [
        f"{p.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        for p in _files() if p.suffix != ".md" or "results" in p.parts
        for text in [p.read_text(encoding="utf-8", errors="replace")]
        for m in pattern.finditer(text)
    ]
    assert not hits, hits
