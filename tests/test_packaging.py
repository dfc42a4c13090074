"""A plain (non-editable) install works from any folder: configs and weights ship inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.environ.get("FERBENCH_SKIP_PACKAGING") == "1", reason="FERBENCH_SKIP_PACKAGING=1")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target T <checkout>``: a wheel build of this checkout, dependencies from the venv."""
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (target / "ferbench" / "configs" / "quickstart.yaml").is_file()
    assert (target / "ferbench" / "weights" / "default.safetensors").is_file()
    assert (target / "ferbench" / "models" / "cost_table.csv").is_file()  # `models list` reads it
    assert (target / "ferbench" / "models" / "cost_table.json").is_file()  # and its freshness stamp
    return target


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed), "FERBENCH_CACHE": str(cwd / "cache")}
    code = "import sys, ferbench.cli.main as m; sys.exit(m.main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_installed_package_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    r = subprocess.run([sys.executable, "-c", "import ferbench; print(ferbench.__file__)"], capture_output=True,
                       text=True, cwd=tmp_path, env=env)
    assert r.stdout.strip().startswith(str(installed))


def test_quickstart_help_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    r = _run(installed, tmp_path, "quickstart", "--help")
    assert r.returncode == 0, r.stderr
    assert "quickstart" in r.stdout.lower()


def test_train_a_shipped_config_by_name_from_an_empty_folder(installed: Path, tmp_path: Path,
                                                             tiny_root: Path) -> None:
    r = _run(installed, tmp_path, "train", "quickstart", "--out", str(tmp_path / "run"), "--data-root",
             str(tiny_root), "--set", "train.epochs=1", "--set", "train.batch_size=32")
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert (tmp_path / "run" / "eval_PrivateTest.json").is_file()
