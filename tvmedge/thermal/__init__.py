"""Thermal governor: keep a board under a temperature limit by capping its CPU frequency, losing little speed.

Stdlib only (no TVM, no numpy): it runs beside the model service on any board with Linux thermal zones and
cpufreq. ``tvmedge thermal run`` drives this machine; ``--simulate`` compares the governors on a model board.

Modules: ``governor`` (PidGovernor, StepGovernor), ``sysfs`` (thermal zones, cpufreq caps under a root),
``loop`` (the control loop, on a board or a simulation), ``model`` (first-order thermal model of a board),
``simulation`` (simulated board behind a fake sysfs tree, governor comparison). Figures: README.md here.
"""

from .governor import Governor, PidGovernor, StepGovernor
from .loop import govern, run_governor
from .model import BoardThermal
from .simulation import SimulatedBoard, compare, simulate
from .sysfs import Sysfs

__all__ = ["Governor", "PidGovernor", "StepGovernor", "govern", "run_governor", "BoardThermal", "SimulatedBoard",
           "compare", "simulate", "Sysfs"]
