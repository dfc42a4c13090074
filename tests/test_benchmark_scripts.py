"""The benchmark scripts: user errors in one line; pipeline.py's composite face pool holds faces only."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import REPO
from test_registry_union import write_ckplus


def _pipeline_module():
    sys.path.insert(0, str(REPO / "benchmarks"))  # pipeline.py imports its sibling _timing.py
    try:
        spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "benchmarks" / "pipeline.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


def test_face_pool_leaves_out_what_ferplus_marks_as_not_a_face(tiny_root: Path) -> None:
    root = write_ckplus(tiny_root)  # FER2013: Training 140, PublicTest 70, PrivateTest 70 (rows 210..279)
    nf_rows, dropped_rows = {212, 250}, {230}  # majority "not a face"; no image name in FER+
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for i in range(280):
        usage = "Training" if i < 140 else "PublicTest" if i < 210 else "PrivateTest"
        votes = [0] * 9 + [10] if i in nf_rows else [6, 2, 2] + [0] * 7
        name = "" if i in dropped_rows else f"fer{i:07d}.png"
        lines.append(f"{usage},{name}," + ",".join(map(str, votes)))
    (root / "ferplus").mkdir()
    (root / "ferplus" / "fer2013new.csv").write_text("\n".join(lines) + "\n")

    pipe = _pipeline_module()
    assert sorted(np.flatnonzero(pipe.fer2013_not_faces(str(root)))) == [212, 230, 250]
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    faces, labels, src = pipe.face_pool(str(root), classes, 400, np.random.default_rng(0))
    fer_src = {s for s in src if s.startswith("fer2013")}
    assert len(fer_src) == 70 - 3  # every PrivateTest face but the three
    assert not fer_src & {f"fer2013-PrivateTest#{r - 210}" for r in nf_rows | dropped_rows}
    assert len(faces) == len(labels) == len(src)


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
