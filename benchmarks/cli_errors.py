"""How long the CLI takes to refuse bad input (misspelt model / dataset / checkpoint, absent data), against a
baseline commit, in one run.

    python benchmarks/cli_errors.py [--baseline ec39b91] [--reps 3]

Each case runs as ``python -m ferbench.cli.main ARGS`` with the baseline's ``src`` (a temporary ``git worktree``)
or this checkout's ``src`` first on ``PYTHONPATH``, interleaved, ``--reps`` times each; prints the median wall
time of each, the ratio, and whether both gave the same one-line error with exit code 2. Stop other jobs on the
machine first (e.g. ``pkill -STOP -f "ferbench sweep"``): the times are dominated by imports and CPU-bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cases(tmp: Path) -> list[list[str]]:
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    return [
        ["models", "info", "resnet18_dx"],
        ["train", "quickstart", "--set", "model.name=resnet18_dx", "--out", str(tmp / "t")],
        ["data", "info", "fer2031"],
        ["evaluate", "default", "--data", "fer2031", "--split", "test"],
        ["crossdomain", "--train", "fer2013", "--test", "ckplus,fer2031", "--config", "quickstart", "--out",
         str(tmp / "x")],
        ["evaluate", "defualt", "--data", "fer2013", "--split", "test"],
        ["ensemble", "default", "nosuch", "--data", "fer2013", "--split", "PrivateTest"],
        ["serve", "--model", "nosuch"],
        ["quickstart", "--data-root", str(empty), "--out", str(tmp / "q")],
    ]


def run(src: Path, args: list[str]) -> tuple[float, int, str]:
    """Wall seconds, exit code and stderr of one CLI call with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "ferbench.cli.main", *args], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=600)
    return time.perf_counter() - t, p.returncode, p.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="ec39b91", help="git revision to compare with (default: ec39b91)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = tmp / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base), a.baseline], check=True)
        try:
            print(f"baseline {a.baseline} vs this checkout; median of {a.reps}; load {os.getloadavg()[0]:.2f}")
            print("| command | baseline s | now s | ratio | same error, exit 2 |")
            print("|---|---:|---:|---:|---|")
            for args in cases(tmp):
                got: dict[str, list[tuple[float, int, str]]] = {"base": [], "now": []}
                for _ in range(a.reps):  # interleaved, so a change in load hits both
                    got["base"].append(run(base / "src", args))
                    got["now"].append(run(REPO / "src", args))
                b = statistics.median(t for t, _, _ in got["base"])
                n = statistics.median(t for t, _, _ in got["now"])
                same = {(c, e.replace(str(base), str(REPO))) for _, c, e in got["base"] + got["now"]}
                ok = len(same) == 1 and next(iter(same))[0] == 2 and "\n" not in next(iter(same))[1]
                shown = " ".join(x if "/" not in x else Path(x).name for x in args)
                print(f"| `ferbench {shown}` | {b:.2f} | {n:.2f} | {b / n:.1f}x | {'yes' if ok else same} |",
                      flush=True)
            print(f"load at the end {os.getloadavg()[0]:.2f}")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
