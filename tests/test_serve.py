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
    assert m["limits"] == {"max_bytes": 20_000, "max_pixels": 200_000, "max_files": 3}
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
