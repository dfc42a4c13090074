"""The benchmark scripts report user errors in one line, as the CLI does."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def test_a_benchmark_script_reports_a_user_error_in_one_line() -> None:
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "latency.py"), "--model", "nosuch"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert r.stderr.startswith("error: nosuch: no such model"), r.stderr
    assert "Traceback" not in r.stderr


def test_every_benchmark_script_runs_main_through_the_error_wrapper() -> None:
    scripts = [p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    assert len(scripts) >= 15
    bare = [p.name for p in scripts if "run(main)" not in p.read_text()]
    assert bare == []


def test_weight_interpolation_mixes_floats_and_keeps_counters() -> None:
    import pytest
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from weight_interpolation import interpolate
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from ferbench.errors import FerbenchError

    a = {"w": torch.zeros(2, 3), "n": torch.tensor(5)}
    b = {"w": torch.full((2, 3), 4.0), "n": torch.tensor(9)}
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    mid = interpolate(a, b, 0.25)
    assert torch.allclose(mid["w"], torch.full((2, 3), 1.0)) and int(mid["n"]) == 9
    with pytest.raises(FerbenchError, match="different tensors"):
        interpolate(a, {"w": b["w"]}, 0.5)
    with pytest.raises(FerbenchError, match="tensor w: shapes"):
        interpolate(a, {"w": torch.zeros(3), "n": b["n"]}, 0.5)


def test_tta_views_runs_fourteen_views_through_predict_view_logits() -> None:
    import torch
    from torch import nn

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from tta_views import named_views
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from ferbench.data.preprocess import Preprocessing
    from ferbench.evaluate.predict import predict_view_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(7))
    images = torch.randint(0, 256, (5, 12, 12, 1), dtype=torch.uint8)
    pre = Preprocessing(size=12, channels=1, mean=(0.5,), std=(0.5,))
    views = named_views()
    z = predict_view_logits(model, images, pre, batch_size=2, views=list(views.values()))
    assert z.shape == (14, 5, 7)
    pair = predict_view_logits(model, images, pre, batch_size=3, tta_hflip=True)
    names = list(views)
    assert torch.allclose(torch.from_numpy(z[names.index("id")]), torch.from_numpy(pair[0]), atol=1e-5)
    assert torch.allclose(torch.from_numpy(z[names.index("id flip")]), torch.from_numpy(pair[1]), atol=1e-5)
    x = pre(images)
    assert torch.equal(views["shift+2,+0"](x), torch.roll(x, shifts=(0, 2), dims=(2, 3)))
    assert views["zoom0.9"](x).shape == x.shape and views["zoom1.1 flip"](x).shape == x.shape


def test_calibration_refit_union_fit_weights_each_split_equally() -> None:
    """``_fit_union``: the temperature minimising the mean of the parts' NLLs; with one part it is that part's
    NLL fit (``fit_temperature``), and a restricted part is scored on its renormalised columns."""
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from calibration_refit import _fit_union
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from ferbench.evaluate.calibration import fit_temperature

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    z = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]  # informative logits
    zero = np.zeros(4)
    assert abs(_fit_union([(z[None], y, None)], zero) - fit_temperature(z, y)) < 0.01
    sharp = 3.0 * z  # the same scores 3x sharper need a ~3x larger temperature
    t_a, t_b = _fit_union([(z[None], y, None)], zero), _fit_union([(sharp[None], y, None)], zero)
    both = _fit_union([(z[None], y, None), (sharp[None], y, None)], zero)
    assert 2.5 < t_b / t_a < 3.5 and t_a < both < t_b
    cols = [0, 1, 2]  # a part whose labels use only three of the four classes
    keep = y < 3
    t_r = _fit_union([(z[None][:, keep], y[keep], (cols, ["a", "b", "c"]))], zero)
    assert abs(t_r - fit_temperature(z[keep][:, cols], y[keep])) < 0.01


def test_tta_gate_scores_the_gate_among_the_shared_classes() -> None:
    """``tta_gate.score_rows``: the gate decides on all the model's classes, the score is among the shared ones."""
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from tta_gate import score_rows
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    # 3 model classes, the dataset has classes 0 and 2; face 0 sure of class 0, face 1 unsure and put right by the
    # mirror, face 2 sure of class 1 (not in the dataset): among {0, 2} it is scored by its class-0 vs class-2 odds
    z = np.array([[[4.0, 0, 0], [0.5, 0, 0], [0, 5.0, 1.0]],
                  [[4.0, 0, 0], [0, 0, 4.0], [0, 5.0, 1.0]]])
    y = np.array([0, 1, 1])  # indexes into the shared classes [0, 2]
    rows = {g: r for g, *r in score_rows(z, y, [0, 2], 1.0, None, [None, 0.4, 0.9])}
    assert rows[None][:3] == [1.0, 1.0, 1.0]  # mirrored, accuracy, balanced
    mirrored, acc, _, ece = rows[0.9]
    assert abs(mirrored - 1 / 3) < 1e-9 and acc == 1.0  # only face 1 (first view 0.45) gets the mirror
    mirrored, acc, _, _ = rows[0.4]
    assert mirrored == 0.0 and abs(acc - 2 / 3) < 1e-9  # face 1 keeps its wrong first view
    assert 0.0 <= ece <= 1.0


def test_detector_int8_float32_graph_keeps_blazeface_outputs(tmp_path) -> None:
    """``detector_int8.float32_graph`` folds the fp16 weights and adds a signature; the outputs stay identical."""
    import numpy as np
    import pytest

    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from detector_int8 import FLOAT, float32_graph
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    out = tmp_path / "f32.tflite"
    float32_graph(FLOAT, out)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    got = []
    for path in (FLOAT, out):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got.append({d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()})
        if path == out:
            assert list(it.get_signature_list()) == ["serving_default"]
            ops = [o["op_name"] for o in it._get_ops_details()]
            assert "DEQUANTIZE" not in ops
    assert set(got[0]) == set(got[1]) == {"regressors", "classificators"}
    for name in got[0]:
        np.testing.assert_array_equal(got[0][name], got[1][name])


def test_paired_bootstrap_resamples_whole_subjects() -> None:
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from paired_bootstrap import paired_bootstrap
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    a = np.array([0, 1, 1, 0, 2, 0, 0, 1])  # 5 of 8 right
    same = paired_bootstrap(y, a, a.copy(), n=200)
    assert same["accuracy"]["diff"] == 0 and same["accuracy"]["lo"] == same["accuracy"]["hi"] == 0
    assert same["accuracy"]["p_not_better"] == 1.0
    b = y.copy()  # B right everywhere: never worse on any resample
    r = paired_bootstrap(y, a, b, groups=np.array(["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4"]), n=300)
    assert r["accuracy"]["a"] == 5 / 8 and r["accuracy"]["b"] == 1.0 and r["accuracy"]["lo"] >= 0
    assert 0 <= r["accuracy"]["p_not_better"] < 0.02  # a tie needs all four draws to be s4 (A right there): 1/256
    assert r["balanced_accuracy"]["hi"] <= 1.0 and r["balanced_accuracy"]["diff"] > 0
