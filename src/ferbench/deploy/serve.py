"""HTTP service: FastAPI app around one :class:`Recognizer` (loaded once, shared by all requests).

Endpoints: ``POST /predict`` (multipart field ``file``), ``POST /predict/batch`` (fields ``files``),
``GET /health``, ``GET /models``, ``GET /`` (web page: upload or browser webcam).
Errors are JSON ``{"error": "<one line>"}`` with a 4xx status. Endpoints are plain ``def``: FastAPI
runs them in its thread pool; forward passes are thread-safe (see ``Recognizer``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from ferbench.data.images import MAX_PIXELS, ImageTooLarge, decode_image_bytes
from ferbench.deploy.recognizer import Recognizer
from ferbench.errors import FerbenchError
from ferbench.version import __version__

STATIC = Path(__file__).resolve().parent / "static"
MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 16
CONTENT_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff",
                 "image/x-portable-graymap", "application/octet-stream"}


class ApiError(Exception):
    """An HTTP error with a one-line message (returned as ``{"error": message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _read_upload(up: UploadFile, max_bytes: int, max_pixels: int) -> tuple[str, Any]:
    """Check type/size and decode one upload → (name, RGB uint8 array)."""
    name = up.filename or "upload"
    ctype = (up.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype not in CONTENT_TYPES:
        raise ApiError(415, f"{name}: unsupported content type {ctype!r} (send a JPEG/PNG/WebP/BMP image)")
    data = up.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, f"{name}: file larger than the {max_bytes:,}-byte limit")
    try:
        return name, decode_image_bytes(data, name, max_pixels)
    except ImageTooLarge as e:
        raise ApiError(413, str(e)) from None
    except FerbenchError as e:
        raise ApiError(400, str(e)) from None


def _result(rgb: Any, faces: list[Any], name: str) -> dict[str, Any]:
    h, w = rgb.shape[:2]
    return {"file": name, "width": w, "height": h, "no_face": not faces, "faces": [f.to_dict() for f in faces]}


def create_app(recognizer: Recognizer, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               max_files: int = MAX_FILES, detect: bool = True) -> FastAPI:
    """The FastAPI app serving ``recognizer`` (already loaded: the model loads once per process)."""
    app = FastAPI(title="ferbench", version=__version__,
                  description="Facial expression recognition: POST an image, get faces with labels and probabilities.")
    app.state.recognizer = recognizer
    index_html = (STATIC / "index.html").read_text()
    # a multipart body carries headers/boundaries around the file: allow a little slack per file
    body_limit = max_files * (max_bytes + 16_384)

    @app.exception_handler(ApiError)
    def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        missing = [".".join(str(p) for p in err.get("loc", ())[1:]) for err in e.errors()]
        return JSONResponse({"error": f"bad request: expected multipart/form-data with field(s) "
                                      f"{', '.join(m for m in missing if m) or 'file'}"}, status_code=400)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit():
            limit = body_limit if request.url.path.endswith("/batch") else max_bytes + 16_384
            if int(length) > limit:
                return JSONResponse({"error": f"request body of {int(length):,} bytes is over the "
                                              f"{max_bytes:,}-byte limit"}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return index_html

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": True, "backend": recognizer.backend, "version": __version__}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"models": [recognizer.info()], "limits": {"max_bytes": max_bytes, "max_pixels": max_pixels,
                                                         "max_files": max_files}}

    @app.post("/predict")
    def predict(file: UploadFile = File(..., description="an image (JPEG, PNG, WebP, BMP)")) -> dict[str, Any]:
        t0 = time.perf_counter()
        name, rgb = _read_upload(file, max_bytes, max_pixels)
        faces = recognizer.predict(rgb, color="rgb", detect=detect)
        return {**_result(rgb, faces, name), "ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.post("/predict/batch")
    def predict_batch(files: list[UploadFile] = File(..., description="images")) -> dict[str, Any]:
        t0 = time.perf_counter()
        if len(files) > max_files:
            raise ApiError(413, f"{len(files)} files in one request; the limit is {max_files}")
        results: list[dict[str, Any] | None] = [None] * len(files)
        ok: list[tuple[int, str, Any]] = []
        for i, up in enumerate(files):
            try:
                name, rgb = _read_upload(up, max_bytes, max_pixels)
                ok.append((i, name, rgb))
            except ApiError as e:
                results[i] = {"file": up.filename, "error": e.message, "status": e.status}
        preds = recognizer.predict_batch([rgb for _, _, rgb in ok], color="rgb", detect=detect)
        for (i, name, rgb), faces in zip(ok, preds, strict=True):
            results[i] = _result(rgb, faces, name)
        return {"results": results, "ms": round(1000 * (time.perf_counter() - t0), 2)}

    return app


def serve(model: str = "default", host: str = "127.0.0.1", port: int = 8000, max_bytes: int = MAX_BYTES,
          detector: str = "haar", device: str = "auto") -> None:
    """Load ``model`` once (PyTorch models on ``device``: auto | cpu | cuda) and run the app with uvicorn
    (blocks until Ctrl-C)."""
    import uvicorn

    from ferbench.device import recognizer_to

    rec = recognizer_to(Recognizer.load(model, detector=detector), device)
    app = create_app(rec, max_bytes=max_bytes)
    uvicorn.run(app, host=host, port=port, log_level="info")
