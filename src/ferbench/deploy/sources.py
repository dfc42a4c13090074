"""What ``ferbench predict`` reads: files, folders, globs, http(s) URLs and video streams (RTSP/RTMP/HTTP).

:func:`resolve_sources` is cheap (no model, no decoding): it runs before anything heavy is loaded, so a
missing file or a glob that matches nothing fails in milliseconds. :func:`fetch_urls` downloads the
http(s) images and video files into a folder; stream URLs (``rtsp://``, ``rtmp://``, …) go to
OpenCV as they are. :func:`next_run_dir` gives the automatic ``runs/predict/N`` output folder.
"""

from __future__ import annotations

import glob
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ferbench.errors import FerbenchError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt")
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
_GLOB = re.compile(r"[*?\[]")


@dataclass
class Sources:
    """Resolved inputs. ``images``/``videos`` are local paths; ``urls`` http(s) files still to fetch;
    ``streams`` URLs read frame by frame by OpenCV; ``missing`` one message per input that does not exist."""

    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _exts() -> tuple[set[str], set[str]]:
    """(image, video) extensions. Kept here (not imported from the decoder, whose package loads torch) so
    that resolving sources stays instant; tests/test_cli_conventions.py checks both lists agree."""
    return IMAGE_EXTS, VIDEO_EXTS


def is_url(s: str) -> bool:
    """``scheme://…`` with a scheme of two letters or more (so ``C:\\x`` is a path)."""
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", s))


def _add_file(p: Path, out: Sources, images: set[str], videos: set[str]) -> None:
    (out.videos if p.suffix.lower() in videos else out.images).append(p)


def _walk(folder: Path, out: Sources, images: set[str], videos: set[str]) -> None:
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            ext = f.suffix.lower()
            if ext in images:
                out.images.append(f)
            elif ext in videos:
                out.videos.append(f)


def resolve_sources(items: list[str]) -> Sources:
    """Inputs as typed on the command line → :class:`Sources`, without reading any image.

    * a folder: walked recursively (images and videos by extension, sorted, hidden files skipped);
    * a file: a video when its extension is a video one, else an image (decoding decides later);
    * a glob (``'crops/*.png'``, ``'**/*.jpg'``; quote it so the shell does not expand it): its
      sorted matches; no match → a ``missing`` entry;
    * ``http://`` / ``https://``: a file to download (see :func:`fetch_urls`);
    * ``rtsp://``, ``rtmp://``, ``udp://``, …: a live stream read by OpenCV.
    """
    images, videos = _exts()
    out = Sources()
    for item in items:
        if is_url(item):
            scheme = item.split(":", 1)[0].lower()
            if scheme in ("http", "https"):
                out.urls.append(item)
            elif scheme in STREAM_SCHEMES:
                out.streams.append(item)
            elif scheme == "file":
                local = Path(urllib.request.url2pathname(urllib.parse.urlparse(item).path))
                if local.is_file():
                    _add_file(local, out, images, videos)
                else:
                    out.missing.append(f"{item}: no such file")
            else:
                out.missing.append(f"{item}: unsupported URL scheme {scheme!r} (http, https, rtsp, rtmp, udp, file)")
            continue
        p = Path(item).expanduser()
        if p.is_dir():
            _walk(p, out, images, videos)
        elif p.is_file():
            _add_file(p, out, images, videos)
        elif _GLOB.search(item):
            hits = sorted(Path(h) for h in glob.glob(str(p), recursive=True))
            files = [h for h in hits if h.is_file() and h.suffix.lower() in images | videos]
            if not files:
                out.missing.append(f"{item}: no image or video matches this pattern")
            for h in files:
                _add_file(h, out, images, videos)
        else:
            out.missing.append(f"{item}: no such file or directory")
    return out


def _url_name(url: str, content_type: str | None) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    if Path(name).suffix.lower() not in set().union(*_exts()) and content_type:
        ext = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/bmp": ".bmp",
               "video/mp4": ".mp4", "video/webm": ".webm"}.get(content_type.split(";")[0].strip().lower())
        if ext:
            name += ext
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def fetch_url(url: str, folder: Path, timeout: float = 30.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download one http(s) URL into ``folder`` (name from the URL, else from its Content-Type).

    Raises a one-line :class:`FerbenchError` on a network error, an HTTP error status or a body larger
    than ``max_bytes``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http/https only, checked above)
            body = r.read(max_bytes + 1)
            ctype = r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        raise FerbenchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FerbenchError(f"{url}: cannot download ({reason})") from None
    if len(body) > max_bytes:
        raise FerbenchError(f"{url}: larger than {max_bytes // (1024 * 1024)} MB")
    dest = folder / _url_name(url, ctype)
    k = 1
    while dest.exists():
        dest = dest.with_name(f"{Path(_url_name(url, ctype)).stem}_{k}{dest.suffix}")
        k += 1
    dest.write_bytes(body)
    return dest


def fetch_urls(src: Sources, folder: Path) -> tuple[dict[Path, str], list[str]]:
    """Download ``src.urls`` into ``folder``, adding them to ``src.images`` / ``src.videos``.

    Returns ``({local path: url}, [one error line per URL that failed])``.
    """
    images, videos = _exts()
    origin: dict[Path, str] = {}
    errors: list[str] = []
    for url in src.urls:
        try:
            p = fetch_url(url, folder)
        except FerbenchError as e:
            errors.append(str(e))
            continue
        origin[p] = url
        _add_file(p, src, images, videos)
    return origin, errors


def next_run_dir(base: Path = Path("runs") / "predict") -> Path:
    """The next free ``base/N`` (1, 2, …), created: the Ultralytics-style automatic output folder."""
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    n = max(taken, default=0) + 1
    while True:
        d = base / str(n)
        try:
            d.mkdir()
            return d
        except FileExistsError:  # another predict took it meanwhile
            n += 1


def check_stream_scheme(url: str) -> None:
    """One-line error for a URL OpenCV cannot read as a stream."""
    if not is_url(url) or url.split(":", 1)[0].lower() not in (*STREAM_SCHEMES, "http", "https"):
        raise FerbenchError(f"{url}: not a stream URL (rtsp://, rtmp://, udp://, http(s)://)")
