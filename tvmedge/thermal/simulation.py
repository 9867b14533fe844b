"""A simulated board behind a fake sysfs tree, and the governor comparison that ``thermal run --simulate`` prints.

:class:`SimulatedBoard` is the loop's clock: while the loop sleeps it reads the cap the governor wrote, runs the
:class:`~tvmedge.thermal.model.BoardThermal` model at that frequency (a sustained load always runs as fast as
allowed) and writes the new temperature, with sensor noise, to the fake ``thermal_zone0/temp``.

>>> rows = compare(limit_c=45.0, seconds=600, root="/tmp/sim")
>>> [(r["governor"], round(r["peak_c"], 1), f"{r['loss_vs_ideal']:.1%}") for r in rows]   # doctest: +SKIP
"""

from __future__ import annotations

import os
import random
import statistics
from pathlib import Path

from .governor import Governor, PidGovernor, StepGovernor
from .loop import run_governor
from .model import BoardThermal
from .sysfs import THERMAL_DIR, Sysfs

__all__ = ["SimulatedBoard", "simulate", "compare", "default_governors"]


class SimulatedBoard:
    """A fake sysfs tree under ``root`` whose temperature follows ``thermal`` while the loop sleeps.

    Parameters
    ----------
    root : str or Path
        Where to write the fake tree.
    thermal : BoardThermal
        The board's model (its operating points become ``scaling_available_frequencies``).
    load : float
        Fraction of the cores kept busy (1.0: sustained full load).
    noise_c : float
        Standard deviation of the sensor noise, degC (readings are also quantised to 1 m degC as in sysfs).
    seed : int
        Seeds the noise, so runs are reproducible.
    substep : float
        Integration step, seconds (the model is exact per step; the cap is constant within a sleep).
    """

    def __init__(self, root, thermal: BoardThermal = BoardThermal(), *, load: float = 1.0, noise_c: float = 0.1,
                 seed: int = 0, substep: float = 0.1):
        self.thermal, self.load, self.noise_c, self.substep = thermal, load, noise_c, substep
        self.temp_c, self.now, self.work = thermal.ambient_c, 0.0, 0.0
        self.history = [(0.0, self.temp_c)]
        self._random = random.Random(seed)
        self.sysfs = Sysfs.create_fake(root, temp_c=self.temp_c, frequencies_khz=thermal.frequencies_khz)
        self._temp_file = Path(root) / THERMAL_DIR / "thermal_zone0" / "temp"

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        cap = self.sysfs.read_max_freq()
        steps = max(1, round(seconds / self.substep))
        dt = seconds / steps
        for _ in range(steps):
            self.temp_c = self.thermal.step(self.temp_c, cap, dt, self.load)
            self.work += self.load * cap / self.thermal.f_max * dt
            self.now += dt
            self.history.append((self.now, self.temp_c))
        reading = self.temp_c + self._random.gauss(0.0, self.noise_c) if self.noise_c else self.temp_c
        # Fixed width, in place: a truncating write costs a block flush on ext4, hundreds of times per run.
        fd = os.open(self._temp_file, os.O_WRONLY)
        try:
            os.pwrite(fd, f"{round(reading * 1000):>9d}\n".encode(), 0)
        finally:
            os.close(fd)


class _Unthrottled(Governor):
    """Full speed whatever the temperature: the throughput every governor is measured against."""

    def update(self, temp_c, dt_s):
        return 1.0


def simulate(governor: Governor, seconds: float, *, limit_c: float, root, thermal: BoardThermal = BoardThermal(),
             period: float = 1.0, noise_c: float = 0.1, seed: int = 0, load: float = 1.0) -> dict:
    """Run ``governor`` on a simulated board for ``seconds`` (simulated) and score it.

    Returns
    -------
    dict
        ``peak_c`` (true, not sensed), ``seconds_above_limit``, ``throughput`` (work / work at full speed),
        ``loss_vs_ideal`` (1 - work / :meth:`BoardThermal.ideal_work`), ``cap_changes``, and over the last third
        of the run ``settled_c`` (mean) and ``ripple_c`` (max - min).
    """
    board = SimulatedBoard(root, thermal, load=load, noise_c=noise_c, seed=seed)
    trace = run_governor(board.sysfs, governor, period=period, duration=seconds, clock=board)
    temps = [temp for _, temp in board.history]
    tail = [temp for t, temp in board.history if t >= seconds * 2 / 3]
    above = sum(board.substep for temp in temps[1:] if temp >= limit_c)
    ideal = thermal.ideal_work(limit_c, seconds, load=load)
    return {"peak_c": max(temps), "seconds_above_limit": above, "throughput": board.work / (seconds * load),
            "loss_vs_ideal": 1 - board.work / (ideal * load) if ideal > 0 else None, "cap_changes": trace.changes,
            "settled_c": statistics.fmean(tail), "ripple_c": max(tail) - min(tail)}


def default_governors(limit_c: float, thermal: BoardThermal = BoardThermal(), margin_c: float = 1.0) -> dict:
    """The comparison set: PID, PID without anti-windup, step at the limit, step a margin below it, no governor."""
    levels = tuple(f / thermal.f_max for f in sorted(thermal.frequencies_khz))
    return {
        "pid": PidGovernor(limit_c=limit_c, margin_c=margin_c),
        "pid (no anti-windup)": PidGovernor(limit_c=limit_c, margin_c=margin_c, anti_windup=False),
        "step (trip at limit)": StepGovernor(trip_c=limit_c, levels=levels),
        f"step (trip at limit - {margin_c:g})": StepGovernor(trip_c=limit_c - margin_c, levels=levels),
        "none": _Unthrottled(),
    }


def compare(limit_c: float = 45.0, seconds: float = 600.0, *, root, thermal: BoardThermal = BoardThermal(),
            period: float = 1.0, noise_c: float = 0.1, seed: int = 0) -> list:
    """Score every governor of :func:`default_governors` on the same simulated board and load, one row each."""
    rows = []
    for index, (name, governor) in enumerate(default_governors(limit_c, thermal).items()):
        score = simulate(governor, seconds, limit_c=limit_c, root=Path(root) / f"board{index}", thermal=thermal,
                         period=period, noise_c=noise_c, seed=seed)
        rows.append(dict(governor=name, limit_c=limit_c, **score))
    return rows
