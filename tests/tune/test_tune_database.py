"""tvmedge.tune.database: target keys, repair of torn/foreign lines, clear errors (issue 4)."""

import json

import pytest

from tvmedge.errors import TuningError
from tvmedge.tune.database import RECORDS, WORKLOADS, TuningDatabase, list_databases, target_key


def test_target_key_depends_on_the_target_not_the_model():
    assert target_key({"kind": "llvm", "mcpu": "znver4", "num-cores": 2}).endswith("znver4-2c")
    assert target_key({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "mattr": ["+neon"],
                       "num-cores": 4}) == "aarch64-cortex-a76-neon-4c"
    assert target_key({"kind": "llvm", "mcpu": "skylake-avx512"}) != target_key({"kind": "llvm", "mcpu": "znver4"})


def _write(folder, workloads, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WORKLOADS).write_text("".join(line + "\n" for line in workloads))
    (folder / RECORDS).write_text("".join(line + "\n" for line in records))


def test_torn_last_record_is_dropped_and_the_rest_kept(tmp_path):
    # A tuning run killed mid-write leaves a partial last line; MetaSchedule's loader would reject the file.
    folder = tmp_path / "db"
    _write(folder, ['["1", "AAAA"]', '["2", "BBBB"]'], ['[0, [["t"], [1e-3]]]', '[1, [["t"], [2e-3]]]', '[1, [["t"'])
    db = TuningDatabase(folder)
    assert db.repair.dropped_records == 1 and db.repair.dropped_workloads == 0
    assert len((folder / RECORDS).read_text().splitlines()) == 2
    assert list(folder.glob(f"{RECORDS}.damaged-*")), "the damaged file is kept for inspection"


def test_foreign_workload_line_drops_its_records_and_renumbers(tmp_path):
    folder = tmp_path / "db"
    _write(folder, ['["1", "AAAA"]', 'not json at all', '["3", "CCCC"]'],
           ['[0, [["a"], [1e-3]]]', '[1, [["b"], [1e-3]]]', '[2, [["c"], [1e-3]]]'])
    db = TuningDatabase(folder)
    assert (db.repair.dropped_workloads, db.repair.dropped_records) == (1, 1)
    records = [json.loads(line) for line in (folder / RECORDS).read_text().splitlines()]
    assert [r[0] for r in records] == [0, 1] and records[1][1][0] == ["c"]


def test_not_a_folder_and_missing_folder(tmp_path):
    path = tmp_path / "records.json"
    path.write_text("{}")
    with pytest.raises(TuningError, match="must be a folder holding database_workload.json"):
        TuningDatabase(path)
    with pytest.raises(TuningError, match="does not exist"):
        TuningDatabase(tmp_path / "nothing", create=False)


def test_binary_garbage_is_a_clear_error(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / WORKLOADS).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TuningError, match="is not a MetaSchedule JSON table"):
        TuningDatabase(folder)


def test_list_databases(tmp_path):
    _write(tmp_path / "x86_64-znver4-2c", ['["1", "AAAA"]'], ['[0, [["t"], [1e-3]]]'])
    (tmp_path / "empty").mkdir()
    rows = list_databases(tmp_path)
    assert [(r["key"], r["workloads"], r["records"], r["tuned_workloads"]) for r in rows] == [("x86_64-znver4-2c", 1, 1, 1)]
