"""Thermal governors: a temperature reading in, a CPU frequency cap out.

Contract (:class:`Governor`): ``update(temp_c, dt_s)`` is called once per control period with the hottest zone's
temperature and the seconds since the last call, and returns the cap as a fraction of the fastest frequency, in
``[min_fraction, 1]``; the caller snaps it to an operating point and writes it. A governor keeps its own state;
``reset()`` forgets it.

- :class:`PidGovernor`: PID on the temperature, aimed a margin below the limit, acting on the temperature
  predicted a few seconds ahead (pre-emptive: it throttles while the board is still heating towards the limit,
  not once it is there), with anti-windup (the integral stops growing while the output is saturated, so a cold
  start at full speed does not store up "headroom" that later overshoots the limit).
- :class:`StepGovernor`: what Linux's ``step_wise`` does: one operating point down per period at or above the trip
  temperature, one up below trip minus a hysteresis. The baseline the PID governor is compared with.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Governor", "PidGovernor", "StepGovernor", "make_governor", "GOVERNORS"]

GOVERNORS = ("pid", "step")


class Governor(abc.ABC):
    """Maps temperature readings to a frequency cap (see the module docstring for the contract)."""

    min_fraction: float = 0.17

    @abc.abstractmethod
    def update(self, temp_c: float, dt_s: float) -> float:
        """The cap for the next period, as a fraction of the fastest frequency."""

    def reset(self) -> None:
        """Forget the state (integral, filters, level)."""


@dataclass
class PidGovernor(Governor):
    """PID cap controller with anti-windup and pre-emptive throttling.

    Parameters
    ----------
    limit_c : float
        Temperature never to reach.
    margin_c : float
        The set point is ``limit_c - margin_c``: room for sensor noise and the ripple of switching operating points.
    kp, ki, kd : float
        Gains in cap fraction per degC, per degC*s and per degC/s.
    lookahead_s : float
        The error is taken on ``T + lookahead_s * dT/dt`` while heating: the cap comes down before the set point.
    slope_smoothing : float
        Weight of the newest slope in its exponential average (readings are noisy and quantised).
    anti_windup : bool
        Stop integrating while the output is saturated (off only to show why it is on).
    min_fraction : float
        Lowest cap (fraction of f_max).
    """

    limit_c: float = 45.0
    margin_c: float = 1.0
    kp: float = 0.05
    ki: float = 0.02
    kd: float = 0.2
    lookahead_s: float = 5.0
    slope_smoothing: float = 0.3
    anti_windup: bool = True
    min_fraction: float = 0.17
    _integral: float = field(default=0.0, init=False, repr=False)
    _last: float | None = field(default=None, init=False, repr=False)
    _slope: float = field(default=0.0, init=False, repr=False)

    def reset(self) -> None:
        self._integral, self._last, self._slope = 0.0, None, 0.0

    def update(self, temp_c: float, dt_s: float) -> float:
        if self._last is not None and dt_s > 0:
            raw = (temp_c - self._last) / dt_s
            self._slope += self.slope_smoothing * (raw - self._slope)
        self._last = temp_c
        predicted = temp_c + self.lookahead_s * max(self._slope, 0.0)  # anticipate heating only, never cooling
        error = (self.limit_c - self.margin_c) - predicted              # > 0: headroom
        proposed = self._integral + self.ki * error * dt_s
        output = 1.0 + self.kp * error + proposed - self.kd * self._slope  # 1.0: full speed when there is no error
        saturated = output > 1.0 and error > 0 or output < self.min_fraction and error < 0
        if not (self.anti_windup and saturated):
            self._integral = proposed
        if self.anti_windup:  # the integral alone never has to hold more than the whole range
            self._integral = min(0.0, max(self.min_fraction - 1.0, self._integral))
        return min(1.0, max(self.min_fraction, 1.0 + self.kp * error + self._integral - self.kd * self._slope))


@dataclass
class StepGovernor(Governor):
    """One operating point down per period at or above ``trip_c``, one up below ``trip_c - hysteresis_c``.

    Parameters
    ----------
    trip_c : float
        Trip temperature (Linux puts the passive trip point at the limit).
    levels : tuple of float
        Operating points as fractions of f_max, ascending.
    hysteresis_c : float
        How far below the trip the temperature must fall before a step back up.
    """

    trip_c: float = 45.0
    levels: tuple = (0.17, 0.25, 0.34, 0.42, 0.5, 0.59, 0.67, 0.75, 0.84, 0.92, 1.0)
    hysteresis_c: float = 1.0
    _index: int | None = field(default=None, init=False, repr=False)

    @property
    def min_fraction(self) -> float:
        return min(self.levels)

    def reset(self) -> None:
        self._index = None

    def update(self, temp_c: float, dt_s: float) -> float:
        top = len(self.levels) - 1
        index = top if self._index is None else self._index
        if temp_c >= self.trip_c:
            index = max(0, index - 1)
        elif temp_c < self.trip_c - self.hysteresis_c:
            index = min(top, index + 1)
        self._index = index
        return self.levels[index]


def make_governor(kind: str, limit_c: float, frequencies_khz=()) -> Governor:
    """``"pid"`` or ``"step"`` for ``limit_c``; the step governor steps through ``frequencies_khz`` when given."""
    if kind == "pid":
        return PidGovernor(limit_c=limit_c)
    if kind == "step":
        if not frequencies_khz:
            return StepGovernor(trip_c=limit_c)
        top = max(frequencies_khz)
        return StepGovernor(trip_c=limit_c, levels=tuple(f / top for f in sorted(frequencies_khz)))
    raise ConfigError(f"unknown governor '{kind}'; choose from: {', '.join(GOVERNORS)}")
