"""``BoardThermal``: a first-order thermal model of a board under sustained load, for tests and ``--simulate``.

One lumped node (die + heatsink) with heat capacity ``C`` and thermal resistance ``R`` to ambient::

    C dT/dt = P(f) - (T - T_ambient) / R        P(f) = P_static + load * P_dynamic * (f / f_max)^3

Dynamic power goes as f * V^2 with the voltage scaled along with the frequency (DVFS), hence the cube; work done
goes as ``f``. Over a step of constant power the solution is exact: ``T_ss + (T - T_ss) * exp(-dt / RC)``.

The defaults are an RK3588-class board with a passive heatsink: the Cortex-A76 operating points (408 MHz to
2.4 GHz, rk3588s.dtsi), ~6 W at full load on the big cores, and R, C chosen so that full speed settles near
61 degC from 25 degC with a 30 s time constant: a 45 degC limit must cost some frequency, as on a real board.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BoardThermal", "RK3588_FREQUENCIES_KHZ"]

RK3588_FREQUENCIES_KHZ = (408000, 600000, 816000, 1008000, 1200000, 1416000, 1608000, 1800000, 2016000, 2208000, 2400000)


@dataclass(frozen=True)
class BoardThermal:
    """Parameters of the first-order model (SI units, temperatures in degC, frequencies in kHz)."""

    ambient_c: float = 25.0
    resistance_c_per_w: float = 6.0
    capacitance_j_per_c: float = 5.0
    static_w: float = 0.8
    dynamic_w: float = 5.2
    frequencies_khz: tuple = RK3588_FREQUENCIES_KHZ

    @property
    def f_max(self) -> int:
        return max(self.frequencies_khz)

    @property
    def tau_s(self) -> float:
        return self.resistance_c_per_w * self.capacitance_j_per_c

    def power(self, freq_khz: float, load: float = 1.0) -> float:
        """Watts drawn at ``freq_khz`` with ``load`` (0..1) of the cores busy."""
        return self.static_w + load * self.dynamic_w * (freq_khz / self.f_max) ** 3

    def steady_c(self, freq_khz: float, load: float = 1.0) -> float:
        """Temperature the board settles at if it runs at ``freq_khz`` for ever."""
        return self.ambient_c + self.resistance_c_per_w * self.power(freq_khz, load)

    def step(self, temp_c: float, freq_khz: float, dt: float, load: float = 1.0) -> float:
        """Temperature after ``dt`` seconds at constant ``freq_khz`` (exact for constant power)."""
        target = self.steady_c(freq_khz, load)
        return target + (temp_c - target) * math.exp(-dt / self.tau_s)

    def sustainable_fraction(self, limit_c: float, load: float = 1.0) -> float:
        """Largest f / f_max whose steady temperature is ``limit_c`` (1.0 if full speed stays below it)."""
        headroom_w = (limit_c - self.ambient_c) / self.resistance_c_per_w - self.static_w
        if headroom_w <= 0:
            return 0.0
        return min(1.0, (headroom_w / (load * self.dynamic_w)) ** (1 / 3)) if load > 0 else 1.0

    def ideal_work(self, limit_c: float, seconds: float, start_c: float | None = None, load: float = 1.0) -> float:
        """Work (in seconds at f_max) of the best any governor can do: full speed until ``limit_c``, then hold it.

        The bound assumes continuous frequencies and a perfect sensor; real governors pick among operating
        points and must keep a margin, so their loss against it is the honest figure.
        """
        start = self.ambient_c if start_c is None else start_c
        full = self.steady_c(self.f_max, load)
        if full <= limit_c:
            return seconds
        if start >= limit_c:
            return seconds * self.sustainable_fraction(limit_c, load)
        reach = min(seconds, -self.tau_s * math.log((full - limit_c) / (full - start)))
        return reach + (seconds - reach) * self.sustainable_fraction(limit_c, load)
