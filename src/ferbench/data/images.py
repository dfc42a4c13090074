"""Image input for predict/serve: paths, bytes, numpy (BGR/RGB) and PIL → uint8 RGB ``(H, W, 3)``."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferbench.errors import FerbenchError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
MAX_PIXELS = 50_000_000  # a 50 MP photo is plenty; above is refused before decoding


class ImageTooLarge(FerbenchError):
    """An image over the pixel limit (refused before decoding)."""


def _open_pil(fp: Any, name: str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageTooLarge(f"{name}: image too large ({w}x{h} = {w * h:,} pixels; "
                                        f"limit {max_pixels:,})")
                im = ImageOps.exif_transpose(im)
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"{name}: image too large (Pillow decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise FerbenchError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FerbenchError(f"{name}: corrupt image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file → uint8 RGB ``(H, W, 3)`` (EXIF orientation applied).

    Missing, corrupt, unsupported or over-``max_pixels`` files raise a one-line FerbenchError.
    """
    p = Path(path)
    if not p.is_file():
        raise FerbenchError(f"{p}: no such file")
    return _open_pil(p, str(p), max_pixels)


def decode_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG/PNG/...) → uint8 RGB ``(H, W, 3)``."""
    if not data:
        raise FerbenchError(f"{name}: empty file")
    return _open_pil(io.BytesIO(data), name, max_pixels)


def to_rgb(image: Any, color: str = "bgr", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any accepted image → uint8 RGB ``(H, W, 3)``.

    Args:
        image: a path (str/Path), a PIL image, or a numpy uint8 array ``(H, W)``, ``(H, W, 1)``,
            ``(H, W, 3)`` or ``(H, W, 4)``. Float arrays in [0, 1] are accepted and scaled.
        color: channel order of 3/4-channel numpy arrays: ``"bgr"`` (what ``cv2.imread`` and
            ``VideoCapture`` return, the default) or ``"rgb"``. Ignored for paths and PIL images.
    """
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise FerbenchError(f"unsupported image type {type(image).__name__} (expected path, numpy array or PIL)")
    if color not in ("bgr", "rgb"):
        raise FerbenchError(f"color must be 'bgr' or 'rgb', got {color!r}")
    a = image
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and float(a.max()) <= 1.0:
            a = (a * 255).round()
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise FerbenchError(f"image array has shape {tuple(a.shape)}; expected (H, W), (H, W, 3) or (H, W, 4)")
    a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1] if color == "bgr" else a)
