"""``Sysfs``: Linux thermal zones and cpufreq caps under a configurable root. Stdlib only.

Reads ``<root>/sys/class/thermal/thermal_zone*/temp`` (millidegrees C) and writes
``<root>/sys/devices/system/cpu/cpufreq/policy*/scaling_max_freq`` (kHz), snapped down to an operating point from
``scaling_available_frequencies`` when the driver lists them, and kept within ``cpuinfo_min_freq`` ..
``cpuinfo_max_freq``. A different root is a fake tree (tests, ``--simulate``) or a board's root mounted elsewhere.

>>> fs = Sysfs.create_fake("/tmp/board", temp_c=40.0, frequencies_khz=(408000, 1200000, 2400000))
>>> fs.read_temp()
40.0
>>> fs.set_max_freq(2000000)                    # snapped down to an operating point
1200000
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import HardwareError

__all__ = ["Sysfs", "CpuPolicy", "THERMAL_DIR", "CPUFREQ_DIR"]

THERMAL_DIR = Path("sys/class/thermal")
CPUFREQ_DIR = Path("sys/devices/system/cpu/cpufreq")


@dataclass(frozen=True)
class CpuPolicy:
    """One cpufreq policy (a cluster of cores sharing a clock)."""

    path: Path
    min_khz: int
    max_khz: int
    frequencies_khz: tuple  # operating points, ascending; empty when the driver does not list them

    def snap(self, khz: float) -> int:
        """The highest operating point at or below ``khz``, within min..max."""
        khz = int(min(max(khz, self.min_khz), self.max_khz))
        below = [f for f in self.frequencies_khz if f <= khz]
        return max(below) if below else (min(self.frequencies_khz) if self.frequencies_khz else khz)


class Sysfs:
    """Thermal zones and cpufreq policies under ``root`` (default ``/``).

    Raises
    ------
    HardwareError
        No thermal zone or no cpufreq policy there (one line naming the directory).
    """

    def __init__(self, root="/"):
        self.root = Path(root)
        thermal, cpufreq = self.root / THERMAL_DIR, self.root / CPUFREQ_DIR
        self.zones = sorted(p for p in thermal.glob("thermal_zone*") if (p / "temp").is_file())
        if not self.zones:
            raise HardwareError(f"no thermal zones under {thermal}: this machine exposes no temperature sensor to govern "
                                "(try --simulate 600, or --sysfs-root for a board's tree)")
        self.policies = [_policy(p) for p in sorted(cpufreq.glob("policy*")) if (p / "scaling_max_freq").is_file()]
        if not self.policies:
            raise HardwareError(f"no cpufreq policies under {cpufreq}: this machine exposes no CPU frequency control "
                                "(a VM or a kernel without cpufreq); nothing to govern")

    @property
    def f_max(self) -> int:
        return max(p.max_khz for p in self.policies)

    def zone_types(self) -> list:
        return [_read(z / "type", z.name) for z in self.zones]

    def read_temp(self) -> float:
        """The hottest readable zone, degC. Zones that fail to read (some report EIO when idle) are skipped."""
        readings = []
        for zone in self.zones:
            try:
                readings.append(int((zone / "temp").read_text().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        if not readings:
            raise HardwareError(f"none of the {len(self.zones)} thermal zones under {self.root / THERMAL_DIR} could be read")
        return max(readings)

    def check_writable(self) -> None:
        """HardwareError naming the first ``scaling_max_freq`` this process may not write (e.g. not root)."""
        for policy in self.policies:
            target = policy.path / "scaling_max_freq"
            if not os.access(target, os.W_OK):
                raise HardwareError(f"cannot write {target}: permission denied; run as root, or pass --dry-run to only watch")

    def set_max_freq(self, khz: float) -> int:
        """Cap every policy at ``khz`` (snapped per policy); returns the cap written to the fastest policy."""
        written = 0
        for policy in self.policies:
            value = policy.snap(khz * policy.max_khz / self.f_max)  # the same fraction of each cluster's range
            try:
                (policy.path / "scaling_max_freq").write_text(f"{value}\n")
            except OSError as err:
                raise HardwareError(f"cannot write {policy.path / 'scaling_max_freq'}: {err.strerror or err}") from err
            if policy.max_khz == self.f_max:
                written = value
        return written

    def read_max_freq(self) -> int:
        """The current cap of the fastest policy, kHz."""
        fastest = max(self.policies, key=lambda p: p.max_khz)
        return int(_read(fastest.path / "scaling_max_freq", str(fastest.max_khz)))

    @classmethod
    def create_fake(cls, root, temp_c: float = 40.0, frequencies_khz=(408000, 1200000, 2400000), zones: int = 1) -> "Sysfs":
        """Write a minimal fake tree under ``root`` (thermal zones + one cpufreq policy) and open it."""
        root = Path(root)
        for index in range(zones):
            zone = root / THERMAL_DIR / f"thermal_zone{index}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(f"soc-thermal{index}\n")
            (zone / "temp").write_text(f"{round(temp_c * 1000)}\n")
        policy = root / CPUFREQ_DIR / "policy0"
        policy.mkdir(parents=True, exist_ok=True)
        frequencies = sorted(int(f) for f in frequencies_khz)
        for name, value in (("cpuinfo_min_freq", frequencies[0]), ("cpuinfo_max_freq", frequencies[-1]),
                            ("scaling_max_freq", frequencies[-1]),
                            ("scaling_available_frequencies", " ".join(map(str, frequencies)))):
            (policy / name).write_text(f"{value}\n")
        return cls(root)


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _policy(path: Path) -> CpuPolicy:
    frequencies = tuple(sorted(int(f) for f in _read(path / "scaling_available_frequencies", "").split() if f.isdigit()))
    try:
        high = int(_read(path / "cpuinfo_max_freq", _read(path / "scaling_max_freq", "0")))
        low = int(_read(path / "cpuinfo_min_freq", str(frequencies[0] if frequencies else 0)))
    except ValueError as err:
        raise HardwareError(f"{path} has an unreadable frequency file: {err}") from err
    if high <= 0:
        raise HardwareError(f"{path} reports no maximum frequency (cpuinfo_max_freq)")
    return CpuPolicy(path=path, min_khz=low, max_khz=high, frequencies_khz=frequencies)
