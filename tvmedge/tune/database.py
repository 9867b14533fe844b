"""``TuningDatabase``: MetaSchedule's JSON database in ``tuning_logs/<target key>/``, reused across models.

Records are keyed by workload (the structural hash of a fused TIR function), so a second model reuses every
task it shares with models tuned before. The folder is keyed by the *target* (arch, CPU, features, cores),
never by the model: records are valid only on the CPU they were measured on.

MetaSchedule appends each record as soon as it is measured, so an interrupted run loses nothing; a process
killed mid-write can leave a torn last line, which :meth:`TuningDatabase.open` repairs (the rest is kept).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import TuningError, first_line
from ..runtime.manifest import machine_arch

__all__ = ["TuningDatabase", "target_key", "default_log_root", "list_databases"]

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def default_log_root() -> Path:
    """``$TVMEDGE_TUNING_LOGS`` or the repository's ``tuning_logs/``."""
    env = os.environ.get("TVMEDGE_TUNING_LOGS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "tuning_logs"


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


@dataclass
class RepairReport:
    dropped_workloads: int = 0
    dropped_records: int = 0

    def __bool__(self):
        return bool(self.dropped_workloads or self.dropped_records)


class TuningDatabase:
    """A folder holding MetaSchedule's two JSON tables, opened as a ``JSONDatabase``."""

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise TuningError(f"tuning records {self.path} must be a folder holding {WORKLOADS} and {RECORDS}")
        if not self.path.exists():
            if not create:
                raise TuningError(f"tuning records folder {self.path} does not exist")
            self.path.mkdir(parents=True)
        self.repair = self._repair()
        self._db = None

    @classmethod
    def for_target(cls, target: dict, root=None, *, create: bool = True) -> "TuningDatabase":
        return cls(Path(root or default_log_root()) / target_key(target), create=create)

    @property
    def ms_database(self):
        """The MetaSchedule ``JSONDatabase`` (opened on first use)."""
        if self._db is None:
            from tvm.s_tir.meta_schedule.database import JSONDatabase

            try:
                self._db = JSONDatabase(path_workload=str(self.path / WORKLOADS),
                                        path_tuning_record=str(self.path / RECORDS), allow_missing=True)
            except Exception as err:  # MetaSchedule raises TVMError on content it cannot parse
                raise TuningError(f"tuning records in {self.path} are not a MetaSchedule database: "
                                  f"{first_line(err, 200)}") from err
        return self._db

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
            valid = isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)
            if not valid or not isinstance(value[0], int) or value[0] not in new_index:
                report.dropped_records += 1
                continue
            old = value[0]
            value[0] = new_index[old]
            kept_records.append(line if value[0] == old else json.dumps(value))
        if report:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for path in (workloads_path, records_path):
                if path.exists():
                    shutil.copy2(path, path.with_name(f"{path.name}.damaged-{stamp}"))
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
        records = [_parse(line) for line in _read_lines(self.path / RECORDS)]
        per_workload: dict = {}
        for record in records:
            per_workload.setdefault(record[0], 0)
            per_workload[record[0]] += 1
        return {"path": str(self.path), "key": self.path.name, "workloads": len(workloads),
                "records": len(records), "tuned_workloads": len(per_workload),
                "bytes": sum(p.stat().st_size for p in (self.path / WORKLOADS, self.path / RECORDS) if p.exists())}


def list_databases(root=None) -> list:
    """Summaries of every target folder under the log root."""
    root = Path(root or default_log_root())
    if not root.is_dir():
        return []
    return [TuningDatabase(p, create=False).summary() for p in sorted(root.iterdir())
            if p.is_dir() and ((p / WORKLOADS).exists() or (p / RECORDS).exists())]


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
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _valid_workload(line: str) -> bool:
    value = _parse(line)
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)
