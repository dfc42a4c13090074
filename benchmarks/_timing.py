"""Timing helper shared by the benchmark scripts (stdlib only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timeit(fn: Callable[[], Any], n: int, warmup: int = 3) -> list[float]:
    """``n`` wall-clock durations in seconds of ``fn()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out
