"""Cost table: FLOP counting, latency timing, ``ferbench models list/info``."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ferbench.cli.main import app
from ferbench.errors import DataError, FerbenchError
from ferbench.models import create_model
from ferbench.models.cost import build_meta, flops, latency_ms, layer_summary, model_cost, real_faces

torch.set_num_threads(1)


def test_flops_of_conv_and_linear_are_2x_macs() -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 4))
    assert flops(m, 1, 8) == 2 * (6 * 6 * 2 * 9) + 2 * (72 * 4)


def test_lenet5_flops_meta_equals_cpu_and_analytic() -> None:
    conv1 = 44 * 44 * 6 * (5 * 5 * 3)
    conv2 = 18 * 18 * 16 * (5 * 5 * 6)
    dense = 1296 * 120 + 120 * 84 + 84 * 7
    expected = 2 * (conv1 + conv2 + dense)
    assert flops(build_meta("lenet5", 48), 3, 48) == expected
    assert flops(create_model("lenet5").eval(), 3, 48) == expected


def test_model_cost_rows() -> None:
    row = model_cost("lenet5")
    assert row.params == 169_271 and row.params_224 == 5_407_031
    assert row.gflops_48 is not None and abs(row.gflops_48 - 0.003629976) < 1e-9
    assert row.latency_ms_48 is None
    inc = model_cost("inceptionv3")
    assert inc.gflops_48 is None and inc.gflops_224 is not None and any("48px" in n for n in inc.notes)


def test_latency_is_timed_on_faces_of_the_fer2013_test_split(tiny_root: Path) -> None:
    faces = real_faces(3, 48, data_root=tiny_root)  # the first 64 of the 70 PrivateTest faces
    assert faces.shape == (64, 3, 48, 48) and 0 <= float(faces.min()) and float(faces.max()) <= 1
    assert float(faces.std()) > 0.05  # images, not a constant
    seen: list[torch.Tensor] = []
    model = create_model("lenet5")
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    ms = latency_ms(model, 3, 48, threads=1, runs=50, warmup=2, data_root=tiny_root)
    assert 0 < ms < 1000 and len(seen) == 52
    assert all(torch.equal(x[0], faces[i % 64]) for i, x in enumerate(seen))  # one face per forward, in turn


def test_latency_with_preprocess_times_raw_faces_through_it() -> None:
    raw = torch.randint(0, 256, (5, 48, 48, 1), dtype=torch.uint8)  # plumbing only: the faces' values do not matter
    seen: list[torch.Tensor] = []
    model = create_model("lenet5", in_chans=1)
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))

    def pre(x: torch.Tensor) -> torch.Tensor:  # (1, H, W, C) uint8 -> (1, C, H, W) float
        return x.permute(0, 3, 1, 2).float() / 255

    assert latency_ms(model, 0, 0, inputs=raw, preprocess=pre, threads=1, runs=50, warmup=2) > 0
    assert len(seen) == 52 and all(torch.equal(x[0], pre(raw[i % 5][None])[0]) for i, x in enumerate(seen))


def test_latency_without_fer2013_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fer2013"):
        latency_ms(create_model("lenet5"), 3, 48, threads=1, runs=50, data_root=tmp_path)


def test_layer_summary_shapes() -> None:
    rows = layer_summary("lenet5", depth=1)
    by = {r["layer"]: r for r in rows}
    assert by["features"]["output"] == (1, 16, 9, 9)
    assert by["head"]["output"] == (1, 7) and by["head"]["params"] == 155_640 + 10_164 + 595


def test_cli_list_csv_and_info(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cost.csv"
    r = runner.invoke(app, ["models", "list", "lenet*", "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert "lenet5" in r.output and "169,271" in r.output
    rows = list(csv.DictReader(out.open()))
    assert [x["name"] for x in rows] == ["lenet5"] and rows[0]["params"] == "169271"
    r = runner.invoke(app, ["models", "info", "smmb"])
    assert r.exit_code == 0 and "KerasMHA" in r.output and "5,512,455" in r.output
    r = runner.invoke(app, ["models", "info", "vgg16_inn"])
    assert isinstance(r.exception, FerbenchError) and "Did you mean: vgg16_in" in str(r.exception)


def test_cli_unknown_model_exit_2_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ferbench.cli.main", "models", "info", "resnet18_dx"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "unknown model 'resnet18_dx'" in r.stderr


def test_cli_list_and_info_show_aliases(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cost.csv"
    r = runner.invoke(app, ["models", "list", "resnet18_s00[13]", "--csv", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))  # a paper's name selects its network: one row
    assert [(x["name"], x["aliases"], x["params"]) for x in rows] == [
        ("resnet18", "resnet18_s001 resnet18_s003", "11180103")]
    assert "resnet18_s001, resnet18_s003" in r.output
    r = runner.invoke(app, ["models", "info", "resnet18_s001", "--depth", "1"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "alias of resnet18 with imagenet_tag='tv_in1k'" in r.output and "input 3×96×96" in r.output
    assert "options: head='linear', drop_rate=0.0, imagenet_tag='tv_in1k'" in r.output
    r = runner.invoke(app, ["models", "info", "resnet18", "--depth", "1"], env={"COLUMNS": "200"})
    assert "aliases: resnet18_s001, resnet18_s003" in r.output
