"""Model registry in the style of timm: one decorator, one ``create_model`` entry point.

A model family lives in one file of ``ferbench.models``; each public variant is a small
function decorated with :func:`register_model` that returns an ``nn.Module``. Metadata that
callers need (default input size, channels, the layer Grad-CAM should use, source paper)
travels with the registration, not with the caller.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ferbench.errors import FerbenchError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it.

    Attributes:
        name: registry name, e.g. ``"shallow_cnn_s002"``.
        family: file/family it belongs to, e.g. ``"seed002"``, ``"timm"``.
        paper: source paper id (``"000"`` … ``"004"``) or ``""`` for modern extras.
        input_size: default square input side in pixels.
        in_chans: default number of input channels.
        target_layer: dotted module path Grad-CAM should hook (a map that is not 1×1 at 48 px).
        sizes: input sizes the spec lists for this model (for tests and the cost table).
        expected_params: ``{input_size: n_params}`` from protocol.md §2.17 where known.
        default_method: the training method this network is built for (``"esr"`` for ESR networks); the
            trainer and the loader apply it when a config or sidecar names none.
    """

    name: str
    fn: Callable[..., nn.Module]
    family: str
    paper: str = ""
    input_size: int = 48
    in_chans: int = 3
    target_layer: str = ""
    sizes: tuple[int, ...] = (48,)
    expected_params: dict[int, int] = field(default_factory=dict)
    description: str = ""
    default_method: str = ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    family: str,
    *,
    paper: str = "",
    input_size: int = 48,
    in_chans: int = 3,
    target_layer: str = "",
    sizes: tuple[int, ...] = (48,),
    expected_params: dict[int, int] | None = None,
    description: str = "",
    default_method: str = "",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder under its function name.

    The builder is called as ``fn(num_classes=..., in_chans=..., input_size=..., **kwargs)``
    and must return an ``nn.Module`` mapping ``(B, in_chans, S, S)`` float to ``(B, num_classes)`` logits.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(
            name=name,
            fn=fn,
            family=family,
            paper=paper,
            input_size=input_size,
            in_chans=in_chans,
            target_layer=target_layer,
            sizes=sizes,
            expected_params=dict(expected_params or {}),
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            default_method=default_method,
        )
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the package imports every family file, which fills the registry.
    import ferbench.models  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registry names matching a shell-style ``pattern`` (e.g. ``"resnet*"``)."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Registry entry for ``name``; unknown names raise a one-line error with close matches."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `ferbench models list`."
        raise FerbenchError(f"unknown model {name!r}.{hint}")
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int = 7,
    in_chans: int | None = None,
    input_size: int | None = None,
    head: str | None = None,
    init: str = "scratch",
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: registry name (see :func:`list_models`).
        num_classes: number of output logits.
        in_chans: input channels (1 = grey, 3 = RGB); defaults to the model's own.
        input_size: square input side; some custom nets size their dense layers from it.
        head: classifier head for backbones that accept one (``"seed000"``, ``"linear"``, …).
        init: ``"scratch"``, ``"file:PATH"``, ``"imagenet"`` or ``"run:RUN_DIR"`` (see
            :func:`ferbench.models.init.apply_init`).
        **kwargs: passed to the builder.

    Returns:
        ``nn.Module`` with ``.ferbench_info`` (the :class:`ModelInfo`) attached; forward maps
        ``(B, C, S, S)`` float → ``(B, num_classes)`` logits.
    """
    info = model_info(name)
    if head is not None:
        kwargs["head"] = head
    model = info.fn(
        num_classes=num_classes,
        in_chans=in_chans if in_chans is not None else info.in_chans,
        input_size=input_size if input_size is not None else info.input_size,
        **kwargs,
    )
    model.ferbench_info = info  # type: ignore[attr-defined]
    if init and init != "scratch":
        from ferbench.models.init import apply_init

        apply_init(model, init, name=name, num_classes=num_classes)
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters (PyTorch count = Keras *trainable* count when fully unfrozen)."""
    return sum(p.numel() for p in model.parameters())
