"""HTTP service: every endpoint and every error through FastAPI's TestClient; concurrent requests."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_deploy import CLASSES, make_checkpoint

from ferbench.deploy.recognizer import Recognizer
from ferbench.deploy.serve import create_app


def png(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    return Recognizer.load(make_checkpoint(tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="module")
def client(rec: Recognizer) -> TestClient:
    """Whole-image mode (no detection): random images always give one 'face'."""
    return TestClient(create_app(rec, max_bytes=20_000, max_pixels=200_000, max_files=3, detect=False))


def test_health_models_and_page(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["backend"] == "torch"
    m = client.get("/models").json()
    assert m["models"][0]["classes"] == CLASSES and m["models"][0]["architecture"] == "shallow_cnn_s002"
    assert m["limits"] == {"max_bytes": 20_000, "max_pixels": 200_000, "max_files": 3,
                           "max_request_pixels": 50_000_000, "max_inflight_pixels": 100_000_000}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "getUserMedia" in page.text and 'fetch("predict"' in page.text


def test_predict_returns_faces_with_probs(client: TestClient, rec: Recognizer) -> None:
    r = client.post("/predict", files={"file": ("a.png", png(), "image/png")})
    assert r.status_code == 200
    j = r.json()
    assert (j["width"], j["height"], j["no_face"]) == (64, 48, False) and len(j["faces"]) == 1
    f = j["faces"][0]
    assert f["box"] == [0, 0, 64, 48] and f["label"] in CLASSES
    assert sum(f["probs"].values()) == pytest.approx(1, abs=1e-4)
    direct = rec.predict(np.asarray(Image.open(io.BytesIO(png()))), color="rgb", detect=False)[0]
    assert f["label"] == direct.label and f["probs"][direct.label] == pytest.approx(direct.confidence, abs=1e-5)


def test_predict_with_detection_reports_no_face(rec: Recognizer) -> None:
    c = TestClient(create_app(rec))
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 120, 120)).save(buf, "JPEG")
    j = c.post("/predict", files={"file": ("flat.jpg", buf.getvalue(), "image/jpeg")}).json()
    assert j["no_face"] is True and j["faces"] == []


def test_batch_mixes_results_and_per_file_errors(client: TestClient) -> None:
    files = [("files", ("a.png", png(seed=1), "image/png")), ("files", ("bad.png", b"nope", "image/png")),
             ("files", ("b.png", png(seed=2), "image/png"))]
    r = client.post("/predict/batch", files=files)
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x.get("file") for x in res] == ["a.png", "bad.png", "b.png"]
    assert res[1]["status"] == 400 and "bad.png: not a readable image" in res[1]["error"]
    assert len(res[0]["faces"]) == 1 and len(res[2]["faces"]) == 1
    single = client.post("/predict", files={"file": ("a.png", png(seed=1), "image/png")}).json()
    assert res[0]["faces"][0]["probs"] == pytest.approx(single["faces"][0]["probs"], abs=1e-5)


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"files": {"file": ("a.txt", b"hello", "text/plain")}}, 415, "a.txt: unsupported content type 'text/plain'"),
    ({"files": {"file": ("c.png", b"\x89PNG\r\n\x1a\nxx", "image/png")}}, 400, "c.png: not a readable image"),
    ({"files": {"file": ("e.png", b"", "image/png")}}, 400, "e.png: empty file"),
    ({"files": {"other": ("a.png", b"x", "image/png")}}, 400, "bad request: expected multipart/form-data with "
                                                             "field(s) file"),
    ({"data": {"file": "not a file"}}, 400, "bad request"),
])
def test_predict_errors(client: TestClient, kwargs: dict, status: int, message: str) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == status and r.json()["error"].startswith(message), r.json()


def test_size_and_pixel_limits(client: TestClient) -> None:
    big = b"\x00" * 50_000  # over max_bytes=20 000: refused from Content-Length, before parsing
    r = client.post("/predict", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "over the 20,000-byte limit" in r.json()["error"]
    buf = io.BytesIO()
    Image.new("L", (1000, 1000)).save(buf, "PNG")  # small file (compresses well), 1 M pixels > 200 000
    assert len(buf.getvalue()) < 20_000
    r = client.post("/predict", files={"file": ("wide.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and "image too large (1000x1000 = 1,000,000 pixels; limit 200,000)" in r.json()["error"]
    files = [("files", (f"{i}.png", png(seed=i), "image/png")) for i in range(4)]
    r = client.post("/predict/batch", files=files)
    assert r.status_code == 413 and r.json()["error"] == "4 files in one request; the limit is 3"


def test_oversized_body_without_content_length(client: TestClient) -> None:
    """A chunked upload skips the header check; the per-file read limit still refuses it."""
    from ferbench.deploy.serve import ApiError, _read_upload

    class Up:
        filename, content_type, file = "x.png", "image/png", io.BytesIO(b"\x00" * 30_000)

    with pytest.raises(ApiError) as e:
        _read_upload(Up(), 20_000, 1000)  # type: ignore[arg-type]
    assert e.value.status == 413 and e.value.message == "x.png: file larger than the 20,000-byte limit"


def test_concurrent_requests_are_safe(client: TestClient) -> None:
    imgs = [png(seed=i % 4) for i in range(32)]

    def call(b: bytes) -> dict:
        r = client.post("/predict", files={"file": ("a.png", b, "image/png")})
        assert r.status_code == 200
        return r.json()["faces"][0]["probs"]

    with ThreadPoolExecutor(8) as ex:
        out = list(ex.map(call, imgs))
    for i, probs in enumerate(out):
        assert probs == pytest.approx(out[i % 4], abs=1e-6)


def test_cli_serve_fails_fast_on_bad_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from ferbench.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ferbench", "serve", "--model", str(tmp_path / "none")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "no such model" in capsys.readouterr().err


# -- hardening: streamed byte cap, pixel budgets, one error shape, timeouts, offline docs ---------
def bomb_png(side: int = 7000) -> bytes:
    """A 1-bit PNG of ``side``² pixels: a few KB that would decode to side² × 3 bytes of RGB."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def multipart(name: str, data: bytes, boundary: str = "xyzzy") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_chunked_body_is_cut_as_it_streams(client: TestClient) -> None:
    """No Content-Length (a generator body is sent chunked); TestClient delivers it as one message, so this
    checks the count and the answer; the real-server test below checks it stops reading mid-stream."""
    def chunks() -> object:
        body = multipart("big.png", b"\x00" * 200_000)
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    r = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyzzy"})
    assert r.status_code == 413 and r.json()["error"].startswith("request body over the 20,000-byte limit")
    assert r.headers["connection"] == "close"
    ok = client.post("/predict", content=iter([multipart("a.png", png())]),
                     headers={"content-type": "multipart/form-data; boundary=xyzzy"})
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1  # a small chunked upload still works


def test_bomb_pngs_are_refused_from_their_header(rec: Recognizer) -> None:
    import tracemalloc

    c = TestClient(create_app(rec, detect=False))
    bomb = bomb_png()
    assert len(bomb) < 20_000
    tracemalloc.start()
    r = c.post("/predict/batch", files=[("files", (f"b{i}.png", bomb, "image/png")) for i in range(8)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.status_code == 200
    for x in r.json()["results"]:
        assert x["status"] == 413 and "7000x7000 = 49,000,000 pixels in a" in x["error"]
        assert "decompression bomb" in x["error"]
    assert peak < 30e6  # nothing near 8 × 147 MB was decoded (Python-level allocations)


def test_request_pixel_total_is_capped(rec: Recognizer) -> None:
    c = TestClient(create_app(rec, max_pixels=100_000, max_request_pixels=150_000, detect=False))
    files = [("files", (f"{i}.png", png(300, 200, seed=i), "image/png")) for i in range(3)]  # 3 × 60 000
    r = c.post("/predict/batch", files=files)
    assert r.status_code == 413 and r.json() == {"error": "the request's images total 180,000 pixels; "
                                                          "the limit is 150,000"}
    assert c.post("/predict/batch", files=files[:2]).status_code == 200


def test_pixel_budget_waits_then_refuses() -> None:
    from ferbench.deploy.serve import PixelBudget

    b = PixelBudget(100)
    assert b.acquire(80, 0.1) and not b.acquire(30, 0.05)
    b.release(80)
    assert b.acquire(30, 0.05) and b.used == 30


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("get", "/nope", 404, "not found: GET /nope (see /docs)"),
    ("get", "/predict", 405, "method GET not allowed on /predict (allowed: POST)"),
    ("post", "/predict", 400, "bad request: expected multipart/form-data with field(s) file"),
])
def test_every_error_has_one_shape(client: TestClient, method: str, path: str, status: int, message: str) -> None:
    r = getattr(client, method)(path)
    assert r.status_code == status and r.json() == {"error": message}


def test_docs_work_offline_and_schema_is_typed(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "/static-offline-docs/swagger-ui-bundle.js" in page
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    redoc = client.get("/redoc").text
    assert "cdn" not in redoc.lower() and client.get("/static-offline-docs/redoc.standalone.js").status_code == 200
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/predict"]["post"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictOut"}
    assert ok["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    face = spec["components"]["schemas"]["FaceOut"]["properties"]
    assert face["box"]["type"] == "array" and face["confidence"]["type"] == "number"


def test_stalled_and_chunked_uploads_on_a_real_server(rec: Recognizer) -> None:
    import contextlib
    import select
    import socket
    import threading
    import time

    import uvicorn

    from ferbench.deploy.serve import _h11_protocol

    def read_all(c: socket.socket) -> str:  # until the server closes (it sends connection: close)
        data = b""
        with contextlib.suppress(ConnectionResetError):  # a reset after the answer (unread body) ends it too
            while chunk := c.recv(65536):
                data += chunk
        return data.decode()

    app = create_app(rec, max_bytes=20_000, detect=False, read_timeout=0.5, body_timeout=2.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           http=_h11_protocol(1.0)))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:  # body announced, then stalls
            c.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 5000\r\n\r\n--b\r\n")
            t0 = time.perf_counter()
            answer = read_all(c)
            assert time.perf_counter() - t0 < 5
        assert answer.startswith("HTTP/1.1 408") and '{"error":"request body not received in time' in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:  # chunked, no Content-Length
            c.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            head = multipart("big.png", b"", boundary="b")[:-9]  # part headers; the file's bytes follow
            c.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
            sent = 0
            with contextlib.suppress(OSError):  # the server may close while we still send
                while sent < 400_000 and not select.select([c], [], [], 0.05)[0]:
                    c.sendall(b"1000\r\n" + b"\x00" * 4096 + b"\r\n")
                    sent += 4096
            answer = read_all(c)
        assert answer.startswith("HTTP/1.1 413") and "request body over the 20,000-byte limit" in answer
        assert 20_000 < sent < 400_000  # answered mid-stream: the rest of the body was never read
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:  # headers never finished
            c.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            t0 = time.perf_counter()
            assert c.recv(65536) == b""  # closed by the server
            assert time.perf_counter() - t0 < 5
    finally:
        server.should_exit = True
        th.join(10)


def test_requests_over_the_concurrency_limit_get_a_json_503() -> None:
    import asyncio

    import httpx

    from ferbench.deploy.serve import ConcurrencyLimit

    release = asyncio.Event()

    async def slow_app(scope, receive, send):  # noqa: ANN001
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> tuple[int, int, dict]:
        app = ConcurrencyLimit(slow_app, limit=1)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = asyncio.create_task(c.get("/"))
            await asyncio.sleep(0.05)
            busy = await c.get("/")
            release.set()
            ok = await first
        return ok.status_code, busy.status_code, busy.json()

    ok, busy, body = asyncio.run(main())
    assert ok == 200 and busy == 503 and set(body) == {"error"} and "busy" in body["error"]
