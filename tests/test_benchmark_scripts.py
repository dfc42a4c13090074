"""The benchmark scripts report user errors in one line, as the CLI does."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def test_a_benchmark_script_reports_a_user_error_in_one_line() -> None:
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "latency.py"), "--model", "nosuch"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert r.stderr.startswith("error: nosuch: no such model"), r.stderr
    assert "Traceback" not in r.stderr


def test_every_benchmark_script_runs_main_through_the_error_wrapper() -> None:
    scripts = [p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    assert len(scripts) >= 15
    bare = [p.name for p in scripts if "run(main)" not in p.read_text()]
    assert bare == []
