"""FER-specific methods that plug into the one trainer: ESR, SCN, DACL, DAN and label distributions.

``build_method(name, backbone, num_classes, **opts)`` wraps a registry backbone (default ResNet-18) in a
module that implements the trainer hooks; ``model(x)`` still returns ``(B, C)`` scores. Every option is a
JSON-able keyword, stored in the checkpoint sidecar as ``architecture.method = {"name": ..., **opts}``.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from ferbench.errors import ConfigError
from ferbench.methods.base import (
    METHODS,
    Batch,
    Method,
    MethodModule,
    Supervised,
    as_method,
    cross_entropy,
    register_method,
)
from ferbench.methods.common import backbone_features


def load_methods() -> None:
    """Import every module of this package, which registers its methods (one file = one method)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "common"):
            importlib.import_module(f"{__name__}.{info.name}")


load_methods()


def build_method(name: str, backbone: nn.Module, num_classes: int, **opts: Any) -> nn.Module:
    """Wrap ``backbone`` in method ``name``.

    Args:
        name: one of :data:`METHODS` (``esr``, ``scn``, ``dacl``, ``dan``, ``ldl``).
        backbone: a registry model (``create_model(...)``); for ``esr`` an ``esr_4``/``esr_9`` model is
            used as is (its own base and branches).
        num_classes: C.
        **opts: the method's hyper-parameters (see each class).

    Raises:
        ConfigError: unknown method or option (one line, with close matches).
    """
    key = name.lower()
    if key not in METHODS:
        load_methods()  # a method file added since the package was imported
    if key not in METHODS:
        close = difflib.get_close_matches(key, list(METHODS), n=2)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.{hint}")
    known = _builder_options(METHODS[key])
    bad = sorted(set(opts) - known) if known is not None else []
    if bad:
        raise ConfigError(f"method {key}: unknown option {bad[0]!r} (its options: {', '.join(sorted(known or ()))})")
    return METHODS[key](backbone, num_classes, **opts)


def _builder_options(fn: Callable[..., Any]) -> set[str] | None:
    """Option names a method builder takes: its keyword parameters with a default, plus those of the class it
    returns (its return annotation) when it forwards ``**opts`` there; ``None`` when that cannot be known."""
    names: set[str] = set()
    for target in (fn, typing.get_type_hints(fn).get("return")):
        if not callable(target):
            return None
        params = inspect.signature(target).parameters.values()
        names |= {p.name for p in params if p.default is not inspect.Parameter.empty
                  and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
    return None


def method_options(name: str) -> dict[str, Any]:
    """Default options of a method (for help texts): ``{option: default}`` of the class its builder returns."""
    cls = typing.get_type_hints(METHODS[name]).get("return")
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


__all__ = ["METHODS", "Batch", "Method", "MethodModule", "Supervised", "as_method", "backbone_features", "build_method",
           "cross_entropy", "load_methods", "method_options", "register_method"]
