"""HTTP service: FastAPI app around one :class:`Recognizer` (loaded once, shared by all requests).

Endpoints: ``POST /predict`` (multipart field ``file``), ``POST /predict/batch`` (fields ``files``),
``GET /health``, ``GET /models``, ``GET /`` (web page: upload or browser webcam), ``GET /docs`` and
``GET /redoc`` (Swagger UI / ReDoc, served from the package: they work offline).

Every error, FastAPI's own 404/405/422 included, is JSON ``{"error": "<one line>"}`` with a 4xx/5xx status.
Endpoints are plain ``def``: FastAPI runs them in its thread pool; forward passes are thread-safe (see
``Recognizer``).

Memory bounds, all checked before the expensive step they protect:

* bytes: ``Content-Length`` over the limit → 413 before reading; a chunked body (no ``Content-Length``) is
  counted as it streams and cut at the limit (:class:`BodyLimit`).
* time: a body that stalls ``read_timeout`` s between chunks or takes over ``body_timeout`` s → 408;
  a connection that sends no complete request header within ``header_timeout`` s is closed (uvicorn).
* pixels: each image's size is read from its header and checked (``max_pixels``, bomb ratio) before
  decoding; a request's images may total ``max_request_pixels``; all requests together hold at most
  ``max_inflight_pixels`` decoded pixels (:class:`PixelBudget`, waits up to ``busy_timeout`` s, then
  503) and at most ``max_decodes`` images are decoded at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferbench.data.images import MAX_PIXELS, ImageTooLarge, check_pixels, decode_pil, image_size
from ferbench.deploy.recognizer import Recognizer
from ferbench.errors import FerbenchError
from ferbench.version import __version__

STATIC = Path(__file__).resolve().parent / "static"
MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 16
MAX_REQUEST_PIXELS = 50_000_000  # one request's images together (a batch of 16 × 12 MP photos is refused)
MAX_INFLIGHT_PIXELS = 100_000_000  # all requests' decoded images at once (≈ 300 MB of RGB)
MAX_DECODES = 2  # images decoded at the same time
READ_TIMEOUT = 10.0  # s without a body chunk
BODY_TIMEOUT = 60.0  # s for a whole body
HEADER_TIMEOUT = 10.0  # s for a request's header line + headers
BUSY_TIMEOUT = 30.0  # s a request waits for the pixel budget before 503
MULTIPART_SLACK = 16_384  # a multipart body carries headers/boundaries around each file
CONTENT_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff",
                 "image/x-portable-graymap", "application/octet-stream"}


class ApiError(Exception):
    """An HTTP error with a one-line message (returned as ``{"error": message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# -- response models (the OpenAPI schema of /docs) ----------------------------------------------------------
class FaceOut(BaseModel):
    """One detected face (or the whole image with detection off)."""

    box: list[int] = Field(description="x1, y1, x2, y2 in pixels of the uploaded image", min_length=4, max_length=4)
    label: str = Field(description="most probable class")
    confidence: float = Field(description="probability of `label`, 0..1")
    score: float | None = Field(None, description="detector's own score (not a probability; Haar: level weight)")
    probs: dict[str, float] = Field(description="class → probability; sums to 1")
    landmarks: list[list[float]] | None = Field(None, description="detector landmarks (x, y), when it has them")


class ImageOut(BaseModel):
    """Faces found in one image."""

    file: str | None
    width: int
    height: int
    no_face: bool
    faces: list[FaceOut]


class PredictOut(ImageOut):
    """``POST /predict``: one image's faces and the server-side time."""

    ms: float = Field(description="server time for this request in milliseconds")


class FileError(BaseModel):
    """One file of a batch that could not be used (the other files are still answered)."""

    file: str | None
    error: str
    status: int = Field(description="the HTTP status this file alone would have got")


class BatchOut(BaseModel):
    """``POST /predict/batch``: one entry per uploaded file, in order."""

    results: list[ImageOut | FileError]
    ms: float


class HealthOut(BaseModel):
    status: str
    model_loaded: bool
    backend: str
    version: str


class ModelOut(BaseModel):
    source: str
    backend: str
    architecture: str | None
    classes: list[str]
    preprocessing: dict[str, Any]
    dataset: str | None
    detector: str | None
    metrics: dict[str, float]
    export: Any | None = None


class ModelsOut(BaseModel):
    models: list[ModelOut]
    limits: dict[str, int]


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str = Field(description="one line naming the problem")


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut, "description": d} for s, d in
    [(400, "bad request or unreadable image"), (408, "body not received in time"), (413, "too many bytes/pixels/files"),
     (415, "not an image content type"), (503, "server busy (pixel budget)")]}


# -- bounds -------------------------------------------------------------------------------------------------
class PixelBudget:
    """A counting semaphore in decoded pixels, shared by all requests (thread-safe).

    ``acquire(n)`` waits until ``n`` more pixels fit under ``total`` (or ``timeout`` s pass → False).
    """

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self._cond = threading.Condition()

    def acquire(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.used + n > self.total:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if self.used + n > self.total:
                        return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


def _malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc keeps large freed numpy buffers otherwise)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _limit_malloc_arenas(n: int = 2) -> None:
    """glibc: at most ``n`` malloc arenas (default 8 × cores), so worker threads do not each keep their own
    heap of freed image buffers (``mallopt(M_ARENA_MAX)``; no-op elsewhere)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").mallopt(-8, n)  # -8 = M_ARENA_MAX


def _json_error(status: int, message: str, close: bool = False) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"connection": "close"} if close else None)


class ConcurrencyLimit:
    """Pure ASGI middleware: at most ``limit`` HTTP requests in the app at once; the next get 503 as
    ``{"error": ...}`` (uvicorn's own ``limit_concurrency``, which answers in plain text, is set higher as a
    backstop only)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit, self.active = app, int(limit), 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await _json_error(503, f"server busy: {self.limit} requests in progress; retry shortly",
                              close=True)(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class BodyLimit:
    """Pure ASGI middleware: byte cap and time limits on request bodies, with or without Content-Length.

    ``limit_for(path)`` gives ``(bytes accepted, bytes named in errors)``. Over-limit ``Content-Length`` → 413 before any byte is read. Otherwise ``receive`` is wrapped: chunks are
    counted as they stream (the app sees at most ``limit`` bytes), and a gap over ``read_timeout`` s or a body
    over ``body_timeout`` s ends the request. The errors reach the app as ``HTTPException``s (413/408), which
    FastAPI re-raises and the app's handler turns into ``{"error": ...}`` with ``connection: close``.
    """

    def __init__(self, app: ASGIApp, limit_for: Any, read_timeout: float, body_timeout: float) -> None:
        self.app, self.limit_for = app, limit_for
        self.read_timeout, self.body_timeout = read_timeout, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, shown = self.limit_for(scope["path"])
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await _json_error(413, f"request body of {int(length):,} bytes is over the {shown:,}-byte limit",
                              close=True)(scope, receive, send)
            return
        seen, start = 0, time.monotonic()

        async def limited() -> Message:
            nonlocal seen
            left = self.body_timeout - (time.monotonic() - start)
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(0.001, min(self.read_timeout, left)))
            except TimeoutError:
                raise StarletteHTTPException(408, f"request body not received in time (no data for "
                                                  f"{self.read_timeout:g} s, or over {self.body_timeout:g} s "
                                                  "in all)") from None
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, f"request body over the {shown:,}-byte limit (stopped "
                                                      f"reading at {seen:,} bytes)")
            return msg

        await self.app(scope, limited, send)


def _h11_protocol(header_timeout: float) -> type:
    """uvicorn's h11 protocol that closes connections whose first request header is not complete in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _header_timeout(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

    return TimedH11


# -- decoding -----------------------------------------------------------------------------------------------
def _read_upload(up: UploadFile, max_bytes: int, max_pixels: int) -> tuple[str, Any, int, int]:
    """Check type, size and the header's pixel count of one upload → (name, file, bytes, pixels).

    Nothing is decoded and the file is not read into memory: its size comes from the spooled file, the pixel
    count from the image header; ``file`` is rewound for :func:`decode_pil`.
    """
    name = up.filename or "upload"
    ctype = (up.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype not in CONTENT_TYPES:
        raise ApiError(415, f"{name}: unsupported content type {ctype!r} (send a JPEG/PNG/WebP/BMP image)")
    f = up.file
    nbytes = f.seek(0, io.SEEK_END)
    if nbytes > max_bytes:
        raise ApiError(413, f"{name}: file larger than the {max_bytes:,}-byte limit")
    if not nbytes:
        raise ApiError(400, f"{name}: empty file")
    f.seek(0)
    try:
        w, h, _ = image_size(f, name)
        pixels = check_pixels(name, w, h, nbytes, max_pixels)
    except ImageTooLarge as e:
        raise ApiError(413, str(e)) from None
    except FerbenchError as e:
        raise ApiError(400, str(e)) from None
    f.seek(0)
    return name, f, nbytes, pixels


def _result(rgb: Any, faces: list[Any], name: str) -> dict[str, Any]:
    h, w = rgb.shape[:2]
    return {"file": name, "width": w, "height": h, "no_face": not faces, "faces": [f.to_dict() for f in faces]}


def create_app(recognizer: Recognizer, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               max_files: int = MAX_FILES, detect: bool = True, max_request_pixels: int = MAX_REQUEST_PIXELS,
               max_inflight_pixels: int = MAX_INFLIGHT_PIXELS, max_decodes: int = MAX_DECODES,
               read_timeout: float = READ_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
               busy_timeout: float = BUSY_TIMEOUT, max_concurrent: int = 64) -> FastAPI:
    """The FastAPI app serving ``recognizer`` (already loaded: the model loads once per process).

    At most ``max_concurrent`` requests are handled at once; the next get 503 ``{"error": ...}``.
    """
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(title="ferbench", version=__version__,
                         description="Facial expression recognition: POST an image, get faces with labels and "
                                     "probabilities. Errors are `{\"error\": \"one line\"}`.")
    app.state.recognizer = recognizer
    index_html = (STATIC / "index.html").read_text()
    max_request_pixels = max(max_request_pixels, max_pixels)
    budget = PixelBudget(max(max_inflight_pixels, max_request_pixels))
    decodes = threading.BoundedSemaphore(max_decodes)
    served = [0]  # requests through the pixel budget (for the periodic malloc_trim)
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels, "max_files": max_files,
              "max_request_pixels": max_request_pixels, "max_inflight_pixels": budget.total}

    def body_limit(path: str) -> tuple[int, int]:
        """(bytes accepted, bytes named in the error) for a request to ``path``."""
        n = max_files if path.endswith("/batch") else 1
        return n * (max_bytes + MULTIPART_SLACK), n * max_bytes

    app.add_middleware(BodyLimit, limit_for=body_limit, read_timeout=read_timeout, body_timeout=body_timeout)
    app.add_middleware(ConcurrencyLimit, limit=max_concurrent)  # outermost: refuses before any body is read

    @app.exception_handler(ApiError)
    def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return _json_error(e.status, e.message)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 404:
            msg = f"not found: {request.method} {request.url.path} (see /docs)"
        elif e.status_code == 405:
            msg = f"method {request.method} not allowed on {request.url.path} (allowed: {e.headers.get('Allow', '?')})" \
                if e.headers else f"method {request.method} not allowed on {request.url.path}"
        else:
            msg = str(e.detail).splitlines()[0] if e.detail else f"HTTP {e.status_code}"
        return _json_error(e.status_code, msg, close=e.status_code in (408, 413))

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        missing = [".".join(str(p) for p in err.get("loc", ())[1:]) for err in e.errors()]
        return _json_error(400, f"bad request: expected multipart/form-data with field(s) "
                                f"{', '.join(m for m in missing if m) or 'file'}")

    @app.exception_handler(Exception)
    def _internal(_: Request, e: Exception) -> JSONResponse:
        return _json_error(500, f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def decode_all(items: list[tuple[str, Any, int, int]]) -> tuple[list[Any], list[ApiError | None]]:
        """Decode checked uploads (≤ ``max_decodes`` at once in the process) → arrays / per-file errors."""
        arrays: list[Any] = []
        errors: list[ApiError | None] = []
        for name, f, nbytes, _ in items:
            with decodes:
                try:
                    arrays.append(decode_pil(f, name, max_pixels, nbytes=nbytes))
                    errors.append(None)
                except ImageTooLarge as e:
                    arrays.append(None)
                    errors.append(ApiError(413, str(e)))
                except FerbenchError as e:
                    arrays.append(None)
                    errors.append(ApiError(400, str(e)))
        return arrays, errors

    @contextlib.contextmanager
    def reserve(pixels: int) -> Any:
        """Hold ``pixels`` of the process-wide budget for the request's lifetime (503 when busy too long)."""
        if pixels > max_request_pixels:
            raise ApiError(413, f"the request's images total {pixels:,} pixels; the limit is {max_request_pixels:,}")
        if not budget.acquire(pixels, busy_timeout):
            raise ApiError(503, f"server busy: {budget.used:,} pixels being decoded; retry later")
        try:
            yield
        finally:
            budget.release(pixels)
            served[0] += 1
            if pixels >= 4_000_000 or served[0] % 64 == 0:  # after big images, and now and then
                _malloc_trim()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return index_html

    @app.get("/health", response_model=HealthOut)
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": True, "backend": recognizer.backend, "version": __version__}

    @app.get("/models", response_model=ModelsOut)
    def models() -> dict[str, Any]:
        return {"models": [recognizer.info()], "limits": limits}

    @app.post("/predict", response_model=PredictOut, responses=ERRORS)
    def predict(file: UploadFile = File(..., description="an image (JPEG, PNG, WebP, BMP)")) -> dict[str, Any]:
        t0 = time.perf_counter()
        item = _read_upload(file, max_bytes, max_pixels)
        with reserve(item[3]):
            (rgb,), (err,) = decode_all([item])
            if err is not None:
                raise err
            faces = recognizer.predict(rgb, color="rgb", detect=detect)
            out = _result(rgb, faces, item[0])
            del rgb
        return {**out, "ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.post("/predict/batch", response_model=BatchOut, responses=ERRORS)
    def predict_batch(files: list[UploadFile] = File(..., description="images")) -> dict[str, Any]:
        t0 = time.perf_counter()
        if len(files) > max_files:
            raise ApiError(413, f"{len(files)} files in one request; the limit is {max_files}")
        results: list[dict[str, Any] | None] = [None] * len(files)
        checked: list[tuple[int, tuple[str, Any, int, int]]] = []
        for i, up in enumerate(files):
            try:
                checked.append((i, _read_upload(up, max_bytes, max_pixels)))
            except ApiError as e:
                results[i] = {"file": up.filename, "error": e.message, "status": e.status}
        with reserve(sum(item[3] for _, item in checked)):
            arrays, errors = decode_all([item for _, item in checked])
            ok = []
            for (i, item), rgb, err in zip(checked, arrays, errors, strict=True):
                if err is not None:
                    results[i] = {"file": item[0], "error": err.message, "status": err.status}
                else:
                    ok.append((i, item[0], rgb))
            del arrays
            preds = recognizer.predict_batch([rgb for _, _, rgb in ok], color="rgb", detect=detect)
            for (i, name, rgb), faces in zip(ok, preds, strict=True):
                results[i] = _result(rgb, faces, name)
            del ok
        return {"results": results, "ms": round(1000 * (time.perf_counter() - t0), 2)}

    return app


def serve(model: str = "default", host: str = "127.0.0.1", port: int = 8000, max_bytes: int = MAX_BYTES,
          detector: str = "blazeface", header_timeout: float = HEADER_TIMEOUT, max_connections: int = 64,
          device: str = "auto") -> None:
    """Load ``model`` once (a PyTorch model on ``device``: auto | cpu | cuda) and run the app with uvicorn
    (blocks until Ctrl-C).

    Requests beyond ``max_connections`` in progress get 503 ``{"error": ...}``; idle keep-alive connections close
    after 5 s.
    """
    import uvicorn

    from ferbench.device import recognizer_to

    _limit_malloc_arenas()
    rec = recognizer_to(Recognizer.load(model, detector=detector), device)
    app = create_app(rec, max_bytes=max_bytes, max_concurrent=max_connections)
    # uvicorn's own limit (plain-text 503) only backs up the app's JSON one
    uvicorn.run(app, host=host, port=port, log_level="info", http=_h11_protocol(header_timeout),
                limit_concurrency=4 * max_connections, timeout_keep_alive=5)
