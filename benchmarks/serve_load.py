"""Bounded load test of ``ferbench serve`` on loopback, good and bad requests mixed: latency, errors, memory.

    nice -n 10 .venv/bin/python benchmarks/serve_load.py [--model default] [--requests 1000 --concurrency 8]
        [--bad 0.1] [--data-root ../shared/data] [--json OUT]

Starts the real server (``ferbench serve``, uvicorn) in a subprocess on 127.0.0.1 and a free port. Good
requests are real faces: skimage's astronaut photo and FER2013 test faces (upscaled 48 → 192 px, pasted on a
640×480 grey frame), as JPEGs, sent to ``POST /predict`` (3 of 4) and ``POST /predict/batch`` (4 images,
1 of 4). A fraction ``--bad`` of the requests are bad inputs, one kind after the other:

* ``bomb``: a 1-bit PNG declaring 7000×7000 = 49 MP in ~6 KB (expected 413),
* ``bomb_batch``: 8 of them in one batch (expected 200 with a 413 per file),
* ``chunked``: a 12 MB body streamed chunked, no Content-Length (expected 413, or the connection cut),
* ``corrupt``: random bytes named .png (400); ``truncated``: half a JPEG (400); ``text``: text/plain (415).

Prints a table per kind (count, expected answers, p50/p95/p99 ms) and the server's RSS before (after warm-up),
after, and its peak (``VmHWM``). Targets: 0 failed good requests, RSS growth ≤ 100 MB, peak RSS ≤ 1.5 GB.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

GOOD_KINDS = ("predict", "batch")
BAD_KINDS = ("bomb", "bomb_batch", "chunked", "corrupt", "truncated", "text")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MB, from /proc."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":")
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def jpeg(a: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def real_faces(data_root: str | None, n: int = 7, keep: Any = None) -> list[bytes]:
    """JPEGs with one real face each: the astronaut photo + the first ``n`` FER2013 PrivateTest faces,
    upscaled 48 → 192 px and pasted on a 640×480 grey frame, for which ``keep(jpeg)`` holds (the server
    finds the face)."""
    import cv2
    from skimage import data

    out = [jpeg(data.astronaut())]
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from ferbench.data.fer2013 import find_fer2013_csv

        path = find_fer2013_csv(data_root)
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as f:
            next(f)
            for line in f:
                lab, pix, usage = line.rstrip("\n").split(",")
                if usage != "PrivateTest":
                    continue
                face = np.array(pix.split(), np.uint8).reshape(48, 48)
                frame = np.full((480, 640), 128, np.uint8)
                frame[100:292, 200:392] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
                enc = jpeg(frame)
                if keep is not None and not keep(enc):
                    continue
                out.append(enc)
                if len(out) > n:
                    break
    except Exception as e:  # no FER2013: the astronaut alone (still a real face)
        print(f"note: no FER2013 faces ({e}); good requests use the astronaut photo only", file=sys.stderr)
    return out


def bomb_png(side: int = 7000) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bad", type=float, default=0.1, help="fraction of bad requests")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen([sys.executable, "-m", "ferbench.cli.main", "serve", "--model", args.model,
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            if server.poll() is not None:
                sys.exit(f"server exited: {server.stderr.read().decode()[-500:] if server.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        def server_finds_face(b: bytes) -> bool:
            r = httpx.post(f"{url}/predict", files={"file": ("f.jpg", b, "image/jpeg")}, timeout=60)
            return r.status_code == 200 and len(r.json()["faces"]) == 1

        faces = real_faces(args.data_root, keep=server_finds_face)
        print(f"{len(faces)} real face images ({len(faces) - 1} FER2013 PrivateTest faces + the astronaut)")
        bomb = bomb_png()
        rng = np.random.default_rng(0)
        corrupt = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
        client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.concurrency))

        def good_answer(r: httpx.Response, kind: str) -> bool:
            if r.status_code != 200:
                return False
            j = r.json()
            items = j["results"] if kind == "batch" else [j]
            return all("faces" in x and len(x["faces"]) >= 1 for x in items)

        def one(i: int) -> tuple[str, float, bool, str]:
            """Request ``i`` → (kind, seconds, answered as expected, note)."""
            n_bad = int(round(1 / args.bad)) if args.bad > 0 else 0
            if n_bad and i % n_bad == n_bad - 1:
                kind = BAD_KINDS[(i // n_bad) % len(BAD_KINDS)]
            else:
                kind = "batch" if i % 4 == 3 else "predict"
            f = faces[i % len(faces)]
            t = time.perf_counter()
            try:
                if kind == "predict":
                    r = client.post(f"{url}/predict", files={"file": ("f.jpg", f, "image/jpeg")})
                    ok = good_answer(r, kind)
                elif kind == "batch":
                    files = [("files", (f"f{k}.jpg", faces[(i + k) % len(faces)], "image/jpeg")) for k in range(4)]
                    r = client.post(f"{url}/predict/batch", files=files)
                    ok = good_answer(r, kind)
                elif kind == "bomb":
                    r = client.post(f"{url}/predict", files={"file": ("bomb.png", bomb, "image/png")})
                    ok = r.status_code == 413 and "decompression bomb" in r.json()["error"]
                elif kind == "bomb_batch":
                    r = client.post(f"{url}/predict/batch",
                                    files=[("files", (f"b{k}.png", bomb, "image/png")) for k in range(8)])
                    ok = r.status_code == 200 and all(x.get("status") == 413 for x in r.json()["results"])
                elif kind == "chunked":
                    def body() -> object:
                        yield (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
                               b"Content-Type: image/png\r\n\r\n")
                        block = b"\0" * 65536
                        for _ in range(12 * 16):
                            yield block
                    try:
                        r = client.post(f"{url}/predict", content=body(),
                                        headers={"content-type": "multipart/form-data; boundary=b"})
                        ok = r.status_code == 413 and list(r.json()) == ["error"]
                    except httpx.TransportError:  # cut mid-upload after the 413: refused as well
                        ok = True
                elif kind == "corrupt":
                    r = client.post(f"{url}/predict", files={"file": ("c.png", corrupt, "image/png")})
                    ok = r.status_code == 400 and list(r.json()) == ["error"]
                elif kind == "truncated":
                    r = client.post(f"{url}/predict", files={"file": ("t.jpg", f[:len(f) // 2], "image/jpeg")})
                    ok = r.status_code == 400 and list(r.json()) == ["error"]
                else:
                    r = client.post(f"{url}/predict", files={"file": ("a.txt", b"hello", "text/plain")})
                    ok = r.status_code == 415 and list(r.json()) == ["error"]
                note = "" if ok else f"HTTP {r.status_code}: {r.text[:160]}"
            except httpx.HTTPError as e:
                ok, note = False, f"{type(e).__name__}: {e}"
            return kind, time.perf_counter() - t, ok, note

        with ThreadPoolExecutor(args.concurrency) as ex:  # warm-up, not timed: model, detector, worker threads
            warm = list(ex.map(one, range(4 * args.concurrency)))
        if not all(w[2] for w in warm):
            print(f"note: unexpected warm-up answers: {[w[3] for w in warm if not w[2]][:3]}", file=sys.stderr)
        rss0, _ = rss_mb(server.pid)
        t0 = time.perf_counter()
        peak_seen = rss0
        res = []
        with ThreadPoolExecutor(args.concurrency) as ex:
            futs = [ex.submit(one, i) for i in range(args.requests)]
            while not all(f.done() for f in futs):
                peak_seen = max(peak_seen, rss_mb(server.pid)[0])
                time.sleep(0.2)
            res = [f.result() for f in futs]
        wall = time.perf_counter() - t0
        time.sleep(1.0)
        rss1, hwm = rss_mb(server.pid)

        by: dict[str, list[tuple[float, bool, str]]] = defaultdict(list)
        for kind, s, ok, note in res:
            by[kind].append((s, ok, note))
        rows = []
        print(f"{'kind':<11} {'n':>5} {'expected':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        for kind in (*GOOD_KINDS, *BAD_KINDS):
            if kind not in by:
                continue
            lat = np.array([x[0] for x in by[kind]]) * 1000
            n_ok = sum(x[1] for x in by[kind])
            row = {"kind": kind, "n": len(lat), "expected": n_ok, "p50_ms": float(np.percentile(lat, 50)),
                   "p95_ms": float(np.percentile(lat, 95)), "p99_ms": float(np.percentile(lat, 99))}
            rows.append(row)
            print(f"{kind:<11} {row['n']:>5} {n_ok:>8} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                  f"{row['p99_ms']:>8.1f}")
        errors = [(k, note) for k, _, ok, note in res if not ok]
        for k, note in errors[:20]:
            print(f"unexpected answer ({k}): {note}")
        good = [x for k in GOOD_KINDS for x in by.get(k, [])]
        glat = np.array([x[0] for x in good]) * 1000
        out = {"requests": args.requests, "concurrency": args.concurrency, "bad_fraction": args.bad,
               "wall_s": wall, "requests_per_s": args.requests / wall,
               "good_failed": sum(not x[1] for x in good), "bad_unexpected": sum(1 for k, _ in errors
                                                                               if k in BAD_KINDS),
               "good_p50_ms": float(np.percentile(glat, 50)), "good_p95_ms": float(np.percentile(glat, 95)),
               "good_p99_ms": float(np.percentile(glat, 99)), "rss_before_mb": rss0, "rss_after_mb": rss1,
               "rss_growth_mb": rss1 - rss0, "rss_peak_mb": max(hwm, peak_seen), "kinds": rows,
               "load_avg": os.getloadavg()}
        print(json.dumps({k: v for k, v in out.items() if k != "kinds"}, indent=1))
        verdict = (out["good_failed"] == 0 and out["rss_growth_mb"] <= 100 and out["rss_peak_mb"] <= 1536)
        print(f"targets (0 failed good requests, RSS growth <= 100 MB, peak <= 1.5 GB): "
              f"{'met' if verdict else 'NOT met'}")
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    from _script import run  # benchmarks/ on sys.path

    run(main)
