"""Model zoo: parameter counts against docs/protocol.md §2.17, forward + backward for every zoo model, registry rules."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys

import pytest
import torch
from torch import nn

from ferbench.errors import FerbenchError
from ferbench.models import count_params, create_model, list_models, model_info
from ferbench.models.cost import build_meta
from ferbench.train.policies import apply_policy, head_module_names

torch.set_num_threads(1)

# The seed papers' networks and the timm / light extras (the ESR networks, esr_*, have their own tests:
# they need the ESR method and cannot all be built on the meta device).
ZOO_FAMILIES = {"seed000_keras", "seed000_custom", "seed001", "seed002", "seed003", "light", "timm"}
ZOO = [n for n in list_models() if model_info(n).family in ZOO_FAMILIES]  # one name per network
NAMES = [n for n in list_models(include_aliases=True) if model_info(n).family in ZOO_FAMILIES]  # + aliases

# Where timm's architecture differs from Keras, docs/protocol.md §2.17 gives both numbers; the registry carries
# the Keras (spec) number, the model has the timm number. Keyed by network (canonical name).
TIMM_DIFFERS = {
    # Keras ResNet50 convs have biases (+26 560 params); timm resnet50 has none.
    ("resnet50", 48): 24_066_375,
    ("resnet50", 224): 24_066_375,
    # Keras InceptionV3 BatchNorm has scale=False (no γ, -17 216 params); timm's BN has γ.
    ("inceptionv3", 224): 22_343_911,
}


@functools.cache
def _meta(name: str, size: int, num_classes: int = 7) -> nn.Module:
    """A meta-device build (same modules, no memory), shared by the tests below."""
    return build_meta(name, size, num_classes=num_classes)


SPEC = [(n, s, e) for n in NAMES for s, e in sorted(model_info(n).expected_params.items())]


def test_zoo_has_every_seed_model() -> None:
    required = {
        "vgg16_in",
        "vgg16_vf",
        "vgg16_sc",
        "vgg19",
        "mobilenet",
        "mobilenet_alt",
        "mobilenetv2",
        "efficientnetv2_b0",
        "efficientnet_b0",
        "nasnet_mobile",
        "resnet50_in",
        "resnet50_vf",
        "senet50_vf",
        "densenet121",
        "xception",
        "inceptionv3",
        "resnet18_dd",
        "repvgg_repo",
        "googlenet_repo",
        "vggnet",
        "alexnet",
        "zf_net",
        "mnist_net",
        "lenet5",
        "seq3conv",
        "seq4conv",
        "seq_simple",
        "ensemble3",
        "modular",
        "smmb",
        "mediapipe_vggnet",
        "shallow_cnn_s002",
        "resnet18_s002",
        "vgg16_s002",
        "resnet50_s002",
        "inceptionv3_s002",
        "resnet18_s003",
        "resnet34_s003",
        "resnet50_s003",
        "resnet18_s001",
        "mobilenetv3_small",
        "mobilenetv3_large",
        "efficientnet_lite0",
        "ghostnet_100",
        "convnext_atto",
    }
    assert required <= set(list_models(include_aliases=True))


@pytest.mark.parametrize(("name", "size", "expected"), SPEC, ids=[f"{n}@{s}" for n, s, _ in SPEC])
def test_param_count_matches_spec(name: str, size: int, expected: int) -> None:
    # Built on the meta device: the same modules, no memory (134 M-param VGGNet@224 costs nothing).
    n = count_params(_meta(name, size))
    if (model_info(name).network, size) in TIMM_DIFFERS:
        assert n == TIMM_DIFFERS[model_info(name).network, size]
        assert abs(n - expected) / expected < 0.005
    else:
        assert n == expected


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "expected"),
    [
        ("mobilenetv2", {"head": "alt1024"}, 48, 5_113_607),
        ("efficientnetv2_b0", {"pool": "flatten"}, 48, 7_203_479),  # Flatten of the 2×2 map
        ("vgg16_in", {"pool": "flatten"}, 224, 21_171_271),
        ("vgg19", {"pool": "flatten"}, 224, 26_480_967),
        ("resnet50_in", {"pool": "flatten"}, 224, 49_232_199),  # docs/protocol.md §2.17 "timm 49 232 199"
        ("xception", {"pool": "flatten"}, 224, 46_531_119),
        ("seq3conv", {}, 224, 1_364_679),
    ],
)
def test_param_count_variants(name: str, kwargs: dict, size: int, expected: int) -> None:
    assert count_params(build_meta(name, size, **kwargs)) == expected


@pytest.mark.parametrize(
    ("name", "size", "approx"),
    [
        # docs/protocol.md §2.17 "hypothetical" 224-px sizes, given to 3–4 significant digits.
        ("seq4conv", 224, 279.7e6),
        ("smmb", 224, 106.2e6),
        ("lenet5", 224, 5.41e6),
        ("mnist_net", 224, 214.4e6),
        ("zf_net", 224, 58.3e6),
    ],
)
def test_param_count_hypothetical_224(name: str, size: int, approx: float) -> None:
    assert abs(count_params(_meta(name, size)) - approx) < 0.0005 * approx + 5e4


def test_seed002_counts_against_keras_totals() -> None:
    # Keras totals include BN moving mean/var (buffers here): ResNet-18 11 184 647 on 1-channel input.
    m = _meta("resnet18_s002", 48)
    bn = sum(mod.num_features * 2 for mod in m.modules() if isinstance(mod, nn.BatchNorm2d))
    assert count_params(m) + bn == 11_184_647
    # Paper quotes 34 397 991 for InceptionV3@75 + head (Keras total; its BN has no γ): timm within 0.5 %.
    assert abs(count_params(_meta("inceptionv3_s002", 75)) - 34_397_991) / 34_397_991 < 0.005


def _size_for(name: str) -> int:
    info = model_info(name)
    return 48 if 48 in info.sizes else min(info.sizes)


# 20 M+ parameter models: forward/backward at 48 px only in the slow set (building them dominates CI time).
BIG = {
    "alexnet",
    "zf_net",
    "vggnet",
    "repvgg_repo",
    "vgg19",
    "resnet50",
    "resnet50_s002",
    "resnet50_s003",
    "resnet34_s003",
}
FAST = [n for n in ZOO if _size_for(n) == 48 and n not in BIG]
SLOW = [(n, s) for n in ZOO for s in model_info(n).sizes if s != 48 or n in BIG]


def _forward_backward(name: str, size: int) -> None:
    info = model_info(name)
    model = create_model(name, num_classes=5, input_size=size).train()
    x = torch.rand(2, info.in_chans, size, size)
    out = model(x)
    assert out.shape == (2, 5) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    head = _classifier(model)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def _classifier(model: nn.Module) -> nn.Module:
    """The classification layers as the fine-tuning policies find them (head / classifier / fc)."""
    return nn.ModuleList([model.get_submodule(n) for n in head_module_names(model)])


@pytest.mark.parametrize("name", FAST)
def test_forward_backward_48(name: str) -> None:
    _forward_backward(name, 48)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), SLOW, ids=[f"{n}@{s}" for n, s in SLOW])
def test_forward_backward_other_sizes(name: str, size: int) -> None:
    _forward_backward(name, size)


@pytest.mark.parametrize("name", ZOO)
def test_head_and_target_layer(name: str) -> None:
    """Every zoo model exposes head/classifier/fc ending in num_classes, and a Grad-CAM layer (>1×1 map)."""
    info = model_info(name)
    size = _size_for(name)
    model = _meta(name, size)
    head = _classifier(model)
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    assert last.out_features == 7
    layer = model.get_submodule(info.target_layer)
    seen: list[torch.Size] = []
    hook = layer.register_forward_hook(lambda _m, _i, o: seen.append(o.shape))
    try:
        model(torch.zeros(1, info.in_chans, size, size, device="meta"))
    finally:
        hook.remove()
    assert seen and seen[0][-1] > 1 and seen[0][-2] > 1, f"{info.target_layer} map {seen}"


def test_faithful_switch_keras_bn_and_glorot() -> None:
    torch.manual_seed(0)
    m = create_model("mobilenetv2", faithful=True)
    bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert bns and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    lin = m.head[0]
    bound = (6 / (lin.in_features + lin.out_features)) ** 0.5  # Glorot-uniform bound
    assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.9 * bound
    assert lin.bias.abs().sum() == 0
    z = create_model("zf_net", faithful=True)
    assert z.features[0].weight.abs().max() <= 0.05  # kernel_initializer='uniform' = U(±0.05)
    plain = create_model("mobilenetv2")
    assert all(b.eps == 1e-5 for b in plain.modules() if isinstance(b, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["googlenet_repo", "mnist_net"])
def test_deep_nets_without_bn_start_with_logits_that_depend_on_the_input(name: str) -> None:
    """From PyTorch's default init these nets' logits vary across inputs by less than bf16's resolution
    relative to their size (training under bf16 autocast does not start); with relu_init_ they do vary."""
    torch.manual_seed(0)
    x = torch.rand(8, 3, 48, 48)

    def ratio(m: torch.nn.Module) -> float:
        m.eval()
        with torch.no_grad():
            z = m(x)
        return float(z.std(0).mean() / z.abs().mean())

    model = create_model(name, num_classes=7, in_chans=3, input_size=48)
    assert ratio(model) > 0.05
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.reset_parameters()  # PyTorch's default
    assert ratio(model) < 2.0 ** -8


def test_ensemble3_outputs_log_of_mean_softmax() -> None:
    torch.manual_seed(0)
    m = create_model("ensemble3").eval()
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        mean = torch.stack([b(x).softmax(1) for b in m.branches]).mean(0)
        out = m(x)
    torch.testing.assert_close(out.softmax(1), mean)
    assert head_module_names(m) == ["branches.0.head", "branches.1.head", "branches.2.head"]


def test_repvgg_partial_stop_grad_blocks_second_half() -> None:
    from ferbench.models.seed000_custom import HalfStopGrad

    x = torch.rand(2, 8, 3, 3, requires_grad=True)
    HalfStopGrad()(x).sum().backward()
    assert (x.grad[:, :4] == 1).all() and (x.grad[:, 4:] == 0).all()
    m = create_model("repvgg_repo", partial_stop_grad=True)
    assert sum(isinstance(k, HalfStopGrad) for k in m.features) == 10
    assert count_params(m) == 26_439_303


def test_seed003_last_stage_names() -> None:
    m = _meta("resnet18_s003", 48)
    assert isinstance(m.backbone.fc, nn.Linear) and m.backbone.fc.out_features == 7
    m = create_model("resnet18_s003")
    n_train = apply_policy(m, "last-stage")
    assert n_train == count_params(m.backbone.layer4) + count_params(m.backbone.fc)
    assert apply_policy(m, "head-only") == 512 * 7 + 7
    for name in ("resnet34_s003", "resnet50_s003"):  # bare timm ResNets: layer4 + fc
        r = _meta(name, 48)
        assert apply_policy(r, "last-stage") == count_params(r.layer4) + count_params(r.fc)


def test_nasnet_mobile_matches_keras_totals() -> None:
    """Backbone = Keras NASNetMobile: 4 232 978 trainable, + BN moving statistics = 4 269 716 total."""
    bb = _meta("nasnet_mobile", 48).backbone
    bn = sum(m.num_features * 2 for m in bb.modules() if isinstance(m, nn.BatchNorm2d))
    assert count_params(bb) == 4_232_978 and count_params(bb) + bn == 4_269_716
    cells = [n for n in dict(bb.named_children()) if n.startswith("cell_") and "stem" not in n]
    assert cells == [f"cell_{i}" for i in range(12)]


def test_resnet18_dd_stems() -> None:
    small, big = _meta("resnet18_dd", 48), _meta("resnet18_dd", 224)
    assert small.backbone.conv1.kernel_size == (3, 3) and isinstance(small.backbone.maxpool, nn.Identity)
    assert big.backbone.conv1.kernel_size == (7, 7) and isinstance(big.backbone.maxpool, nn.MaxPool2d)


def test_vgg16_s002_heads() -> None:
    a = _meta("vgg16_s002", 48)
    b = build_meta("vgg16_s002", 48, head="nopretrain")
    assert count_params(a) == 14_714_688 + (512 * 4096 + 4096) + (4096 * 1024 + 1024) + (1024 * 7 + 7)
    assert count_params(b) < count_params(a)
    with pytest.raises(FerbenchError, match="unknown vgg16_s002 head"):
        create_model("vgg16_s002", head="nope")


def test_unknown_model_and_bad_options_are_one_line_errors() -> None:
    with pytest.raises(FerbenchError, match=r"unknown model 'vgg16_inn'.*Did you mean: vgg16_in"):
        create_model("vgg16_inn")
    with pytest.raises(FerbenchError, match="unknown pool 'max'"):
        create_model("mobilenet", pool="max")
    with pytest.raises(FerbenchError, match="unknown head 'big'"):
        create_model("mobilenet", head="big")
    with pytest.raises(FerbenchError, match="too small"):
        create_model("inceptionv3", input_size=48)
    with pytest.raises(FerbenchError, match=r"model 'lenet5' does not take option\(s\) head"):
        create_model("lenet5", head="seed000")


# --------------------------------------------------------------------------------------------- registry rules
@pytest.mark.parametrize("name", ZOO)
def test_registered_defaults_are_the_builders_own(name: str) -> None:
    """Input size and channels come from the builder's signature, and the model runs at them."""
    info = model_info(name)
    params = inspect.signature(info.fn).parameters
    if "in_chans" in params:
        assert info.in_chans == params["in_chans"].default
    if "input_size" in params:
        assert info.input_size == params["input_size"].default
    model = _meta(name, info.input_size)
    out = model(torch.zeros(2, info.in_chans, info.input_size, info.input_size, device="meta"))
    assert out.shape == (2, 7)


def test_create_model_uses_registered_size_and_channels() -> None:
    grey = create_model("fer_vgg_s")  # the builder's own default: 1 channel
    assert model_info("fer_vgg_s").in_chans == 1 and grey.features[0][0].in_channels == 1
    assert create_model("shallow_cnn_s002").features[0][0].in_channels == 1
    assert create_model("fer_vgg_s", in_chans=3).features[0][0].in_channels == 3
    # InceptionV3 is registered at 224 px: built there by default (at 48 px its last map would be 1×1)
    assert model_info("inceptionv3").input_size == 224
    inc = build_meta("inceptionv3", model_info("inceptionv3").input_size)
    assert inc(torch.zeros(2, 3, 224, 224, device="meta")).shape == (2, 7)
    # an alias may carry its paper's default size: seed 001 ran its ResNet-18 at 96 px
    assert model_info("resnet18_s001").input_size == 96 and model_info("resnet18").input_size == 48
    # a builder without an in_chans parameter cannot silently get another channel count
    from ferbench.models import registry

    info = model_info("fer_vgg_s")
    fixed = dataclasses.replace(info, fn=lambda num_classes, drop_rate=0.3: info.fn(num_classes, 1, drop_rate))
    with pytest.raises(FerbenchError, match="takes 1-channel input only, not 3"):
        registry._REGISTRY["fer_vgg_s"] = fixed
        try:
            create_model("fer_vgg_s", in_chans=3)
        finally:
            registry._REGISTRY["fer_vgg_s"] = info


def test_unknown_option_is_one_line_error_naming_option_and_model() -> None:
    with pytest.raises(FerbenchError) as e:
        create_model("fer_vgg_m", drop_rat=0.1)
    msg = str(e.value)
    assert msg == "model 'fer_vgg_m' does not take option(s) drop_rat (its options: drop_rate)"
    with pytest.raises(FerbenchError, match=r"model 'resnet18_s001' does not take option\(s\) depth, pool \(its "
                                            r"options: drop_rate, head, imagenet_tag\)"):
        create_model("resnet18_s001", pool="gap", depth=3)
    with pytest.raises(FerbenchError, match=r"model 'inceptionv3_s002' does not take option\(s\) head \(its options: "
                                            r"none\)"):
        create_model("inceptionv3_s002", head="linear")
    with pytest.raises(FerbenchError, match="resnet18: unknown imagenet_tag 'in22k'; choose one of .*tv_in1k"):
        create_model("resnet18", imagenet_tag="in22k")


def test_options_are_the_builders_keyword_parameters() -> None:
    assert model_info("vgg16").options == {"head": None, "pool": None, "faithful": False, "drop_rate": 0.0}
    assert model_info("fer_vgg_l").options == {"drop_rate": 0.4}
    assert model_info("lenet5").options == {"faithful": False}


def _structure(model: nn.Module) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """(#params, shapes of all parameters and buffers in module order): equal for the same network."""
    shapes = tuple(tuple(t.shape) for t in [*model.parameters(), *model.buffers()])
    return count_params(model), shapes


def test_one_name_per_network() -> None:
    """No two canonical zoo names build the same network (same parameter and buffer shapes, in order)."""
    seen: dict[tuple[int, tuple[tuple[int, ...], ...]], str] = {}
    for name in ZOO:
        key = _structure(_meta(name, model_info(name).input_size))
        assert key not in seen, f"{name} is the same network as {seen[key]}: register it as an alias"
        seen[key] = name


@pytest.mark.parametrize(
    ("alias", "network", "paper"),
    [("resnet18_s001", "resnet18", "001"), ("resnet18_s003", "resnet18", "003"), ("vgg16_in", "vgg16", "000"),
     ("vgg16_vf", "vgg16", "000"), ("vgg16_sc", "vgg16", "000"), ("resnet50_in", "resnet50", "000"),
     ("resnet50_vf", "resnet50", "000")],
)
def test_alias_builds_its_network(alias: str, network: str, paper: str) -> None:
    info = model_info(alias)
    assert info.is_alias and info.network == network and info.paper == paper
    assert alias not in list_models() and alias in list_models(include_aliases=True)
    assert alias in model_info(network).aliases and not model_info(network).is_alias
    size = 224 if alias == "resnet50_vf" else 48
    a, n = _meta(alias, size), _meta(network, size)
    assert _structure(a) == _structure(n)
    assert list(a.state_dict()) == list(n.state_dict())  # one checkpoint layout for all names
    assert a.ferbench_info.name == alias  # the name the caller used travels with the model


def test_resnet18_names_are_one_network_with_their_papers_weights() -> None:
    assert count_params(_meta("resnet18", 48)) == 11_180_103
    assert _meta("resnet18_s003", 48).backbone.pretrained_cfg["tag"] == "tv_in1k"  # torchvision weights
    assert _meta("resnet18_s001", 96).backbone.pretrained_cfg["tag"] == "tv_in1k"
    assert _meta("resnet18", 48).backbone.pretrained_cfg["tag"] == "a1_in1k"
    over = build_meta("resnet18_s003", 48, imagenet_tag="a1_in1k")  # a preset is a default, not a lock
    assert over.backbone.pretrained_cfg["tag"] == "a1_in1k"
    assert list_models("resnet18*") == ["resnet18", "resnet18_dd", "resnet18_s002"]
    assert list_models("resnet18*", include_aliases=True) == [
        "resnet18", "resnet18_dd", "resnet18_s001", "resnet18_s002", "resnet18_s003"]


def test_alias_loads_checkpoints_of_its_old_layout() -> None:
    """resnet18_s003 was a bare timm ResNet and resnet18_s001 a backbone + top-level fc: both still load."""
    import timm

    torch.manual_seed(0)
    bare = timm.create_model("resnet18", num_classes=7)
    m = create_model("resnet18_s003")
    m.load_state_dict(bare.state_dict())  # strict: every key renamed to backbone.*
    assert torch.equal(m.backbone.layer4[1].conv2.weight, bare.layer4[1].conv2.weight)
    old_s001 = {f"backbone.{k}": v for k, v in bare.state_dict().items() if not k.startswith("fc.")}
    old_s001 |= {"fc.weight": bare.fc.weight, "fc.bias": bare.fc.bias}
    m1 = create_model("resnet18_s001")
    m1.load_state_dict(old_s001)
    assert torch.equal(m1.backbone.fc.weight, bare.fc.weight)
    m1.load_state_dict(m.state_dict())  # the current layout loads as is
    with pytest.raises(RuntimeError, match="Missing key"):  # the canonical name has no old layout
        create_model("resnet18").load_state_dict(bare.state_dict())


def test_family_comes_from_the_module() -> None:
    for name in NAMES:
        info = model_info(name)
        module = sys.modules[info.fn.__module__] if not info.is_alias else None
        if module is not None:
            assert info.family == getattr(module, "FAMILY", info.fn.__module__.rsplit(".", 1)[-1])
    assert model_info("shallow_cnn_s002").family == "seed002"  # ferbench.models.seed002
    assert model_info("resnet18_s002").family == "seed002"  # seed002_extra.py sets FAMILY once
    assert model_info("fer_vgg_s").family == "fernet"
    assert model_info("resnet18").family == "timm"  # timm_models.py sets FAMILY
    assert model_info("resnet18_s001").family == "seed001"  # an alias: the file that declares it


FAMILY_FILE = '''
"""A family file written by a test."""
from torch import nn

from ferbench.models.registry import register_alias, register_model


@register_model(target_layer="0", expected_params={{40: 7 * 40 * 40 * 2 + 7}})
def tiny_{tag}(num_classes: int = 7, in_chans: int = 2, input_size: int = 40, width: int = 1) -> nn.Module:
    """Flatten → Linear."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * input_size * input_size * width, num_classes))


register_alias("tiny_{tag}_paper", "tiny_{tag}", paper="009", preset={{"width": 1}})
'''


def test_new_family_file_is_found_without_editing_the_package(tmp_path, monkeypatch) -> None:
    """Adding an architecture = one file with a decorated builder: the registry imports it by itself."""
    import ferbench.models
    from ferbench.models import registry

    tag = tmp_path.name.replace("-", "_").lower()[-12:]
    (tmp_path / f"fam_{tag}.py").write_text(FAMILY_FILE.format(tag=tag))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SCANNED", registry._SCANNED)
    monkeypatch.setattr(ferbench.models, "__path__", [*ferbench.models.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, f"ferbench.models.fam_{tag}", raising=False)
    try:
        info = model_info(f"tiny_{tag}")  # the next lookup scans the package and imports the new file
        assert info.family == f"fam_{tag}" and info.in_chans == 2 and info.input_size == 40
        assert info.options == {"width": 1}
        m = create_model(f"tiny_{tag}", num_classes=7)
        assert m(torch.zeros(3, 2, 40, 40)).shape == (3, 7) and count_params(m) == 7 * 40 * 40 * 2 + 7
        assert f"tiny_{tag}" in list_models() and f"tiny_{tag}_paper" in list_models(include_aliases=True)
        assert model_info(f"tiny_{tag}_paper").network == f"tiny_{tag}"
        with pytest.raises(FerbenchError, match=rf"model 'tiny_{tag}' does not take option\(s\) head"):
            create_model(f"tiny_{tag}", head="linear")
    finally:
        sys.modules.pop(f"ferbench.models.fam_{tag}", None)


def test_registration_errors_are_caught_at_import() -> None:
    from ferbench.models.registry import register_alias, register_model

    with pytest.raises(ValueError, match=r"register_model\(input_size=64\) contradicts the builder's default 48"):
        register_model(input_size=64)(lambda num_classes=7, input_size=48: nn.Identity())
    with pytest.raises(ValueError, match="'resnet18' registered twice"):
        register_alias("resnet18", "lenet5")
    with pytest.raises(ValueError, match="must name a canonical model"):
        register_alias("resnet18_again", "resnet18_s003")


@pytest.mark.parametrize(("name", "size", "chans"), [("resnet18_s001", 96, 3), ("inceptionv3", 224, 3),
                                                     ("fer_vgg_s", 48, 1), ("vgg16_sc", 48, 3)])
def test_a_config_naming_only_the_model_trains_at_its_registered_input(name: str, size: int, chans: int) -> None:
    """Config → model → sidecar → rebuilt model, with preprocessing left to the registry (aliases included)."""
    from ferbench.config import load_config, typed
    from ferbench.loader import build_model
    from ferbench.train.build import build_for_training, fill_model_defaults

    cfg = fill_model_defaults(load_config({"model": {"name": name}}))
    assert (cfg["preprocessing"]["size"], cfg["preprocessing"]["channels"]) == (size, chans)
    with torch.device("meta"):
        model, arch = build_for_training(typed(cfg), [f"c{i}" for i in range(7)])
        assert arch["name"] == name  # the sidecar keeps the name the config used
        again = build_model(arch, cfg["preprocessing"])
    assert model(torch.zeros(1, chans, size, size, device="meta")).shape == (1, 7)
    assert _structure(again) == _structure(model)
