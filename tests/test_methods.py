"""FER methods (ESR, SCN, DACL, DAN, LDL): architecture numbers, losses and custom gradients on toy tensors."""

from __future__ import annotations

import pytest
import torch

from ferbench.errors import ConfigError
from ferbench.methods import METHODS, Batch, build_method
from ferbench.methods.dacl import center_delta, sparse_center_loss
from ferbench.methods.dan import affinity_loss, partition_loss
from ferbench.methods.esr import ESR, majority_vote
from ferbench.methods.ldl import distribution_loss
from ferbench.methods.scn import rank_regularization, relabel
from ferbench.models import count_params, create_model


def _batch(y: torch.Tensor, **kw: object) -> Batch:
    return Batch(x=torch.empty(0), y=y, **kw)


def _resnet(num_classes: int = 3) -> torch.nn.Module:
    return create_model("resnet18", num_classes=num_classes, in_chans=3, input_size=48)


# ---- ESR -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [("esr_9", 20_349_384), ("esr_4", 9_252_384)])
def test_esr_parameter_counts_match_protocol(name: str, expected: int) -> None:
    model = create_model(name, num_classes=8, in_chans=3, input_size=96)
    assert count_params(model) == expected
    assert count_params(model.base) == 374_784
    assert count_params(model.branches[0]) == 2_219_400


def test_esr_rejects_too_small_input() -> None:
    with pytest.raises(ConfigError, match="too small"):
        create_model("esr_4", num_classes=8, input_size=48)


def test_esr_majority_vote_ties_go_to_lowest_class() -> None:
    # 4 branches, 1 sample, 4 classes: votes class 3, 1, 3, 1 → tie between 1 and 3 → 1
    logits = torch.full((4, 1, 4), -1.0)
    for b, c in enumerate([3, 1, 3, 1]):
        logits[b, 0, c] = 5.0
    assert majority_vote(logits).tolist() == [1]
    # clear majority beats lower index
    logits[1, 0] = torch.tensor([-1.0, -1.0, -1.0, 5.0])
    assert majority_vote(logits).tolist() == [3]


def test_esr_scores_are_vote_shares_and_mean_variant() -> None:
    torch.manual_seed(0)
    model = create_model("esr_4", num_classes=8, input_size=96).eval()
    model.active.fill_(4)
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        branch = model.branch_logits(x)
        scores = model(x)
    shares = scores.softmax(-1)
    votes = torch.nn.functional.one_hot(branch.argmax(-1), 8).sum(0).float() / 4
    assert torch.allclose(shares, votes, atol=3e-3)
    assert torch.equal(scores.argmax(-1), majority_vote(branch))
    model.predict = "mean"
    with torch.no_grad():
        assert torch.allclose(model(x).softmax(-1), branch.softmax(-1).mean(0), atol=1e-5)
    unc = model.uncertainty(x)
    assert unc.shape == (3,) and torch.allclose(unc, 1 - votes.max(-1).values)


def test_esr_growing_keeps_keys_and_sets_learning_rates() -> None:
    assert create_model("esr_4", num_classes=8, input_size=96).n_active == 4  # no schedule → all branches
    model = build_method("esr", create_model("esr_4", num_classes=8, input_size=96), num_classes=8,
                         epochs_per_branch=2, old_lr_factor=0.1)
    keys = set(model.state_dict())
    assert model.n_active == 1
    assert [g["lr"] for g in model.param_groups(0.1)] == [0.1, 0.1]  # base + branch 1 at the same LR
    assert model.on_epoch_start(0) is False and model.on_epoch_start(1) is False
    assert model.on_epoch_start(2) is True and model.n_active == 2
    groups = model.param_groups(0.1)
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == pytest.approx(0.01)
    new_ids = {id(p) for p in groups[0]["params"]}
    assert new_ids == {id(p) for p in model.branches[1].parameters()}
    assert len(groups[1]["params"]) == len(list(model.base.parameters())) + len(list(model.branches[0].parameters()))
    for e in (4, 6, 8, 10):
        model.on_epoch_start(e)
    assert model.n_active == 4 and set(model.state_dict()) == keys
    flat = build_method("esr", create_model("esr_4", num_classes=8, input_size=96), num_classes=8,
                        start_branches=4, old_lr_factor=0.1)
    assert [g["lr"] for g in flat.param_groups(0.1)] == [0.1, 0.1]  # no growing schedule → one LR
    # loss = sum of the active branches' CE
    x, y = torch.rand(2, 3, 96, 96), torch.tensor([0, 5])
    out = model.forward_train(x)
    assert out[1].shape == (4, 2, 8) and out[0].shape == (2, 8)
    ce = sum(torch.nn.functional.cross_entropy(o, y) for o in out[1])
    assert torch.allclose(model.compute_loss(out, _batch(y)), ce)


def test_esr_method_reconfigures_the_registered_architecture() -> None:
    model = build_method("esr", create_model("esr_4", num_classes=8), num_classes=8, epochs_per_branch=3,
                         predict="mean")
    assert model.n_active == 1 and model.epochs_per_branch == 3 and model.predict == "mean"
    with pytest.raises(ConfigError, match="unknown option 'n_branches'"):
        build_method("esr", create_model("esr_4", num_classes=8), num_classes=8, n_branches=9)


def test_esr_over_any_backbone() -> None:
    model = build_method("esr", _resnet(5), num_classes=5, n_branches=3, start_branches=3)
    assert isinstance(model, ESR) and len(model.branches) == 3
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 5)


# ---- SCN -----------------------------------------------------------------------------------------------
def test_scn_rank_regularization_on_toy_weights() -> None:
    alpha = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    loss, low = rank_regularization(alpha, beta=0.7, margin=0.15)
    assert loss.item() == 0.0  # mean top-7 0.6 − mean bottom-3 0.1167 > 0.15
    assert low.tolist() == [False] * 7 + [True] * 3
    alpha = torch.tensor([0.50, 0.52, 0.48, 0.51, 0.45, 0.44])  # top ⌊0.7·6⌋ = 4
    loss, low = rank_regularization(alpha, beta=0.7, margin=0.15)
    expected = 0.15 - ((0.50 + 0.52 + 0.48 + 0.51) / 4 - (0.45 + 0.44) / 2)
    assert loss.item() == pytest.approx(expected)
    assert low.tolist() == [False, False, False, False, True, True]


def test_scn_relabel_rule() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    labels = torch.tensor([1, 0, 1, 0])
    new, changed = relabel(probs, labels, margin=0.2)
    # 0.7−0.2 = 0.5 > 0.2 → 0; already argmax; 0.5−0.3 = 0.2 not > 0.2 → kept; 0.8−0.1 → 2
    assert new.tolist() == [0, 0, 1, 2] and changed.tolist() == [True, False, False, True]
    new, changed = relabel(probs, labels, 0.2, mask=torch.tensor([False, True, True, True]))
    assert new.tolist() == [1, 0, 1, 2]


@pytest.mark.parametrize("mode", ["all", "low"])
def test_scn_relabels_stored_labels_from_relabel_epoch(mode: str) -> None:
    torch.manual_seed(0)
    model = build_method("scn", _resnet(), num_classes=3, relabel_epoch=1, relabel=mode)
    model.on_train_start(torch.tensor([0, 1, 2, 0, 1, 2]))
    # hand-made outputs: every sample confidently predicts class 2, alphas rank samples 0..5
    logits = torch.tensor([[0.0, 0.0, 10.0]] * 6, requires_grad=True)
    alpha = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    idx = torch.tensor([5, 4, 3, 2, 1, 0])
    y = model.labels[idx]
    model.train()
    model.on_epoch_start(0)
    model.compute_loss((logits, alpha), _batch(y, index=idx, epoch=0))
    assert model.epoch_log()["scn_relabelled"] == 0  # before relabel_epoch
    model.on_epoch_start(1)
    loss = model.compute_loss((logits, alpha), _batch(y, index=idx, epoch=1))
    loss.backward()
    log = model.epoch_log()
    if mode == "all":  # every sample whose label is not 2 → 2 (positions 0,1,3,4 of the store)
        assert model.labels.tolist() == [2, 2, 2, 2, 2, 2] and log["scn_relabelled"] == 4
    else:  # low group = the last 6 − ⌊0.7·6⌋ = 2 batch rows = store positions 1, 0
        assert model.labels.tolist() == [2, 2, 2, 0, 1, 2] and log["scn_relabelled"] == 2
    assert log["scn_labels_changed"] == log["scn_relabelled"]


def test_method_heads_are_what_head_policies_train() -> None:
    from ferbench.train.policies import apply_policy, head_module_names

    for name, opts in (("scn", {}), ("dacl", {"hidden": [8, 8, 8]}), ("dan", {"num_heads": 2})):
        model = build_method(name, _resnet(), num_classes=3, **opts)
        assert head_module_names(model) == ["head"]
        apply_policy(model, "head-only")
        trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == {"head"}


def test_scn_forward_is_alpha_weighted_logits() -> None:
    model = build_method("scn", _resnet(), num_classes=3).eval()
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        f = model.features(x)
        expected = model.attention(f) * model.fc(f)
        assert torch.allclose(model(x), expected, atol=1e-6)


# ---- DACL ----------------------------------------------------------------------------------------------
def test_dacl_custom_gradients_match_autograd_of_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.rand(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    centers = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 0, 2])
    loss = sparse_center_loss(f, a, centers, y)
    gf, ga = torch.autograd.grad(loss * 1.7, (f, a))
    f2, a2 = f.detach().clone().requires_grad_(), a.detach().clone().requires_grad_()
    closed = (a2 * (f2 - centers[y]) ** 2).sum() / (2 * 6)
    gf2, ga2 = torch.autograd.grad(closed * 1.7, (f2, a2))
    assert torch.allclose(loss, closed)
    assert torch.allclose(gf, gf2) and torch.allclose(ga, ga2)
    torch.autograd.gradcheck(lambda f_, a_: sparse_center_loss(f_, a_, centers, y),
                             (f.detach().clone().requires_grad_(), a.detach().clone().requires_grad_()))


def test_dacl_center_update_formula() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    a = torch.tensor([[1.0, 0.5], [0.5, 1.0], [1.0, 1.0]])
    centers = torch.zeros(3, 2)
    y = torch.tensor([0, 0, 2])
    d = center_delta(f, a, centers, y)
    # class 0: (A0⊙f0 + A1⊙f1)/(1+2) = ([1,1] + [1.5,4])/3; class 1 absent; class 2: 0
    assert torch.allclose(d, torch.tensor([[2.5 / 3, 5.0 / 3], [0.0, 0.0], [0.0, 0.0]]))


def test_dacl_moves_centers_only_in_training_and_trains() -> None:
    torch.manual_seed(0)
    model = build_method("dacl", _resnet(), num_classes=3, hidden=[32, 16, 8], attn_grid=2)
    x, y = torch.rand(4, 3, 48, 48), torch.tensor([0, 1, 2, 0])
    before = model.centers.clone()
    model.train()
    out = model.forward_train(x)
    assert out[0].shape == (4, 3) and out[1].shape == (4, 512) and out[2].shape == (4, 512)
    assert ((out[2] > 0) & (out[2] < 1)).all()
    loss = model.compute_loss(out, _batch(y))
    loss.backward()
    assert not torch.equal(before, model.centers)
    assert "centers" in model.state_dict() and all(p is not model.centers for p in model.parameters())
    expected = before + 0.5 * center_delta(out[1].detach(), out[2].detach(), before, y)
    assert torch.allclose(model.centers, expected, atol=1e-6)
    model.eval()
    c = model.centers.clone()
    model.compute_loss(model.forward_train(x), _batch(y))
    assert torch.equal(c, model.centers)


# ---- DAN -----------------------------------------------------------------------------------------------
def test_dan_partition_and_affinity_losses() -> None:
    heads = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # B 1, H 2, D 2: var over heads = [2, 8] → mean 5
    assert partition_loss(heads).item() == pytest.approx(torch.log1p(torch.tensor(2 / 5)).item())
    assert partition_loss(heads[:, :1]).item() == 0.0
    centers = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # var over classes: [2, 2] → 4
    feat = torch.tensor([[1.0, 0.0], [2.0, 4.0]])
    y = torch.tensor([0, 1])
    # distances 1 and 4 → (1 + 4) / (2 · 4)
    assert affinity_loss(feat, y, centers).item() == pytest.approx(5 / 8)


def test_dan_model_outputs_and_loss() -> None:
    torch.manual_seed(0)
    model = build_method("dan", _resnet(), num_classes=3)
    assert len(model.heads) == 4
    x, y = torch.rand(4, 3, 48, 48), torch.tensor([0, 1, 2, 0])
    logits, feat, heads = model.forward_train(x)
    assert logits.shape == (4, 3) and feat.shape == (4, 512) and heads.shape == (4, 4, 512)
    loss = model.compute_loss((logits, feat, heads), _batch(y))
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert loss.item() == pytest.approx((ce + affinity_loss(feat, y, model.centers) + partition_loss(heads)).item(),
                                        rel=1e-5)
    loss.backward()
    assert model.centers.grad is not None


# ---- LDL + registry of methods ---------------------------------------------------------------------------
def test_ldl_distribution_loss() -> None:
    q = torch.tensor([[0.7, 0.2, 0.1]])
    assert distribution_loss(q.log(), q, "kl").item() == pytest.approx(0.0, abs=1e-6)
    ce = distribution_loss(q.log(), q, "ce").item()
    assert ce == pytest.approx(-(q * q.log()).sum().item(), rel=1e-5)
    model = build_method("ldl", _resnet(), num_classes=3)
    with pytest.raises(ConfigError, match="soft_labels"):
        model.compute_loss(torch.zeros(1, 3), _batch(torch.tensor([0])))


def test_build_method_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown method 'scm'.*scn"):
        build_method("scm", _resnet(), num_classes=3)
    with pytest.raises(ConfigError, match="method dan: unknown option"):
        build_method("dan", _resnet(), num_classes=3, heads=2)
    with pytest.raises(ConfigError, match="no feature extractor"):
        build_method("scn", create_model("lenet5", num_classes=3), num_classes=3)
    assert set(METHODS) == {"esr", "scn", "dacl", "dan", "ldl"}


def test_esr_lab_variant_runs_on_ckplus48_size() -> None:
    model = build_method("esr", create_model("esr_4_lab", num_classes=7, in_chans=1, input_size=48), num_classes=7,
                         start_branches=4)
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    assert count_params(model) < 400_000  # the small grey CK+ network, not the 9.25 M AffectNet one
    with pytest.raises(ConfigError, match="needs ≥ 42 px"):
        create_model("esr_4_lab", num_classes=7, input_size=41)


def test_unknown_method_option_is_found_from_the_signature() -> None:
    """Options are read from the builder and the class it returns; no TypeError text is parsed."""
    with pytest.raises(ConfigError) as e:
        build_method("scn", _resnet(), num_classes=3, betta=0.5)
    assert str(e.value) == ("method scn: unknown option 'betta' (its options: beta, drop_rate, margin_1, margin_2, "
                            "relabel, relabel_epoch)")
    with pytest.raises(ConfigError, match=r"method ldl: unknown option 'backbone_lr' \(its options: loss\)"):
        build_method("ldl", _resnet(), num_classes=3, backbone_lr=0.1)


METHOD_FILE = '''
import torch
from ferbench.methods.base import Batch, MethodModule, register_method


class Doubled(MethodModule):
    """A toy method: the backbone's logits, trained with twice the one cross-entropy."""

    def __init__(self, backbone, num_classes, factor: float = 2.0):
        super().__init__()
        self.net, self.factor = backbone, factor

    def forward(self, x):
        return self.net(x)

    def compute_loss(self, outputs, batch: Batch):
        return self.factor * batch.cross_entropy(outputs)


@register_method("{tag}")
def build(backbone, num_classes, factor: float = 2.0) -> Doubled:
    return Doubled(backbone, num_classes, factor)
'''


def test_a_new_method_is_one_file(tmp_path, monkeypatch) -> None:
    """Adding a method = one file with a decorated builder: ``build_method`` finds it by name."""
    import sys

    import ferbench.methods
    from ferbench.methods import base

    tag = "toy_" + tmp_path.name.replace("-", "_").lower()[-8:]
    (tmp_path / f"{tag}.py").write_text(METHOD_FILE.replace("{tag}", tag))
    monkeypatch.setattr(base, "METHODS", dict(base.METHODS))
    monkeypatch.setattr(ferbench.methods, "METHODS", base.METHODS)
    monkeypatch.setattr(ferbench.methods, "__path__", [*ferbench.methods.__path__, str(tmp_path)])
    try:
        m = build_method(tag, create_model("lenet5", num_classes=3, in_chans=1, input_size=48), num_classes=3)
        x, y = torch.rand(4, 1, 48, 48), torch.tensor([0, 1, 2, 1])
        loss = m.compute_loss(m.forward_train(x), Batch(x=x, y=y))
        assert torch.allclose(loss, 2 * torch.nn.functional.cross_entropy(m(x), y))
        with pytest.raises(ConfigError, match="unknown option 'scale'"):
            build_method(tag, create_model("lenet5", num_classes=3, in_chans=1, input_size=48), num_classes=3,
                         scale=1.0)
    finally:
        sys.modules.pop(f"ferbench.methods.{tag}", None)
