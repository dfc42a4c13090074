import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferbench.evaluate.metrics import compute_metrics
from ferbench.train.losses import class_weights, weighted_cross_entropy

# docs/protocol.md §1.5 test vectors (class order Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise)
COUNTS = {
    "RAF-DB": [606, 613, 248, 4169, 2242, 1722, 1133],
    "FER2013": [3995, 436, 4097, 7215, 4965, 4830, 3171],
    "AffectNet-7@224": [2691, 1986, 2628, 3831, 3906, 2540, 3196],
    "AffectNet-7@48": [2910, 2093, 2897, 4036, 4105, 2744, 3436],
}
SIMPLE = {
    "RAF-DB": [6.87953795379538, 6.800978792822186, 16.81048387096774, 1.0, 1.8595004460303302, 2.421022067363531,
               3.679611650485437],
    "FER2013": [1.8060075093867334, 16.548165137614678, 1.7610446668293873, 1.0, 1.4531722054380665,
                1.4937888198757765, 2.275307473982971],
    "AffectNet-7@224": [1.4515050167224082, 1.9667673716012084, 1.4863013698630136, 1.019577133907596, 1.0,
                        1.537795275590551, 1.2221526908635796],
    "AffectNet-7@48": [1.4106529209621994, 1.961299569995222, 1.4169830859509838, 1.0170961347869176, 1.0,
                       1.4959912536443147, 1.1947031431897555],
}
CONSERVATIVE = {
    "RAF-DB": [3, 3, 3, 1, 1.8595004460303302, 2.421022067363531, 3],
    "FER2013": [1.8060075093867334, 3.0, 1.7610446668293873, 1.0, 1.4531722054380665, 1.4937888198757765,
                2.275307473982971],
    "AffectNet-7@224": SIMPLE["AffectNet-7@224"],
    "AffectNet-7@48": SIMPLE["AffectNet-7@48"],
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_class_weight_vectors(name: str) -> None:
    np.testing.assert_allclose(class_weights(COUNTS[name], "simple"), SIMPLE[name], rtol=1e-12)
    np.testing.assert_allclose(class_weights(COUNTS[name], "conservative"), CONSERVATIVE[name], rtol=1e-12)
    assert class_weights(COUNTS[name], "none") is None


def test_weighted_ce_is_batch_mean_like_keras() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(16, 7), torch.randint(0, 7, (16,))
    w = torch.tensor(SIMPLE["FER2013"], dtype=torch.float32)
    ours = weighted_cross_entropy(logits, y, w)
    manual = (w[y] * F.cross_entropy(logits, y, reduction="none")).sum() / 16
    torch_default = F.cross_entropy(logits, y, weight=w)  # divides by Σ w[y] — not Keras
    assert torch.allclose(ours, manual)
    assert not torch.allclose(ours, torch_default)
    assert torch.allclose(weighted_cross_entropy(logits, y), F.cross_entropy(logits, y))


def test_soft_targets_equal_hard_for_one_hot() -> None:
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert torch.allclose(weighted_cross_entropy(logits, F.one_hot(y, 5).float()), weighted_cross_entropy(logits, y))


def test_metric_identities() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    probs = rng.dirichlet(np.ones(4), 400)
    probs[np.arange(200), y[:200]] += 1.0
    probs /= probs.sum(1, keepdims=True)
    m = compute_metrics(y, probs, ["a", "b", "c", "d"])
    assert m["recall_weighted"] == pytest.approx(m["accuracy"])  # weighted recall ≡ accuracy
    pw, rw = m["precision_weighted"], m["recall_weighted"]
    assert m["f1_hm"] == pytest.approx(2 * pw * rw / (pw + rw))
    recalls = [m["per_class"][c]["recall"] for c in "abcd"]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    assert m["auc_macro"] == pytest.approx(np.mean([m["per_class"][c]["auc"] for c in "abcd"]))
    assert 0.5 < m["auc_macro"] <= 1 and 0 <= m["ece"] <= 1
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 400 and np.trace(cm) == round(m["accuracy"] * 400)


def test_perfect_and_calibrated() -> None:
    y = np.array([0, 1, 2, 2])
    m = compute_metrics(y, np.eye(3)[y], ["x", "y", "z"])
    assert m["accuracy"] == 1.0 and m["ece"] == pytest.approx(0.0) and m["auc_weighted"] == 1.0
