"""Run and study reports render as real HTML and carry config, wall time, machine and paper numbers."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from ferbench.report.context import fmt_duration, markdown_to_html


class Tags(HTMLParser):
    """Counts tags and collects the text of each ``<code>`` / ``<td>``."""

    def __init__(self) -> None:
        super().__init__()
        self.count: dict[str, int] = {}
        self.imgs: list[str] = []
        self.code: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(dict(attrs)["src"] or "")
        self._in_code = self._in_code or tag == "code"

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.code.append(data)


def parse(page: str) -> Tags:
    t = Tags()
    t.feed(page)
    return t


def test_markdown_to_html_renders_tables_lists_code_and_images() -> None:
    md = "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- x\n- y\n\n```yaml\nmodel: {name: m}\n```\n\n![cap](f.png)\n"
    t = parse(markdown_to_html(md, "t"))
    assert t.count["table"] == 1 and t.count["th"] == 2 and t.count["td"] == 2
    assert t.count["ul"] == 1 and t.count["li"] == 2 and t.count["pre"] == 1 and t.imgs == ["f.png"]
    assert "model: {name: m}" in "".join(t.code)


def test_fmt_duration() -> None:
    assert (fmt_duration(414.2), fmt_duration(3725), fmt_duration(5.25), fmt_duration(None)) == \
        ("6 min 54 s", "1 h 02 min", "5.2 s", "–")


def test_run_report_has_config_wall_time_machine_and_paper_numbers(tiny_root: Path, tmp_path: Path) -> None:
    from ferbench.report.runs import write_report
    from ferbench.train.loop import train

    run = train("protocols/seed000.yaml", tmp_path / "r", progress=False, overrides=[
        f"data.root={tiny_root}", "model.name=fer_vgg_s", "preprocessing.channels=1", "train.epochs=2",
        "train.batch_size=32", "train.early_stopping=0", "train.device=cpu"])
    machine = json.loads((run / "machine.json").read_text())
    assert machine["device"] == "cpu" and machine["cpu_count"] >= 1 and machine["torch"]
    md = write_report([run], tmp_path / "rep").read_text()
    page = (tmp_path / "rep" / "report.html").read_text()
    t = parse(page)
    assert t.count["table"] >= 3 and t.count["td"] > 30 and "|---" not in page
    assert all((tmp_path / "rep" / src).is_file() for src in t.imgs) and len(t.imgs) == 3  # 2 confusion matrices + curves
    code = "".join(t.code)
    assert "name: fer_vgg_s" in code and "device: cpu" in code  # the resolved config
    assert "wall time" in md and "machine: " in md and machine["cpu"] in md and "images/s" in md
    acc = json.loads((run / "eval_PrivateTest.json").read_text())["accuracy"]
    # seed 002 Table 2, Shallow CNN on FER2013's 7,178 test images: 0.6839, with ours and the difference
    assert f"| seed 002 | 2 | Shallow CNN | 48x48 gray | 0.6839 | {acc:.4f} | {100 * (acc - 0.6839):+.2f} pt |" in md
    assert "seed 002 = *Emotions Classification (Zekun Li)*" in md


def test_study_report_html_has_context(tiny_root: Path, tmp_path: Path) -> None:
    from test_sweep import _study

    from ferbench.report.study import write_study_report
    from ferbench.sweep.executors import run_study

    p = _study(tmp_path, "grid:\n  train.class_weights: [none, simple]\n")
    run_study(p, tmp_path / "study", data_root=tiny_root, log=lambda s: None)
    md = write_study_report(tmp_path / "study" / "results.db", tmp_path / "rep", measure_latency=False).read_text()
    assert "## How it was run" in md and "training wall time" in md and "machine (2 trials)" in md
    t = parse((tmp_path / "rep" / "report.html").read_text())
    assert t.count["table"] >= 3 and t.count.get("ul", 0) >= 1
    code = "".join(t.code)
    assert "name: lenet5" in code and "class_weights" not in code  # shared keys only; the grid varies the rest
    assert all((tmp_path / "rep" / src).is_file() for src in t.imgs) and t.imgs
