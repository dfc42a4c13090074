"""Batched augmentation in torch on uint8/float image batches (no per-sample Python loop).

``keras`` reproduces Keras ``ImageDataGenerator`` (docs/protocol.md §1.4): rotation U(±θ), shifts
U(±s)·side, independent zooms zx, zy ~ U(1±z) (inverse map), one affine about the centre,
bilinear sampling with edge replication, then h-flip p=0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Augmentation strengths. ``preset`` fills defaults: ``keras`` (seed 000), ``light``, ``none``."""

    rotation: float = 20.0
    shift: float = 0.2
    zoom: float = 0.2
    hflip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    erasing: float = 0.0
    gamma: float = 0.0        # log-uniform gamma in [exp(-g), exp(g)] per image
    blur: float = 0.0         # probability of a Gaussian blur (sigma U(0.3, 1.2) px at 48 px, scaled with size)
    jpeg: float = 0.0         # probability of a JPEG round trip at quality U(30, 90)

    @classmethod
    def preset(cls, name: str, **overrides: float) -> AugmentConfig:
        base = {
            "keras": {},
            "light": {"rotation": 10.0, "shift": 0.1, "zoom": 0.1},
            "strong": {"rotation": 15.0, "shift": 0.12, "zoom": 0.15, "brightness": 0.3, "contrast": 0.3,
                       "erasing": 0.25},
            "none": {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "hflip": False},
            # faces from webcams and photos: scale/aspect jitter, lighting, blur and compression artefacts
            "wild": {"rotation": 15.0, "shift": 0.1, "zoom": 0.2, "brightness": 0.35, "contrast": 0.35,
                     "gamma": 0.4, "blur": 0.25, "jpeg": 0.3, "erasing": 0.25},
        }
        if name not in base:
            from ferbench.errors import ConfigError

            raise ConfigError(f"unknown augmentation preset {name!r}; choose one of {', '.join(base)}")
        return cls(**{**base[name], **overrides})


def random_affine_matrices(n: int, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n, 2, 3)`` matrices mapping output → input normalised coords (``F.affine_grid`` convention)."""
    u = torch.rand(n, 5, generator=generator) * 2 - 1  # U(-1, 1)
    theta = u[:, 0] * math.radians(cfg.rotation)
    # translate in normalised units: a shift of s·side equals 2s in [-1, 1] coordinates
    tx, ty = u[:, 1] * cfg.shift * 2, u[:, 2] * cfg.shift * 2
    zx, zy = 1 + u[:, 3] * cfg.zoom, 1 + u[:, 4] * cfg.zoom
    cos, sin = torch.cos(theta), torch.sin(theta)
    m = torch.zeros(n, 2, 3)
    # input = R(θ) · Z · output + t   (z > 1 samples a wider area → content shrinks, as Keras)
    m[:, 0, 0], m[:, 0, 1] = cos * zx, -sin * zy
    m[:, 1, 0], m[:, 1, 1] = sin * zx, cos * zy
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a float batch ``(N, C, H, W)`` in [0, 1]; returns the same shape, clamped to [0, 1]."""
    n = x.shape[0]
    if cfg.rotation or cfg.shift or cfg.zoom:
        m = random_affine_matrices(n, cfg, generator).to(x.dtype)
        grid = F.affine_grid(m, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.brightness or cfg.contrast:
        b = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * cfg.brightness
        c = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * cfg.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean) * b
    if cfg.gamma:
        g = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * cfg.gamma)
        x = x.clamp(0, 1).pow(g)
    if cfg.blur:
        x = _random_blur(x, cfg.blur, generator)
    if cfg.jpeg:
        x = _random_jpeg(x, cfg.jpeg, generator)
    if cfg.erasing:
        x = _random_erasing(x, cfg.erasing, generator)
    return x.clamp_(0, 1)


def _random_erasing(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Zero one random rectangle (2–20 % of the area) per image with probability ``p``."""
    n, _, h, w = x.shape
    r = torch.rand(n, 5, generator=generator)
    area = (0.02 + r[:, 0] * 0.18) * h * w
    aspect = torch.exp((r[:, 1] * 2 - 1) * math.log(3))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    y0 = r[:, 2] * (h - eh)
    x0 = r[:, 3] * (w - ew)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = (ys >= y0.view(-1, 1, 1)) & (ys < (y0 + eh).view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1)) & (
        xs < (x0 + ew).view(-1, 1, 1)) & (r[:, 4] < p).view(-1, 1, 1)
    return x.masked_fill(mask.unsqueeze(1), 0.0)


def _random_blur(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian blur with probability ``p`` per image: separable kernels, one sigma per blurred image."""
    n, c, h, w = x.shape
    r = torch.rand(n, 2, generator=generator)
    pick = torch.nonzero(r[:, 1] < p).flatten()
    if len(pick) == 0:
        return x
    m = len(pick)
    sigma = (0.3 + r[pick, 0] * 0.9) * (h / 48.0)
    k = 2 * int(math.ceil(2 * float(sigma.max()))) + 1
    t = torch.arange(k, dtype=x.dtype) - k // 2
    ker = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(x.dtype) ** 2))
    ker = (ker / ker.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (m·c, k)
    xp = F.pad(x[pick].reshape(1, m * c, h, w), (k // 2, k // 2, k // 2, k // 2), mode="replicate")
    out = F.conv2d(F.conv2d(xp, ker.view(m * c, 1, 1, k), groups=m * c), ker.view(m * c, 1, k, 1), groups=m * c)
    x = x.clone()
    x[pick] = out.view(m, c, h, w)
    return x


def _random_jpeg(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """A JPEG encode/decode round trip (OpenCV) at quality U(30, 90) with probability ``p`` per image."""
    import cv2

    n = x.shape[0]
    r = torch.rand(n, 2, generator=generator)
    pick = torch.nonzero(r[:, 1] < p).flatten().tolist()
    if not pick:
        return x
    x = x.clone()
    u8 = (x[pick].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (m, H, W, C)
    flag = cv2.IMREAD_GRAYSCALE if x.shape[1] == 1 else cv2.IMREAD_COLOR
    for j, i in enumerate(pick):
        ok, buf = cv2.imencode(".jpg", u8[j], [cv2.IMWRITE_JPEG_QUALITY, int(30 + r[i, 0] * 60)])
        dec = cv2.imdecode(buf, flag)
        x[i] = torch.from_numpy(dec.reshape(u8[j].shape)).permute(2, 0, 1).to(x.dtype) / 255.0
    return x
