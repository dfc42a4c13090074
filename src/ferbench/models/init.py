"""Model initialisation: ``scratch``, ``file:PATH``, ``imagenet``, ``run:RUN_DIR`` (+ Keras-faithful init).

Nothing here downloads anything. ``imagenet`` reads timm weights from the local Hugging Face cache
only (``HF_HUB_OFFLINE=1``); ``file:`` accepts a safetensors file or a torch state dict (loaded with
``weights_only=True``, never unpickling objects); ``run:`` transfers a ferbench checkpoint trained on
another FER dataset, remapping classifier rows to the new classes by canonical name.

Every mode returns a small report dict (what was loaded, what was missing/unexpected/skipped).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferbench.errors import ConfigError, FerbenchError

INIT_MODES = ("scratch", "file:PATH", "imagenet", "run:RUN_DIR")
_MAX_LISTED = 8


# --------------------------------------------------------------------------------------------- Keras faithful
def keras_faithful_(model: nn.Module) -> nn.Module:
    """Keras defaults in place: BN eps 1e-3 / momentum 0.01 (= Keras 0.99), Glorot-uniform kernels, zero bias.

    Returns ``model`` (modified in place).
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps, m.momentum = 1e-3, 0.01
        elif isinstance(m, nn.LayerNorm):
            m.eps = 1e-3
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            if getattr(m, "keras_init", None) == "uniform":  # kernel_initializer='uniform' = U(-0.05, 0.05)
                nn.init.uniform_(m.weight, -0.05, 0.05)
            elif getattr(m, "keras_init", None) == "he_normal":
                nn.init.trunc_normal_(m.weight, std=(2.0 / _fan_in(m)) ** 0.5)
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def relu_init_(model: nn.Module) -> nn.Module:
    """He initialisation for deep ReLU nets without normalisation: conv kernels ``N(0, 2 / fan_in)`` (the
    forward signal keeps its variance through each conv + ReLU), dense ``N(0, 0.01²)`` as torchvision's VGG,
    zero biases. Returns ``model`` (modified in place).

    PyTorch's default (``U(±1/√fan_in)`` kernels and biases) shrinks the signal at every ReLU layer; in a
    net of ~20 convolutions without BN the logits at initialisation no longer depend on the input beyond
    bf16's resolution (``benchmarks/init_signal.py``), and training under bf16 autocast does not start.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def _fan_in(m: nn.Module) -> int:
    w = m.weight
    return int(w.shape[1] * (w[0, 0].numel() if w.dim() > 2 else 1))


# --------------------------------------------------------------------------------------------- helpers
def _short(keys: list[str]) -> list[str]:
    return keys[:_MAX_LISTED] + (
        [f"... (+{len(keys) - _MAX_LISTED} more)"] if len(keys) > _MAX_LISTED else []
    )


def _timm_submodules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Outermost submodules that are timm models (they carry ``pretrained_cfg``), with their dotted path."""
    found: list[tuple[str, nn.Module]] = []
    for path, m in model.named_modules():
        if getattr(m, "pretrained_cfg", None) and not any(
            path.startswith(p + ".") or p == "" for p, _ in found
        ):
            found.append((path, m))
    return found


def _read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or of a torch state dict (``weights_only=True``)."""
    if not path.is_file():
        raise FerbenchError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FerbenchError:
        raise
    except Exception as e:  # noqa: BLE001  (safetensors / torch raise many types)
        raise FerbenchError(
            f"{path}: not a readable safetensors file or torch state dict "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FerbenchError(f"{path}: does not contain a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _classifier_keys(target: dict[str, torch.Tensor], num_classes: int) -> set[str]:
    """Names of weights/biases of Linear-like layers whose output dimension is ``num_classes``."""
    keys: set[str] = set()
    for k, v in target.items():
        if k.endswith(".weight") and v.dim() == 2 and v.shape[0] == num_classes:
            keys.add(k)
            bias = k[: -len("weight")] + "bias"
            if bias in target and target[bias].shape == (num_classes,):
                keys.add(bias)
    return keys


def _match_prefix(model: nn.Module, src: dict[str, torch.Tensor]) -> str:
    """The prefix (``""`` or a timm submodule path + ``"."``) under which ``src`` keys fit ``model`` best."""
    target = model.state_dict()
    best, best_n = "", -1
    for prefix in [""] + [p + "." for p, _ in _timm_submodules(model) if p]:
        n = sum(1 for k, v in src.items() if prefix + k in target and target[prefix + k].shape == v.shape)
        if n > best_n:
            best, best_n = prefix, n
    return best


def load_matching(
    model: nn.Module, src: dict[str, torch.Tensor], prefix: str = "", skip: set[str] | None = None
) -> dict[str, Any]:
    """Copy every ``src`` tensor whose ``prefix + key`` exists in ``model`` with the same shape.

    Returns ``{"loaded": n, "missing": [...], "unexpected": [...], "shape_mismatch": [...]}`` (lists
    truncated to a few names; counts in ``n_missing`` etc.).
    """
    skip = skip or set()
    target = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    unexpected, mismatch = [], []
    for k, v in src.items():
        tk = prefix + k
        if tk in skip:
            continue
        if tk not in target:
            unexpected.append(k)
        elif target[tk].shape != v.shape:
            mismatch.append(f"{k} {tuple(v.shape)}->{tuple(target[tk].shape)}")
        else:
            new[tk] = v.to(target[tk].dtype)
    missing = [k for k in target if k not in new and k not in skip and not k.endswith("num_batches_tracked")]
    model.load_state_dict(new, strict=False)
    return {
        "loaded": len(new),
        "n_missing": len(missing),
        "missing": _short(missing),
        "n_unexpected": len(unexpected),
        "unexpected": _short(unexpected),
        "n_shape_mismatch": len(mismatch),
        "shape_mismatch": _short(mismatch),
    }


# --------------------------------------------------------------------------------------------- modes
def init_from_file(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a safetensors file or a timm/torchvision/ferbench state dict into ``model`` (non-strict).

    Keys are matched as they are, or under the model's timm backbone prefix (e.g. a plain timm
    ``resnet18`` state dict into a model whose backbone is ``model.backbone``), whichever fits more.
    """
    path = Path(path).expanduser()
    src = _read_state_file(path)
    prefix = _match_prefix(model, src)
    rep = load_matching(model, src, prefix)
    if rep["loaded"] == 0:
        raise FerbenchError(f"{path}: no tensor matches the model (first keys: {', '.join(list(src)[:3])})")
    return {"init": f"file:{path}", "prefix": prefix, **rep}


def hf_cache_dir() -> str | None:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _cached_timm_file(hf_hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(hf_hub_id, fname, cache_dir=hf_cache_dir())
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def init_imagenet(model: nn.Module, name: str) -> dict[str, Any]:
    """ImageNet weights for every timm backbone inside ``model``, from the local HF cache only.

    Raises a one-line :class:`FerbenchError` naming the missing repo/file (and how to provide it)
    when the weights are not cached, or when the model has no timm backbone (custom nets).
    """
    from ferbench.models._offline import ensure_hub_offline

    ensure_hub_offline()
    subs = _timm_submodules(model)
    if not subs:
        raise FerbenchError(
            f"model {name!r} has no timm ImageNet weights (custom network); "
            "use --init scratch, file:PATH or run:RUN_DIR"
        )
    reports = []
    for path, sub in subs:
        cfg = dict(sub.pretrained_cfg)
        hub = cfg.get("hf_hub_id")
        arch = cfg.get("architecture") or getattr(sub, "default_cfg", {}).get("architecture")
        tag = cfg.get("tag")
        fname = _cached_timm_file(hub) if hub else None
        if fname is None:
            raise FerbenchError(
                f"ImageNet weights for {name!r} not in the local Hugging Face cache "
                f"({hub or arch}/model.safetensors); fetch them on a connected machine with "
                f"`hf download {hub or arch}` (or copy the file) and set HF_HOME, or pass --init file:PATH"
            )
        in_chans = _in_chans(sub)
        src_model = _timm_pretrained(f"{arch}.{tag}" if tag else str(arch), fname, in_chans)
        classifier = cfg.get("classifier") or ""
        src = {
            k: v
            for k, v in src_model.state_dict().items()
            if not (classifier and k.startswith(classifier + "."))
        }
        prefix = path + "." if path else ""
        rep = load_matching(model, src, prefix)
        reports.append({"backbone": path or "<model>", "weights": str(fname), **rep})
    return {"init": "imagenet", "backbones": reports, "loaded": sum(r["loaded"] for r in reports)}


def _in_chans(m: nn.Module) -> int:
    for p in m.parameters():
        if p.dim() == 4:
            return int(p.shape[1])
    return 3


def _timm_pretrained(arch: str, file: Path, in_chans: int) -> nn.Module:
    """A timm model built from a local weights file (timm adapts ``in_chans`` and filters keys)."""
    import timm

    try:
        return timm.create_model(
            arch, pretrained=True, in_chans=in_chans, pretrained_cfg_overlay={"file": str(file)}
        )
    except Exception as e:  # noqa: BLE001
        raise FerbenchError(f"{file}: cannot load as {arch} ImageNet weights ({type(e).__name__})") from None


def init_from_run(
    model: nn.Module, run_dir: str | Path, num_classes: int, classes: list[str] | None
) -> dict[str, Any]:
    """Transfer a ferbench checkpoint (run dir / .safetensors) into ``model``.

    All tensors with matching name and shape are copied. Classifier layers (Linear weights with
    ``num_classes`` output rows) are remapped row by row: target class ``i`` takes the source row
    of the class with the same canonical name; target classes absent from the source keep their
    fresh initialisation. Without ``classes`` the target is assumed to use the source class list.
    """
    from ferbench.data.taxonomy import canonical_name
    from ferbench.persist import read_sidecar, read_weights, resolve_checkpoint

    ckpt = resolve_checkpoint(run_dir)
    meta = read_sidecar(ckpt)
    src_classes = [str(c) for c in meta.get("classes") or []]
    if not src_classes:
        raise FerbenchError(f"{ckpt.with_suffix('.json')}: sidecar has no 'classes' list")
    src = read_weights(ckpt)
    tgt_classes = list(classes) if classes is not None else src_classes[:num_classes]
    if len(tgt_classes) != num_classes:
        raise ConfigError(f"{len(tgt_classes)} target classes given for a {num_classes}-class model")
    target = model.state_dict()
    cls_keys = {
        k
        for k in _classifier_keys(target, num_classes)
        if k in src and src[k].shape[0] == len(src_classes) and src[k].shape[1:] == target[k].shape[1:]
    }
    src_pos = {canonical_name(c) or c: j for j, c in enumerate(src_classes)}
    rows = {i: src_pos.get(canonical_name(c) or c) for i, c in enumerate(tgt_classes)}
    with torch.no_grad():
        for k in cls_keys:
            t = target[k].clone()
            for i, j in rows.items():
                if j is not None:
                    t[i] = src[k][j]
            target[k].copy_(t)
    model.load_state_dict({k: target[k] for k in cls_keys}, strict=False)
    rep = load_matching(model, {k: v for k, v in src.items() if k not in cls_keys}, skip=cls_keys)
    if rep["loaded"] == 0 and not cls_keys:
        raise FerbenchError(
            f"{ckpt}: no tensor matches the model (source architecture "
            f"{meta.get('architecture', {}).get('name')!r})"
        )
    mapped = {c: src_classes[j] for c, j in zip(tgt_classes, rows.values(), strict=True) if j is not None}
    return {
        "init": f"run:{run_dir}",
        "source_architecture": meta.get("architecture", {}).get("name"),
        "source_dataset": meta.get("dataset"),
        "source_classes": src_classes,
        "classifier_layers": sorted(cls_keys),
        "class_map": mapped,
        "new_classes": [c for c, j in zip(tgt_classes, rows.values(), strict=True) if j is None],
        **rep,
    }


def apply_init(
    model: nn.Module, init: str, *, name: str, num_classes: int, classes: list[str] | None = None
) -> dict[str, Any]:
    """Initialise ``model`` in place according to ``init`` and return a report dict.

    Args:
        model: a freshly built registry model.
        init: ``"scratch"`` | ``"file:PATH"`` | ``"imagenet"`` | ``"run:RUN_DIR"``.
        name: registry name (for messages).
        num_classes: number of output logits of ``model``.
        classes: canonical target class names (index = logit), used by ``run:`` to remap the classifier.
    """
    init = (init or "scratch").strip()
    if init == "scratch":
        return {"init": "scratch"}
    if init.startswith("file:"):
        return init_from_file(model, init[5:])
    if init == "imagenet":
        return init_imagenet(model, name)
    if init.startswith("run:"):
        return init_from_run(model, init[4:], num_classes, classes)
    raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INIT_MODES)}")
