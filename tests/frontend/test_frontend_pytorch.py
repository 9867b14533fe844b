"""tvmedge.frontend.pytorch: ``tvmedge compile model.pt2`` for a torch.export program (issue 14).

torch is an optional extra; scripts/setup.sh installs its CPU wheel when one can be had (see README).
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch", reason="torch is not installed (optional extra: pip install 'tvmedge[torch]')")

from tvmedge.cli.main import cli  # noqa: E402


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        pooled = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return torch.softmax(self.fc(pooled), dim=-1)


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    model = SmallNet().eval()
    x = torch.randn(2, 3, 16, 16)
    path = tmp_path / "small.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    with torch.no_grad():
        expected = model(x).numpy()
    return path, x.numpy(), expected


def test_compile_pt2_gives_the_same_kind_of_artifact(exported, tmp_path):
    path, x, expected = exported
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compile", str(path), "--target", "x86-host", "--search", "naive",
                                      "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_model"]["file"] == "small.pt2"
    assert [(i["name"], i["shape"]) for i in manifest["inputs"]] == [("x", [2, 3, 16, 16])]
    assert [(o["name"], o["shape"]) for o in manifest["outputs"]] == [("output_0", [2, 4])]
    from tvmedge import api

    got = api.load(out).run({"x": x})["output_0"]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_pt2_refuses_onnx_only_options(exported, tmp_path):
    path, _, _ = exported
    result = CliRunner().invoke(cli, ["compile", str(path), "--target", "x86-host", "-o", str(tmp_path / "o"),
                                      "--input-shape", "x=1,3,16,16"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: --input-shape and --freeze-input apply to ONNX models; a .pt2 program's "
                                     "shapes are fixed when it is exported (torch.export.export(model, example_inputs))")


def test_a_file_that_is_not_a_program_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(cli, ["compile", str(bad), "--target", "x86-host", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad} is not a torch.export program (torch.export.load: ")
    assert len(result.stderr.strip().splitlines()) == 1
