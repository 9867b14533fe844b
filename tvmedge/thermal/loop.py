"""The control loop: read the hottest zone, ask the governor, write the cap, sleep; on a board or a simulation.

The loop touches the hardware only through :class:`~tvmedge.thermal.sysfs.Sysfs` and time only through a
``clock`` (``monotonic()`` and ``sleep()``), so a simulated board that advances its thermal model while the loop
"sleeps" runs the very same code as a real one, just faster than real time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .governor import Governor, make_governor
from .sysfs import Sysfs

__all__ = ["Trace", "run_governor", "govern"]


@dataclass
class Trace:
    """What the loop saw and did, one entry per period."""

    times: list = field(default_factory=list)
    temps_c: list = field(default_factory=list)
    caps_khz: list = field(default_factory=list)
    changes: int = 0  # sysfs writes (a cap is written only when it changes)

    def summary(self) -> dict:
        return {"periods": len(self.times), "cap_changes": self.changes,
                "max_c": max(self.temps_c, default=None), "last_c": self.temps_c[-1] if self.temps_c else None,
                "last_cap_khz": self.caps_khz[-1] if self.caps_khz else None}


def run_governor(sysfs: Sysfs, governor: Governor, *, period: float = 1.0, duration: Optional[float] = None,
                 dry_run: bool = False, clock=time, on_tick: Optional[Callable[[float, float, int], None]] = None) -> Trace:
    """Govern until ``duration`` seconds have passed or Ctrl-C.

    Parameters
    ----------
    sysfs : Sysfs
        Where to read temperatures and write caps.
    governor : Governor
        Decides the cap each period.
    period : float
        Seconds between readings.
    duration : float, optional
        Stop after this long (by ``clock``); None runs until Ctrl-C, and the trace so far is returned.
    dry_run : bool
        Decide and report caps but write nothing.
    clock : object
        ``monotonic()`` and ``sleep(seconds)``; the ``time`` module on a board, a simulated board in tests.
    on_tick : callable, optional
        ``on_tick(seconds since start, temperature degC, cap kHz)`` after each decision.
    """
    trace, start = Trace(), clock.monotonic()
    last, current = None, sysfs.read_max_freq()
    f_max = sysfs.f_max
    fastest = max(sysfs.policies, key=lambda p: p.max_khz)
    try:
        while duration is None or clock.monotonic() - start < duration:
            temp = sysfs.read_temp()
            now = clock.monotonic()
            fraction = governor.update(temp, period if last is None else now - last)
            last = now
            cap = fastest.snap(fraction * f_max)
            if cap != current:
                if not dry_run:
                    cap = sysfs.set_max_freq(fraction * f_max)
                trace.changes, current = trace.changes + 1, cap
            trace.times.append(now - start)
            trace.temps_c.append(temp)
            trace.caps_khz.append(cap)
            if on_tick is not None:
                on_tick(now - start, temp, cap)
            clock.sleep(period)
    except KeyboardInterrupt:  # Ctrl-C is how a long run ends: keep what was seen
        pass
    return trace


def govern(root="/", kind: str = "pid", *, limit_c: float = 45.0, period: float = 1.0, duration: Optional[float] = None,
           dry_run: bool = False, on_tick=None) -> dict:
    """Run a ``kind`` governor (``"pid"`` or ``"step"``) on the tree under ``root``; put the original cap back after.

    Raises
    ------
    HardwareError
        No thermal zones or cpufreq policies under ``root``, or caps not writable (unless ``dry_run``).
    """
    sysfs = Sysfs(root)
    if not dry_run:
        sysfs.check_writable()
    fastest = max(sysfs.policies, key=lambda p: p.max_khz)
    governor = make_governor(kind, limit_c, fastest.frequencies_khz)
    original = sysfs.read_max_freq()
    try:
        trace = run_governor(sysfs, governor, period=period, duration=duration, dry_run=dry_run, on_tick=on_tick)
    finally:
        if not dry_run:
            sysfs.set_max_freq(original)  # never leave the CPU capped behind us
    return dict(trace.summary(), governor=kind, limit_c=limit_c, zones=sysfs.zone_types(),
                restored_cap_khz=None if dry_run else original, dry_run=dry_run)
