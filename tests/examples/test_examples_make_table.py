"""examples/make_table.py: the one table of all scenario packs in examples/README.md, built from each pack's
results.json (issue 18: "produced by a script, not typed by hand")."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("make_table", REPO / "examples" / "make_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(pack, **changes):
    data = {"pack": pack, "task": f"{pack} task", "model": "model.onnx", "params": 12345, "size_kb_fp32": 48.5,
            "size_kb_int8": 14.25, "accuracy_fp32": 0.9512, "accuracy_int8": 0.95, "host_latency_ms": 0.25,
            "host_fps": 4000.0, "predicted_rk3588_ms": 0.1234, "predicted_riscv_ms": None,
            "riscv_board": "visionfive2", "emulated_outputs_match": True, "notes": "n"}
    data.update(changes)
    return data


def _write(root, pack, data):
    (root / pack).mkdir(parents=True)
    (root / pack / "results.json").write_text(json.dumps(data))


def test_rows_come_from_every_results_json_and_the_rest_of_the_readme_is_kept(tmp_path, capsys):
    make_table = _script()
    _write(tmp_path, "zeta", _result("zeta", emulated_outputs_match=False))
    _write(tmp_path, "alpha", _result("alpha"))
    (tmp_path / "no-results").mkdir()  # a folder without results.json is not a pack row
    (tmp_path / "README.md").write_text("# examples\n\nintro\n")
    assert make_table.main(["--root", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# examples\n\nintro\n")
    rows = [line for line in text.splitlines() if line.startswith("| [`")]
    assert [row.split("`")[1] for row in rows] == ["alpha", "zeta"]  # sorted by folder
    assert "| 95.1% / 95.0% |" in rows[0] and "| 0.250 / 4,000 |" in rows[0] and "| 0.123 |" in rows[0]
    assert "– (visionfive2)" in rows[0] and rows[0].endswith("| yes |") and rows[1].endswith("| no |")
    # regenerated in place: a second run changes nothing and --check agrees; a changed result makes it stale
    assert make_table.main(["--root", str(tmp_path)]) == 0 and (tmp_path / "README.md").read_text() == text
    assert make_table.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "alpha" / "results.json").write_text(json.dumps(_result("alpha", accuracy_int8=0.5)))
    assert make_table.main(["--root", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_a_results_json_missing_a_key_is_refused_by_name(tmp_path, capsys):
    make_table = _script()
    data = _result("alpha")
    del data["host_fps"]
    _write(tmp_path, "alpha", data)
    assert make_table.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and err.endswith("missing key(s) host_fps") and "\n" not in err
    assert not (tmp_path / "README.md").exists()


def test_the_committed_readme_table_matches_the_committed_results():
    assert _script().main(["--check"]) == 0
