"""Bounded load test of ``ferbench serve`` on loopback: N requests, C concurrent, p50/p99 latency, errors.

    nice -n 10 .venv/bin/python benchmarks/serve_load.py --model RUN_DIR [--requests 500 --concurrency 8]

Starts the real server (uvicorn) in a subprocess on 127.0.0.1 and a free port, POSTs a 640×480
JPEG with one face (FER2013 face pasted when the data is found, else noise) to /predict, and
prints the latency percentiles, throughput and the number of non-200 answers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg_frame() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency import face_frame
    from PIL import Image

    frame, _ = face_frame(None)
    buf = io.BytesIO()
    Image.fromarray(frame[..., ::-1]).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen([sys.executable, "-m", "ferbench.cli.main", "serve", "--model", args.model,
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                sys.exit(f"server exited: {server.stderr.read().decode()[-500:] if server.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = jpeg_frame()
        first = httpx.post(f"{url}/predict", files={"file": ("f.jpg", body, "image/jpeg")}, timeout=30).json()
        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=args.concurrency))

        def one(_: int) -> tuple[float, int]:
            t = time.perf_counter()
            try:
                r = client.post(f"{url}/predict", files={"file": ("f.jpg", body, "image/jpeg")})
                code = r.status_code
            except httpx.HTTPError:
                code = -1
            return time.perf_counter() - t, code

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as ex:
            res = list(ex.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        lat = np.array([r[0] for r in res]) * 1000
        errors = sum(1 for r in res if r[1] != 200)
        out = {"requests": args.requests, "concurrency": args.concurrency, "errors": errors,
               "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
               "mean_ms": float(statistics.mean(lat)), "requests_per_s": args.requests / wall,
               "faces_in_first_answer": len(first.get("faces", []))}
        print(json.dumps(out, indent=1))
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
