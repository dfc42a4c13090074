"""Image input for predict/serve/datasets: paths, bytes, numpy (BGR/RGB) and PIL → uint8 RGB ``(H, W, 3)``.

Every decode goes through :func:`decode_pil`, which checks a pixel budget on the header *before* any
pixel is decoded: an image over ``max_pixels`` is refused, and so is a large image whose file is tiny
for its pixel count (a decompression bomb: a 14 KB 1-bit PNG declaring 7000×7000 pixels would decode to
147 MB of RGB). 16-bit images are scaled to 8 bits (not clipped), and only the listed formats are
opened (no EPS/PSD/... decoders reachable from an upload).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferbench.errors import FerbenchError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
MAX_PIXELS = 50_000_000  # a 50 MP photo is plenty; above is refused before decoding
# Bomb rule: above BOMB_MIN_PIXELS, an image may declare at most MAX_PIXELS_PER_BYTE pixels per byte of
# file. Real photos are far below (JPEG ≈ 0.1–10 px/byte, PNG photos ≈ 0.5–5); only flat synthetic images
# and crafted bombs compress more.
BOMB_MIN_PIXELS = 4_000_000
MAX_PIXELS_PER_BYTE = 256
PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF", "WEBP", "GIF", "PPM")  # JPEG covers MPO


class ImageTooLarge(FerbenchError):
    """An image over the pixel budget (refused from its header, before decoding)."""


def check_pixels(name: str, w: int, h: int, nbytes: int | None, max_pixels: int = MAX_PIXELS) -> int:
    """Refuse ``w×h`` over ``max_pixels`` or a bomb-like pixels-per-byte ratio; returns ``w*h``."""
    n = w * h
    if n > max_pixels:
        raise ImageTooLarge(f"{name}: image too large ({w}x{h} = {n:,} pixels; limit {max_pixels:,})")
    if nbytes is not None and n > BOMB_MIN_PIXELS and n > MAX_PIXELS_PER_BYTE * max(nbytes, 1):
        raise ImageTooLarge(f"{name}: {w}x{h} = {n:,} pixels in a {nbytes:,}-byte file (over "
                            f"{MAX_PIXELS_PER_BYTE} pixels per byte: a decompression bomb); refused before decoding")
    return n


def _to_uint8(im: Image.Image, mode: str) -> np.ndarray:
    """An opened (EXIF-transposed) image → uint8 ``(H, W, 3)`` (mode RGB) or ``(H, W)`` (mode L).

    16-bit and 32-bit integer greys are scaled by their type's range (65535 → 255), float images by 255
    when in [0, 1]; Pillow's own ``convert`` would clip them (a 16-bit face turns all white).
    """
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im)
        if im.mode.startswith("I;16"):
            top = 65535.0
        elif im.mode == "F":
            top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
        else:
            mx = float(a.max()) if a.size else 0.0
            top = 255.0 if mx <= 255 else 65535.0 if mx <= 65535 else mx
        g = np.clip(np.rint(np.nan_to_num(a.astype(np.float64)) * (255.0 / top)), 0, 255).astype(np.uint8)
        return g if mode == "L" else np.repeat(g[..., None], 3, axis=2)
    return np.asarray(im.convert(mode), dtype=np.uint8)


def decode_pil(fp: str | Path | BinaryIO, name: str, max_pixels: int = MAX_PIXELS, nbytes: int | None = None,
               mode: str = "RGB") -> np.ndarray:
    """Decode one image with the pixel budget checked on the header → uint8 ``(H, W, 3)`` or ``(H, W)``.

    Args:
        fp: a path or a binary file object.
        name: how errors name the image (file path, upload name).
        nbytes: encoded size in bytes (for the bomb ratio); looked up for paths when None.
        mode: ``"RGB"`` or ``"L"`` (8-bit grey).
    Raises:
        ImageTooLarge before decoding; FerbenchError for unreadable/corrupt/unsupported data.
    """
    if nbytes is None and isinstance(fp, (str, Path)):
        nbytes = os.path.getsize(fp)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=PIL_FORMATS) as im:
                w, h = im.size
                check_pixels(name, w, h, nbytes, max_pixels)
                im = ImageOps.exif_transpose(im)
                return _to_uint8(im, mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"{name}: image too large (Pillow decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise FerbenchError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except MemoryError:
        raise ImageTooLarge(f"{name}: out of memory while decoding") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise FerbenchError(f"{name}: corrupt image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None


def image_size(fp: str | Path | BinaryIO, name: str) -> tuple[int, int, str]:
    """Header only: ``(width, height, PIL mode)``; nothing is decoded."""
    try:
        with Image.open(fp, formats=PIL_FORMATS) as im:
            return im.size[0], im.size[1], im.mode
    except UnidentifiedImageError:
        raise FerbenchError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise FerbenchError(f"{name}: corrupt image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file → uint8 RGB ``(H, W, 3)`` (EXIF orientation applied).

    Missing, corrupt, unsupported or over-budget files raise a one-line FerbenchError.
    """
    p = Path(path)
    if not p.is_file():
        raise FerbenchError(f"{p}: no such file")
    return decode_pil(p, str(p), max_pixels)


def decode_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG/PNG/...) → uint8 RGB ``(H, W, 3)``."""
    if not data:
        raise FerbenchError(f"{name}: empty file")
    return decode_pil(io.BytesIO(data), name, max_pixels, nbytes=len(data))


def to_rgb(image: Any, color: str = "bgr", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any accepted image → uint8 RGB ``(H, W, 3)``.

    Args:
        image: a path (str/Path), a PIL image, or a numpy uint8 array ``(H, W)``, ``(H, W, 1)``,
            ``(H, W, 3)`` or ``(H, W, 4)``. Float arrays in [0, 1] and uint16 arrays are accepted and scaled.
        color: channel order of 3/4-channel numpy arrays: ``"bgr"`` (what ``cv2.imread`` and
            ``VideoCapture`` return, the default) or ``"rgb"``. Ignored for paths and PIL images.
    """
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels)
    if isinstance(image, Image.Image):
        return _to_uint8(image, "RGB")
    if not isinstance(image, np.ndarray):
        raise FerbenchError(f"unsupported image type {type(image).__name__} (expected path, numpy array or PIL)")
    if color not in ("bgr", "rgb"):
        raise FerbenchError(f"color must be 'bgr' or 'rgb', got {color!r}")
    a = image
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and float(a.max()) <= 1.0:
            a = (a * 255).round()
        elif a.dtype == np.uint16:  # 16-bit (cv2.IMREAD_UNCHANGED of a 16-bit PNG): scale, do not clip
            a = (a.astype(np.float32) / 257.0).round()
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise FerbenchError(f"image array has shape {tuple(a.shape)}; expected (H, W), (H, W, 3) or (H, W, 4)")
    return swap_rb(a) if color == "bgr" else np.ascontiguousarray(a[..., :3])


def swap_rb(a: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3|4)`` BGR(A) ↔ RGB ``(H, W, 3)``, contiguous (OpenCV's SIMD copy: a 640×480 frame
    in ~0.03 ms, where numpy's reversed-stride copy ``a[..., ::-1]`` takes ~1 ms)."""
    a = np.ascontiguousarray(a)
    return cv2.cvtColor(a, cv2.COLOR_BGRA2RGB if a.shape[2] == 4 else cv2.COLOR_BGR2RGB)
