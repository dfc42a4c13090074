"""Model registry in the style of timm: one decorator, one ``create_model`` entry point.

A model family is one file of ``ferbench.models``; each public network is a small builder function
decorated with :func:`register_model` that returns an ``nn.Module``. The registry is the only source of a
model's defaults:

* **family**: the name of the builder's module (``ferbench.models.seed002`` → ``"seed002"``); a module
  may set ``FAMILY = "..."`` once, or a decorator may pass ``family=``, to override it.
* **input size and channels**: the builder's own ``input_size`` / ``in_chans`` defaults, read from its
  signature (a decorator states them only for a builder that has no such parameter).
* **options**: the builder's other keyword parameters; :func:`create_model` rejects any other option with
  a one-line :class:`~ferbench.errors.FerbenchError` naming the option and the model.

One network has one name. The names the papers use for the same network are **aliases**
(:func:`register_alias`): they build the canonical network, may carry the paper's own metadata (paper id,
default input size, sizes, parameter counts) and preset options (e.g. which ImageNet weights ``--init
imagenet`` loads), and resolve everywhere a model name is accepted.

Every module of the package is imported when the registry is first used, so a new family file is found
without editing ``ferbench/models/__init__.py``.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ferbench.errors import FerbenchError
from ferbench.models.table import unknown_model_error

DEFAULT_INPUT_SIZE = 48
DEFAULT_IN_CHANS = 3
_BUILT_IN = ("num_classes", "in_chans", "input_size")  # what create_model itself passes to every builder


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it.

    Attributes:
        name: registry name, e.g. ``"shallow_cnn_s002"`` (for an alias: the alias).
        fn: the builder of the network.
        family: file/family it belongs to, e.g. ``"seed002"``, ``"timm"`` (for an alias: the file that
            declared the alias).
        paper: source paper id (``"000"`` … ``"004"``) or ``""`` for modern extras.
        input_size: default square input side in pixels.
        in_chans: default number of input channels.
        target_layer: dotted module path Grad-CAM should hook (a map that is not 1×1 at 48 px).
        sizes: input sizes the spec lists for this model (for tests and the cost table).
        expected_params: ``{input_size: n_params}`` from docs/protocol.md §2.17 where known.
        description: one line for ``ferbench models list/info``.
        default_method: the training method this network is built for (``"esr"`` for ESR networks); the
            trainer and the loader apply it when a config or sidecar names none.
        options: ``{option: default}`` of the builder's keyword options besides ``num_classes``,
            ``in_chans`` and ``input_size`` (as this registration presets them).
        accepts_any: the builder takes ``**kwargs`` and checks its options itself.
        canonical: for an alias, the name of the network it stands for; ``""`` for a canonical name.
        preset: options an alias passes to the builder (overridable by the caller).
        legacy_keys: ``(old_prefix, new_prefix)`` renames applied when loading a state dict saved by an
            older layout of the same network under this name.
    """

    name: str
    fn: Callable[..., nn.Module]
    family: str
    paper: str = ""
    input_size: int = DEFAULT_INPUT_SIZE
    in_chans: int = DEFAULT_IN_CHANS
    target_layer: str = ""
    sizes: tuple[int, ...] = (DEFAULT_INPUT_SIZE,)
    expected_params: dict[int, int] = field(default_factory=dict)
    description: str = ""
    default_method: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    accepts_any: bool = False
    canonical: str = ""
    preset: dict[str, Any] = field(default_factory=dict)
    legacy_keys: tuple[tuple[str, str], ...] = ()

    @property
    def is_alias(self) -> bool:
        """Whether this name is an alias of another registered network."""
        return bool(self.canonical)

    @property
    def network(self) -> str:
        """The canonical name of the network this name builds (itself for a canonical name)."""
        return self.canonical or self.name

    @property
    def aliases(self) -> tuple[str, ...]:
        """The aliases of this network other than this name (sorted; the canonical name is ``.network``)."""
        net = self.network
        return tuple(sorted(n for n, i in _REGISTRY.items() if i.canonical == net and n != self.name))


_REGISTRY: dict[str, ModelInfo] = {}
_PENDING_ALIASES: list[dict[str, Any]] = []  # aliases whose network was not registered yet
_SCANNED: tuple[str, ...] | None = None  # package __path__ the last family scan covered


def _family_of(module: str, namespace: dict[str, Any] | None) -> str:
    """``FAMILY`` of the defining module if it sets one, else the module's last dotted component."""
    if namespace and isinstance(namespace.get("FAMILY"), str):
        return namespace["FAMILY"]
    return module.rsplit(".", 1)[-1]


def _signature_defaults(fn: Callable[..., nn.Module]) -> tuple[dict[str, Any], bool]:
    """``({keyword parameter: default}, takes **kwargs)`` of a builder (no default: ``Parameter.empty``)."""
    params = inspect.signature(fn).parameters
    named = {
        k: p.default
        for k, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _declared_once(name: str, what: str, declared: int | None, signature: dict[str, Any],
                   fallback: int) -> int:
    """A default stated by the builder's signature or by the decorator; both must agree when both state it."""
    own = signature.get(what, inspect.Parameter.empty)
    if own is inspect.Parameter.empty:
        return fallback if declared is None else declared
    if declared is not None and declared != own:
        raise ValueError(
            f"model {name!r}: register_model({what}={declared}) contradicts the builder's default {own}"
        )
    return int(own)


def register_model(
    family: str | None = None,
    *,
    paper: str = "",
    input_size: int | None = None,
    in_chans: int | None = None,
    target_layer: str = "",
    sizes: tuple[int, ...] | None = None,
    expected_params: dict[int, int] | None = None,
    description: str = "",
    default_method: str = "",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder under its function name.

    The builder is called as ``fn(num_classes=..., [in_chans=...], [input_size=...], **options)`` (a
    parameter it does not declare is not passed) and must return an ``nn.Module`` mapping
    ``(B, in_chans, S, S)`` float to ``(B, num_classes)`` logits.

    Args:
        family: override of the family taken from the builder's module.
        paper: source paper id.
        input_size: default input side, only for a builder without an ``input_size`` parameter (else its
            default is used; stating a different one is an error).
        in_chans: default channels, likewise only for a builder without an ``in_chans`` parameter.
        target_layer: Grad-CAM layer.
        sizes: input sizes the spec lists (default: the default input size).
        expected_params: ``{input_size: n_params}`` from the spec.
        description: one line (default: the first line of the builder's docstring).
        default_method: training method applied when a config names none.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        sig, var_kw = _signature_defaults(fn)
        size = _declared_once(name, "input_size", input_size, sig, DEFAULT_INPUT_SIZE)
        chans = _declared_once(name, "in_chans", in_chans, sig, DEFAULT_IN_CHANS)
        _REGISTRY[name] = ModelInfo(
            name=name,
            fn=fn,
            family=family or _family_of(fn.__module__, getattr(fn, "__globals__", None)),
            paper=paper,
            input_size=size,
            in_chans=chans,
            target_layer=target_layer,
            sizes=tuple(sizes) if sizes else (size,),
            expected_params=dict(expected_params or {}),
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            default_method=default_method,
            options={k: v for k, v in sig.items() if k not in _BUILT_IN},
            accepts_any=var_kw,
        )
        _resolve_pending()
        return fn

    return deco


def register_alias(
    alias: str,
    network: str,
    *,
    family: str | None = None,
    paper: str | None = None,
    input_size: int | None = None,
    sizes: tuple[int, ...] | None = None,
    expected_params: dict[int, int] | None = None,
    description: str = "",
    preset: dict[str, Any] | None = None,
    legacy_keys: tuple[tuple[str, str], ...] = (),
) -> None:
    """Register ``alias`` as another name of the registered network ``network`` (e.g. a paper's name).

    The alias builds exactly ``network``'s module tree; it may carry its paper's metadata and preset
    options (``preset``, e.g. ``{"imagenet_tag": "tv_in1k"}``) that a caller can still override. Its
    family is the calling module's (override with ``family``). ``network`` may be registered later (in a
    file imported after this one); the alias resolves as soon as it is.

    Args:
        alias: the extra name.
        network: canonical registry name of the network.
        family: override of the family taken from the calling module.
        paper: the paper this name comes from (default: the network's).
        input_size: the paper's default input side (default: the network's).
        sizes: the paper's input sizes (default: the network's).
        expected_params: the paper's parameter counts (default: the network's).
        description: one line (default: ``"alias of NETWORK"`` + the network's line).
        preset: builder options this name passes by default.
        legacy_keys: ``(old_prefix, new_prefix)`` state-dict renames for checkpoints saved under this name by
            an earlier module layout (applied on ``load_state_dict``).
    """
    caller = sys._getframe(1).f_globals  # the declaring module: its name (or FAMILY) is the alias's family
    entry = {
        "alias": alias, "network": network,
        "family": family or _family_of(str(caller.get("__name__", "")), caller),
        "paper": paper, "input_size": input_size, "sizes": sizes, "expected_params": expected_params,
        "description": description, "preset": dict(preset or {}), "legacy_keys": tuple(legacy_keys),
    }
    if alias in _REGISTRY or any(p["alias"] == alias for p in _PENDING_ALIASES):
        raise ValueError(f"model {alias!r} registered twice")
    _PENDING_ALIASES.append(entry)
    _resolve_pending()


def _resolve_pending() -> None:
    """Turn every pending alias whose network is registered into a registry entry."""
    for entry in list(_PENDING_ALIASES):
        target = _REGISTRY.get(entry["network"])
        if target is None:
            continue
        _PENDING_ALIASES.remove(entry)
        if target.is_alias:
            raise ValueError(
                f"alias {entry['alias']!r} must name a canonical model, not the alias {target.name!r}"
            )
        unknown = set(entry["preset"]) - set(target.options)
        if unknown and not target.accepts_any:
            bad = ", ".join(sorted(unknown))
            raise ValueError(f"alias {entry['alias']!r}: {target.name} has no option(s) {bad}")
        size = entry["input_size"] or target.input_size
        _REGISTRY[entry["alias"]] = ModelInfo(
            name=entry["alias"],
            fn=target.fn,
            family=entry["family"],
            paper=target.paper if entry["paper"] is None else entry["paper"],
            input_size=size,
            in_chans=target.in_chans,
            target_layer=target.target_layer,
            sizes=tuple(entry["sizes"] or target.sizes),
            expected_params=dict(entry["expected_params"] or target.expected_params),
            description=entry["description"] or f"alias of {target.name}: {target.description}",
            default_method=target.default_method,
            options={**target.options, **entry["preset"]},
            accepts_any=target.accepts_any,
            canonical=target.name,
            preset=entry["preset"],
            legacy_keys=entry["legacy_keys"],
        )


def load_families() -> None:
    """Import every module of ``ferbench.models`` (each family file fills the registry when imported).

    Re-scans only when the package's search path changed since the last scan, so calling it per lookup
    costs nothing. Raises ``ValueError`` for an alias whose network no file registers.
    """
    global _SCANNED
    pkg = importlib.import_module("ferbench.models")
    paths = tuple(pkg.__path__)
    if paths == _SCANNED:
        return
    for mod in pkgutil.iter_modules(list(paths)):
        if not mod.name.startswith("_"):
            importlib.import_module(f"ferbench.models.{mod.name}")
    _SCANNED = paths
    if _PENDING_ALIASES:
        missing = ", ".join(f"{p['alias']} → {p['network']}" for p in _PENDING_ALIASES)
        raise ValueError(f"aliases of unregistered models: {missing}")


def list_models(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Sorted registry names matching a shell-style ``pattern`` (e.g. ``"resnet*"``).

    Only canonical names (one per network) unless ``include_aliases``.
    """
    load_families()
    return sorted(
        n for n, i in _REGISTRY.items() if (include_aliases or not i.is_alias) and fnmatch.fnmatch(n, pattern)
    )


def model_info(name: str) -> ModelInfo:
    """Registry entry for ``name`` (canonical or alias; ``.network`` is the canonical name).

    Unknown names raise a one-line error with close matches.
    """
    load_families()
    if name not in _REGISTRY:
        raise unknown_model_error(name, _REGISTRY)
    return _REGISTRY[name]


def check_options(info: ModelInfo, options: dict[str, Any]) -> None:
    """One-line :class:`FerbenchError` for options the builder of ``info`` does not take."""
    if info.accepts_any:
        return
    bad = sorted(set(options) - set(info.options))
    if bad:
        known = ", ".join(sorted(info.options)) or "none"
        raise FerbenchError(
            f"model {info.name!r} does not take option(s) {', '.join(bad)} (its options: {known})"
        )


def _legacy_key_hook(renames: tuple[tuple[str, str], ...]) -> Callable[..., None]:
    """A ``load_state_dict`` pre-hook renaming keys of an older layout (only keys the module lacks)."""

    def hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
        own = set(module.state_dict(prefix=prefix))
        for key in [k for k in state_dict if k.startswith(prefix) and k not in own]:
            rest = key[len(prefix):]
            for old, new in renames:
                cand = prefix + new + rest[len(old):]
                if rest.startswith(old) and cand in own and cand not in state_dict:
                    state_dict[cand] = state_dict.pop(key)
                    break

    return hook


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
        name: registry name or alias (see :func:`list_models`).
        num_classes: number of output logits.
        in_chans: input channels (1 = grey, 3 = RGB); defaults to the model's registered channels.
        input_size: square input side; defaults to the model's registered size (some custom nets size
            their dense layers from it).
        head: classifier head for backbones that accept one (``"seed000"``, ``"linear"``, …).
        init: ``"scratch"``, ``"file:PATH"``, ``"imagenet"`` or ``"run:RUN_DIR"`` (see
            :func:`ferbench.models.init.apply_init`).
        **kwargs: builder options (see ``ferbench models info NAME``); an unknown one is a one-line
            :class:`FerbenchError` naming it and the model.

    Returns:
        ``nn.Module`` with ``.ferbench_info`` (the :class:`ModelInfo` of ``name``) attached; forward maps
        ``(B, C, S, S)`` float → ``(B, num_classes)`` logits.
    """
    info = model_info(name)
    if head is not None:
        kwargs["head"] = head
    check_options(info, kwargs)
    call: dict[str, Any] = {**info.preset, **kwargs, "num_classes": num_classes}
    takes = set(inspect.signature(info.fn).parameters)
    if info.accepts_any or "in_chans" in takes:
        call["in_chans"] = in_chans if in_chans is not None else info.in_chans
    elif in_chans is not None and in_chans != info.in_chans:
        raise FerbenchError(f"model {name!r} takes {info.in_chans}-channel input only, not {in_chans}")
    if info.accepts_any or "input_size" in takes:
        call["input_size"] = input_size if input_size is not None else info.input_size
    model = info.fn(**call)
    model.ferbench_info = info  # type: ignore[attr-defined]
    if info.legacy_keys:
        model._register_load_state_dict_pre_hook(_legacy_key_hook(info.legacy_keys), with_module=True)
    if init and init != "scratch":
        from ferbench.models.init import apply_init

        apply_init(model, init, name=name, num_classes=num_classes)
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters (PyTorch count = Keras *trainable* count when fully unfrozen)."""
    return sum(p.numel() for p in model.parameters())
