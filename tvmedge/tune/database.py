"""``TuningDatabase``: MetaSchedule's JSON database in ``tuning_logs/<target key>/``, reused across models.

Records are keyed by workload (the structural hash of a fused TIR function), so a second model reuses every
task it shares with models tuned before. The folder is keyed by the *target* (arch, CPU, features, cores),
never by the model: records are valid only on the CPU they were measured on.

MetaSchedule appends each record as soon as it is measured, so an interrupted run loses nothing; a process
killed mid-write can leave a torn last line, which opening the database repairs (the rest is kept). A line
that is JSON but not a record MetaSchedule can read (a wrong shape, a negative run time, nesting deep enough to
exhaust a parser) is dropped and counted the same way, so one bad line never costs the whole database.

A process that has the database open holds a shared lock on ``<folder>/.lock`` (MetaSchedule appends workload
and record lines at any time); a repair rewrites the files only under the exclusive lock, and otherwise leaves
them for a later open (a rewrite beside an append would lose the appended line).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import TuningError, first_line
from ..runtime.manifest import machine_arch

__all__ = ["TuningDatabase", "RecordSet", "record_set", "transfer_source", "target_key", "default_log_root", "shipped_log_root",
           "list_databases"]

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def default_log_root() -> Path:
    """Where records a user makes go: ``$TVMEDGE_TUNING_LOGS``, else ``$TVMEDGE_CACHE/tuning_logs`` (default
    ``~/.cache/tvmedge/tuning_logs``) — never the source tree or site-packages."""
    env = os.environ.get("TVMEDGE_TUNING_LOGS")
    if env:
        return Path(env).expanduser()
    from ..cache import cache_dir

    return cache_dir() / "tuning_logs"


def shipped_log_root() -> Optional[Path]:
    """The records shipped with tvmedge (package data: ``tvmedge/tune/shipped_logs``, the repository's
    ``tuning_logs/``), or None when ``$TVMEDGE_TUNING_LOGS`` is set: that folder is then the only one, so an
    empty folder means no records at all."""
    if os.environ.get("TVMEDGE_TUNING_LOGS"):
        return None
    path = Path(__file__).resolve().parent / "shipped_logs"
    return path if path.is_dir() else None


def target_key(target: dict) -> str:
    """A folder name for a resolved TVM target, e.g. ``x86_64-znver4-2c`` or ``aarch64-cortex-a76-neon-4c``."""
    triple = str(target.get("mtriple") or "")
    arch = triple.split("-")[0] if triple else machine_arch()
    parts = [target.get("kind", "llvm") if target.get("kind", "llvm") != "llvm" else "", arch,
             str(target.get("mcpu") or "generic")]
    mattr = target.get("mattr") or []
    if isinstance(mattr, str):
        mattr = mattr.split(",")
    parts += sorted(a.lstrip("+") for a in mattr if a.startswith("+"))
    if target.get("num-cores"):
        parts.append(f"{target['num-cores']}c")
    key = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


LOCK = ".lock"
_MAX_DEPTH = 64  # MetaSchedule's traces nest about 6 deep


@dataclass
class RepairReport:
    dropped_workloads: int = 0
    dropped_records: int = 0
    deferred: bool = False  # damage found while another process had the database open: left for a later open

    def __bool__(self):
        return bool(self.dropped_workloads or self.dropped_records)


class TuningDatabase:
    """A folder holding MetaSchedule's two JSON tables, opened as a ``JSONDatabase``."""

    transferred = False  # records measured on another CPU of the same architecture (see transfer_source)

    def __init__(self, path, *, create: bool = True, read_only: bool = False, label: Optional[str] = None):
        self._lock_handle = None
        self.path = Path(path)
        self.read_only = read_only
        self.label = label or self.path.name
        if self.path.exists() and not self.path.is_dir():
            raise TuningError(f"tuning records {self.path} must be a folder holding {WORKLOADS} and {RECORDS}")
        if not self.path.exists():
            if not create:
                raise TuningError(f"tuning records folder {self.path} does not exist")
            self.path.mkdir(parents=True)
        self.repair = RepairReport() if read_only else self._repair()  # shipped records are not rewritten
        self._db = None

    @classmethod
    def for_target(cls, target: dict, root=None, *, create: bool = True) -> "TuningDatabase":
        return cls(Path(root or default_log_root()) / target_key(target), create=create)

    @property
    def ms_database(self):
        """The MetaSchedule ``JSONDatabase`` (opened on first use, under the shared lock, held while this object
        lives). A line MetaSchedule rejects although it looked like a record is dropped, and the open retried."""
        if self._db is None:
            if self.read_only:  # shipped records: nobody appends to them, and their folder may not be writable
                self._db = self._open_ms()
                return self._db
            self._hold(fcntl.LOCK_SH)
            try:
                self._db = self._open_ms()
            except TuningError:
                if not self._drop_unreadable_records():
                    raise
                self._db = self._open_ms()
        return self._db

    def _open_ms(self):
        from tvm.s_tir.meta_schedule.database import JSONDatabase

        try:
            return JSONDatabase(path_workload=str(self.path / WORKLOADS), path_tuning_record=str(self.path / RECORDS),
                                allow_missing=True)
        except Exception as err:  # MetaSchedule raises TVMError on content it cannot parse
            raise TuningError(f"tuning records in {self.path} are not a MetaSchedule database: "
                              f"{first_line(err, 200)}") from err

    def _hold(self, kind: int, *, wait: bool = True) -> bool:
        """Take ``kind`` (shared / exclusive) on the folder's lock file; False when ``wait`` is off and it is busy."""
        if self._lock_handle is None:
            self._lock_handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(self._lock_handle, kind | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Release the lock (the MetaSchedule database stays usable by whoever holds it)."""
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def __del__(self):
        if getattr(self, "_lock_handle", None) is not None:
            self.close()

    def _drop_unreadable_records(self) -> int:
        """Parse every record with MetaSchedule itself and drop the ones it rejects (their workload is known and
        the line passed the structural checks, yet its trace or target does not parse). Returns how many."""
        from tvm.s_tir.meta_schedule.database import TuningRecord, Workload

        workloads = []
        for line in _read_lines(self.path / WORKLOADS):
            try:
                workloads.append(Workload.from_json(json.loads(line)))
            except Exception:  # noqa: BLE001 - MetaSchedule's own verdict: this workload does not parse
                workloads.append(None)
        bad_workloads = {i for i, w in enumerate(workloads) if w is None}
        keep, dropped = [], 0
        for line in _read_lines(self.path / RECORDS):
            value = json.loads(line)
            try:
                if value[0] in bad_workloads:
                    raise ValueError("its workload does not parse")
                TuningRecord.from_json(value[1], workloads[value[0]])
                keep.append(line)
            except Exception:  # noqa: BLE001 - as above
                dropped += 1
        if not dropped and not bad_workloads:
            return 0
        with self._exclusive() as owned:
            if not owned:
                return 0
            self._keep_damaged()
            kept_workloads = [line for i, line in enumerate(_read_lines(self.path / WORKLOADS)) if i not in bad_workloads]
            renumber = {old: new for new, old in enumerate(i for i in range(len(workloads)) if i not in bad_workloads)}
            records = [json.loads(line) for line in keep]
            _write_lines(self.path / WORKLOADS, kept_workloads)
            _write_lines(self.path / RECORDS, [json.dumps([renumber[r[0]], r[1]]) for r in records])
        self.repair.dropped_records += dropped
        self.repair.dropped_workloads += len(bad_workloads)
        return dropped + len(bad_workloads)

    def _exclusive(self):
        """Context manager: the exclusive lock if no other process has the database open (yields whether it got it);
        the shared lock this object held before is taken again afterwards."""
        database = self

        class _Exclusive:
            def __enter__(self):
                self.had = database._lock_handle is not None
                self.owned = database._hold(fcntl.LOCK_EX, wait=False)
                return self.owned

            def __exit__(self, *exc):
                if self.had:
                    database._hold(fcntl.LOCK_SH)
                elif database._lock_handle is not None:
                    database.close()
                return False

        return _Exclusive()

    def _keep_damaged(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for path in (self.path / WORKLOADS, self.path / RECORDS):
            if path.exists():
                shutil.copy2(path, path.with_name(f"{path.name}.damaged-{stamp}"))

    # -- repair -------------------------------------------------------------------------------------------
    def _repair(self) -> RepairReport:
        """Drop torn or foreign lines, renumbering records, and keep a copy of what was dropped.

        Written here because MetaSchedule's loader aborts on the first bad line, which would make one torn
        write (a killed tuning run) cost the whole database.
        """
        report = RepairReport()
        workloads_path, records_path = self.path / WORKLOADS, self.path / RECORDS
        if not workloads_path.exists() and not records_path.exists():
            return report
        workloads = _read_lines(workloads_path)
        records = _read_lines(records_path)
        kept_workloads, new_index = [], {}
        for index, line in enumerate(workloads):
            if _valid_workload(line):
                new_index[index] = len(kept_workloads)
                kept_workloads.append(line)
            else:
                report.dropped_workloads += 1
        kept_records = []
        for line in records:
            value = _parse(line)
            if not _valid_record(value) or value[0] not in new_index:
                report.dropped_records += 1
                continue
            old = value[0]
            value[0] = new_index[old]
            kept_records.append(line if value[0] == old else json.dumps(value))
        if report:
            with self._exclusive() as owned:
                if not owned:  # another process has it open and may be appending: a rewrite could lose its line
                    report.deferred = True
                    return report
                # read again under the lock: what was appended since the first read is kept
                if _read_lines(workloads_path) != workloads or _read_lines(records_path) != records:
                    return self._repair()
                self._keep_damaged()
                _write_lines(workloads_path, kept_workloads)
                _write_lines(records_path, kept_records)
        return report

    # -- queries ------------------------------------------------------------------------------------------
    def best(self, func_mod, target) -> Optional[float]:
        """Best measured latency (seconds) of a workload for ``target``, or None when it has no record."""
        db = self.ms_database
        if not db.has_workload(func_mod):
            return None
        records = db.get_top_k(db.commit_workload(func_mod), 1)
        if not records or not records[0].run_secs:
            return None
        secs = [float(s) for s in records[0].run_secs]
        return sum(secs) / len(secs)

    def count(self, func_mod) -> int:
        """Number of measured records of a workload."""
        db = self.ms_database
        if not db.has_workload(func_mod):
            return 0
        return len(db.get_top_k(db.commit_workload(func_mod), 1 << 30))

    def summary(self) -> dict:
        workloads = _read_lines(self.path / WORKLOADS)
        records = [r for r in (_parse(line) for line in _read_lines(self.path / RECORDS)) if _valid_record(r)]
        per_workload: dict = {}
        for record in records:
            per_workload.setdefault(record[0], 0)
            per_workload[record[0]] += 1
        return {"path": str(self.path), "key": self.path.name, "workloads": len(workloads),
                "records": len(records), "tuned_workloads": len(per_workload),
                "bytes": sum(p.stat().st_size for p in (self.path / WORKLOADS, self.path / RECORDS) if p.exists())}


class RecordSet:
    """The records a compile looks up: the user's folder for the target, then the shipped one (best run time
    wins across them, through MetaSchedule's ``UnionDatabase``). Only the user's folder is ever written."""

    def __init__(self, databases: list):
        self.databases = [d for d in databases if d is not None]
        self._union = None

    def __bool__(self) -> bool:
        return bool(self.databases)

    @property
    def label(self) -> Optional[str]:
        return " + ".join(d.label for d in self.databases) or None

    @property
    def ms_database(self):
        if self._union is None:
            if len(self.databases) == 1:
                self._union = self.databases[0].ms_database
            else:
                from tvm.s_tir.meta_schedule.database import UnionDatabase

                self._union = UnionDatabase(*[d.ms_database for d in self.databases])
        return self._union

    def best(self, func_mod, target) -> Optional[float]:
        found = [b for d in self.databases if (b := d.best(func_mod, target)) is not None]
        return min(found) if found else None

    def count(self, func_mod) -> int:
        return sum(d.count(func_mod) for d in self.databases)

    def measured_here(self, func_mod, target) -> bool:
        """Whether a record of this CPU (not a transferred one) exists for the workload."""
        return any(d.best(func_mod, target) is not None for d in self.databases if not d.transferred)


def record_set(key: str, root=None) -> RecordSet:
    """The user's records for target ``key`` under ``root`` (default :func:`default_log_root`) and, unless a
    root is given or ``$TVMEDGE_TUNING_LOGS`` is set, the shipped ones. Folders that do not exist are skipped
    (a lookup never creates one)."""
    found = []
    user = Path(root or default_log_root()) / key
    if user.is_dir():
        found.append(TuningDatabase(user, create=False, label=f"user:{key}"))
    shipped = shipped_log_root()
    if root is None and shipped is not None:
        if (shipped / key).is_dir():
            found.append(TuningDatabase(shipped / key, create=False, read_only=True, label=f"shipped:{key}"))
        elif (nearest := transfer_source(key, [p.name for p in shipped.iterdir() if p.is_dir()])) is not None:
            database = TuningDatabase(shipped / nearest, create=False, read_only=True, label=f"transferred:{nearest}")
            database.transferred = True
            found.append(database)
    return RecordSet(found)


def transfer_source(key: str, keys: list) -> Optional[str]:
    """The records folder to transfer to target ``key`` when it has none of its own: another CPU of the same
    architecture and the same vector features, the same core count preferred (e.g. ``x86_64-znver5-2c`` records
    for an ``x86_64-znver4-2c`` host). A schedule is a loop nest, valid on any CPU of the architecture; what
    changes between CPUs is how fast it is, so measured records of a sibling CPU are a better start than none.
    Never across architectures: vector width and intrinsics differ."""
    def parts(k):
        fields = k.split("-")
        cores = fields[-1] if fields[-1].endswith("c") and fields[-1][:-1].isdigit() else ""
        return fields[0], cores

    arch, cores = parts(key)
    same_arch = [k for k in keys if k != key and parts(k)[0] == arch]
    if arch.startswith("aarch64") or arch.startswith("riscv"):
        # ARM and RISC-V keys name their vector features (neon, v, zvl256b): they must match exactly
        same_arch = [k for k in same_arch if _features(k) == _features(key)]
    if not same_arch:
        return None
    return sorted(same_arch, key=lambda k: (parts(k)[1] != cores, k))[0]


def _features(key: str) -> set:
    return {f for f in key.split("-")[2:] if f in ("neon", "v", "zvl256b", "zvl128b", "sve", "dotprod", "i8mm")}


def list_databases(root=None) -> list:
    """Summaries of every target folder under the log root (and, by default, the shipped ones)."""
    roots = [Path(root or default_log_root())]
    shipped = shipped_log_root()
    if root is None and shipped is not None:
        roots.append(shipped)
    rows = []
    for folder in roots:
        if folder.is_dir():
            rows += [dict(TuningDatabase(p, create=False, read_only=folder == shipped).summary(),
                          shipped=folder == shipped)
                     for p in sorted(folder.iterdir())
                     if p.is_dir() and ((p / WORKLOADS).exists() or (p / RECORDS).exists())]
    return rows


def _read_lines(path: Path) -> list:
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise TuningError(f"{path} is not a MetaSchedule JSON table (binary content)") from err
    return [line for line in text.splitlines() if line.strip()]


def _write_lines(path: Path, lines: list) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def _parse(line: str):
    """The line's JSON value, or None when it is not JSON or nested deeper than a record ever is."""
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if _depth_ok(value) else None


def _depth_ok(value) -> bool:
    todo = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if level > _MAX_DEPTH:
            return False
        if isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
        elif isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
    return True


def _valid_record(value) -> bool:
    """``[workload index, [trace, run_secs, ...]]`` with run times that are non-negative finite seconds."""
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and not isinstance(value[0], bool)
            and isinstance(value[1], list) and value[1]):
        return False
    body = value[1]
    if len(body) > 1 and body[1] is not None:
        secs = body[1]
        if not isinstance(secs, list) or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                                 and math.isfinite(s) and s >= 0 for s in secs):
            return False
    return True


def _valid_workload(line: str) -> bool:
    value = _parse(line)
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)
