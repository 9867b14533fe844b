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


# --- issue 19, finding 10: one bad line, deep nesting, negative times, a repair beside an append -------------------


def _real_database(folder, records: int = 40):
    """A MetaSchedule database written by MetaSchedule: one workload, ``records`` measured records."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    a = te.placeholder((4,), name="A")
    func = te.create_prim_func([a, te.compute((4,), lambda i: a[i] + 1.0, name="B")])
    mod = tvm.IRModule({"main": func})
    folder.mkdir(parents=True, exist_ok=True)
    db = ms.database.JSONDatabase(path_workload=str(folder / WORKLOADS), path_tuning_record=str(folder / RECORDS),
                                  allow_missing=True)
    workload = db.commit_workload(mod)
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    for n in range(records):
        db.commit_tuning_record(ms.database.TuningRecord(
            tvm.s_tir.Schedule(mod).trace, workload, run_secs=[1e-3 * (n + 1)], target=target,
            args_info=ms.arg_info.ArgInfo.from_prim_func(func)))
    return mod


def test_one_json_valid_but_wrong_record_is_skipped_not_the_whole_database(tmp_path):
    folder = tmp_path / "db"
    _real_database(folder)
    lines = (folder / RECORDS).read_text().splitlines()
    wrong = json.loads(lines[0])
    wrong[1][2] = {"kind": "no-such-target-kind"}  # JSON, the right shape, but MetaSchedule cannot read it
    lines.insert(7, json.dumps(wrong))
    (folder / RECORDS).write_text("\n".join(lines) + "\n")
    db = TuningDatabase(folder)
    assert len(db.ms_database) == 40  # MetaSchedule used to abort on the one line: the database was lost
    assert db.repair.dropped_records == 1
    assert len((folder / RECORDS).read_text().splitlines()) == 40
    assert list(folder.glob(f"{RECORDS}.damaged-*"))


def test_deeply_nested_line_and_negative_run_times_are_dropped(tmp_path):
    folder = tmp_path / "db"
    _write(folder, ['["1", "AAAA"]'], ['[0, [["t"], [1e-3]]]', "[" * 100_000 + "]" * 100_000,
                                       '[0, [["t"], [-5.0]]]', '[0, [["t"], [1e-3, "x"]]]', '[0, [["t"], [2e-3]]]'])
    db = TuningDatabase(folder)  # a RecursionError used to crash the repair
    assert db.repair.dropped_records == 3
    assert [json.loads(line)[1][1] for line in (folder / RECORDS).read_text().splitlines()] == [[1e-3], [2e-3]]
    assert db.summary()["records"] == 2


def test_repair_beside_an_open_database_leaves_the_files_for_later(tmp_path):
    # a repair rewriting the files while a tuner appends (MetaSchedule, any time) could lose the appended line
    import fcntl

    folder = tmp_path / "db"
    _write(folder, ['["1", "AAAA"]'], ['[0, [["t"], [1e-3]]]', '[0, [["t"'])
    holder = open(folder / ".lock", "a+")  # another process with the database open (flock: per open file)
    fcntl.flock(holder, fcntl.LOCK_SH)
    try:
        db = TuningDatabase(folder)
        assert db.repair.deferred and db.repair.dropped_records == 1
        with open(folder / RECORDS, "a") as handle:  # the tuner's append, after the repair looked
            handle.write('[0, [["t"], [3e-3]]]\n')
        assert len((folder / RECORDS).read_text().splitlines()) == 3  # nothing rewritten under the tuner
    finally:
        holder.close()
    again = TuningDatabase(folder)  # no one else has it open: now it is repaired, the appended line kept
    assert not again.repair.deferred and again.repair.dropped_records == 1
    assert [json.loads(line)[1][1] for line in (folder / RECORDS).read_text().splitlines()] == [[1e-3], [3e-3]]


def test_an_open_database_holds_the_shared_lock(tmp_path):
    import fcntl

    folder = tmp_path / "db"
    _real_database(folder, records=1)
    db = TuningDatabase(folder)
    db.ms_database
    probe = open(folder / ".lock", "a+")
    with pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    db.close()
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    probe.close()
