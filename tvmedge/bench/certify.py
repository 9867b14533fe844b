"""``certify``: a publishable pass/fail report on an artifact running on this machine or an emulated board.

Checks (thresholds from issue 7 §5):

========================  =====================================================================
manifest                  manifest digest, format, target architecture and every file's sha256
model load                ``tvmedge.runtime.load`` (verification included) < 3 s
first inference           first ``run`` after load (lazy set-up included) < 500 ms
sustained load            back-to-back inference for ``duration`` s (>= 60 s to certify); the
                          last quarter's median latency within 1.25x (and 0.1 ms) of the first's
temperature stable        hottest thermal zone varies <= 3 degC over the second half of the run,
                          or "not measurable here" when the machine exposes no thermal zone
========================  =====================================================================

Verdicts: ``PASS`` (every check passed), ``FAIL`` (one failed), ``INCOMPLETE`` (nothing failed but something was
not measurable here or the run was shorter than 60 s), ``NOT CERTIFIABLE`` (an emulated board: its timings are the
emulator's, so it reports but never passes).

>>> from tvmedge.bench.certify import certify
>>> report = certify("out/", duration=60)
>>> report["verdict"], [c["status"] for c in report["checks"]]
('INCOMPLETE', ['pass', 'pass', 'pass', 'pass', 'not measurable'])
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Optional

from .. import __version__
from ..errors import ArtifactError, ConfigError, HardwareError

__all__ = ["certify", "LOAD_LIMIT_S", "FIRST_INFERENCE_LIMIT_MS", "CERTIFIED_DURATION_S", "TEMP_DRIFT_LIMIT_C",
           "THROTTLE_RATIO"]

LOAD_LIMIT_S = 3.0
FIRST_INFERENCE_LIMIT_MS = 500.0
CERTIFIED_DURATION_S = 60.0
TEMP_DRIFT_LIMIT_C = 3.0
THROTTLE_RATIO = 1.25
THROTTLE_FLOOR_MS = 0.1  # below this a drift is timer / scheduler noise (sub-millisecond models on shared cores)


def certify(artifact, *, board: Optional[str] = None, duration: float = CERTIFIED_DURATION_S, sysfs_root="/",
            min_duration: float = CERTIFIED_DURATION_S) -> dict:
    """Measure and judge an artifact; returns the report (JSON-ready). See the module docstring.

    ``board`` is None (this machine) or ``emu:NAME``. ``min_duration`` is the sustained run a PASS needs.

    Raises
    ------
    ArtifactError
        ``artifact`` is not an artifact directory (a tampered one is reported as a failed check instead).
    ConfigError
        Bad ``--board`` or a duration <= 0.
    """
    from ..runtime.manifest import Manifest

    if not duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds (got {duration:g}); certification uses {CERTIFIED_DURATION_S:g}")
    emulated_board = _emulated_board(board)
    manifest = Manifest.read(artifact)  # not an artifact at all: an error, not a report
    report = {
        "tool": f"tvmedge certify {__version__}",
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "artifact": str(artifact),
        "model": manifest.source_model.get("file") or manifest.source_model.get("name") or "",
        "built_for": {"board": manifest.board, "triple": manifest.triple, "tvm": manifest.tvm_version},
        "library_sha256": manifest.files.get(manifest.library, {}).get("sha256", ""),
        "ran_on": (f"emu:{emulated_board.board.name} (qemu-user, {emulated_board.arch})" if emulated_board
                   else f"this machine ({platform.machine()}, {platform.system()} {platform.release()}, "
                        f"{os.cpu_count()} logical cores)"),
        "emulated": emulated_board is not None,
        "duration_s": duration,
        "thresholds": {"load_s": LOAD_LIMIT_S, "first_inference_ms": FIRST_INFERENCE_LIMIT_MS,
                       "sustained_s": min_duration, "temperature_drift_c": TEMP_DRIFT_LIMIT_C,
                       "throttle_ratio": THROTTLE_RATIO},
        "checks": [],
    }
    checks = report["checks"]
    try:
        if emulated_board is not None:
            if manifest.arch != emulated_board.arch:
                raise ArtifactError(f"built for {manifest.arch}, board {emulated_board.board.name} is {emulated_board.arch}")
        else:
            manifest.check_arch(artifact)
        manifest.verify(artifact)
    except ArtifactError as err:
        checks.append(_check("manifest", "digest, architecture and sha256 of every file", "mismatch", "fail", str(err)))
        for name in ("model load", "first inference", "sustained load", "temperature stable"):
            checks.append(_check(name, "", "-", "not run", "the manifest check failed"))
        return _verdict(report)
    checks.append(_check("manifest", "digest, architecture and sha256 of every file",
                         f"{len(manifest.files)} file(s) verified", "pass"))

    if emulated_board is not None:
        measured, thermal_note = emulated_board.measure(Path(artifact).resolve(), duration), \
            "emulated board: the sensors qemu-user sees are the host's, not the board's"
    else:
        reader, thermal_note = _thermal_reader(sysfs_root)
        from ..runtime.certify import measure

        measured = measure(artifact, duration, reader)
    report["measurements"] = measured
    _judge(report, measured, min_duration, thermal_note)
    return _verdict(report)


def _check(name, criterion, measured, status, note="") -> dict:
    return {"name": name, "criterion": criterion, "measured": measured, "status": status, "note": note}


def _judge(report: dict, m: dict, min_duration: float, thermal_note: str) -> None:
    emulated = report["emulated"]
    timed = "not certifiable" if emulated else None  # emulated timings are reported, never judged
    note = "emulated timings" if emulated else ""
    checks = report["checks"]
    checks.append(_check("model load", f"< {LOAD_LIMIT_S:g} s", f"{m['load_s']:.3f} s",
                         timed or ("pass" if m["load_s"] < LOAD_LIMIT_S else "fail"), note))
    checks.append(_check("first inference", f"< {FIRST_INFERENCE_LIMIT_MS:g} ms", f"{m['first_inference_ms']:.2f} ms",
                         timed or ("pass" if m["first_inference_ms"] < FIRST_INFERENCE_LIMIT_MS else "fail"), note))
    lat = m.get("latency_ms") or {}
    if not m.get("runs"):
        checks.append(_check("sustained load", f"{min_duration:g} s back to back", "0 runs", timed or "fail",
                             note or "no inference completed within the duration"))
    else:
        ratio = lat["last_quarter_p50"] / lat["first_quarter_p50"] if lat["first_quarter_p50"] > 0 else 1.0
        measured = (f"{m['runs']} runs in {m['duration_s']:.1f} s ({m['runs'] / m['duration_s']:.1f}/s), "
                    f"p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, drift x{ratio:.2f}")
        if timed:
            status, why = timed, note
        elif ratio > THROTTLE_RATIO and lat["last_quarter_p50"] - lat["first_quarter_p50"] > THROTTLE_FLOOR_MS:
            status, why = "fail", f"latency rose x{ratio:.2f} from the first to the last quarter (throttling?)"
        elif m["duration_s"] < min_duration:
            status, why = "too short", f"ran {m['duration_s']:.1f} s; certification needs {min_duration:g} s"
        else:
            status, why = "pass", ""
        checks.append(_check("sustained load", f"{min_duration:g} s, latency drift <= x{THROTTLE_RATIO:g}",
                             measured, status, why))
    pipe = m.get("pipeline")
    if pipe and m.get("runs"):  # a throughput plan: its stages streamed as a pipeline (tvmedge.runtime.pipeline)
        sequential = m["runs"] / m["duration_s"]
        checks.append(_check("pipelined throughput", "the plan's stages run as a pipeline",
                             f"{pipe['throughput_ips']:.1f}/s ({pipe['throughput_ips'] / sequential:.2f}x stage after "
                             f"stage; {' | '.join(pipe['executions'])})", timed or "pass", note))
    temps = m.get("temperatures") or []
    criterion = f"<= {TEMP_DRIFT_LIMIT_C:g} degC over the second half"
    if len(temps) < 2:
        checks.append(_check("temperature stable", criterion, "-", "not measurable", thermal_note or
                             "fewer than 2 readings"))
    else:
        half = [t for s, t in temps if s >= temps[-1][0] / 2] or [temps[-1][1]]
        drift = max(half) - min(half)
        measured = f"{temps[0][1]:.1f} -> {temps[-1][1]:.1f} degC (max {max(t for _, t in temps):.1f}), drift {drift:.1f}"
        status = "pass" if drift <= TEMP_DRIFT_LIMIT_C else "fail"
        checks.append(_check("temperature stable", criterion, measured, status, f"{len(temps)} readings"))


def _verdict(report: dict) -> dict:
    statuses = [c["status"] for c in report["checks"]]
    if "fail" in statuses:
        failed = next(c for c in report["checks"] if c["status"] == "fail")
        report["verdict"], report["reason"] = "FAIL", f"{failed['name']}: {failed['note'] or failed['measured']}"
    elif report["emulated"]:
        report["verdict"], report["reason"] = "NOT CERTIFIABLE", "emulated timings: run on the real board to certify"
    elif all(s == "pass" for s in statuses):
        report["verdict"], report["reason"] = "PASS", "every check passed"
    else:
        open_checks = [c["name"] for c in report["checks"] if c["status"] != "pass"]
        report["verdict"], report["reason"] = "INCOMPLETE", f"not established here: {', '.join(open_checks)}"
    return report


def _emulated_board(board: Optional[str]):
    if board is None:
        return None
    from ..devices.board import emulated_board_name, load_board
    from ..emulator import setup_board

    return setup_board(load_board(emulated_board_name(board, hint="; omit it to certify this machine")))


def _thermal_reader(root) -> tuple:
    """(reader or None, why not): tvmedge.thermal's Sysfs when it opens, else the zones alone (no cpufreq needed)."""
    from ..runtime.certify import read_thermal_zones
    from ..thermal.sysfs import THERMAL_DIR, Sysfs

    try:
        return Sysfs(root).read_temp, ""
    except HardwareError as err:
        reader = read_thermal_zones(str(root))  # zones without cpufreq (a VM, some boards) still give temperatures
        if reader is not None:
            return reader, ""
        return None, f"not measurable here: no thermal zones under {Path(root) / THERMAL_DIR}" \
            if "thermal zones" in str(err) else str(err)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2)
