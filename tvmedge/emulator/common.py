"""What both kinds of emulated board share: the qemu process environment and board-side error reports."""

from __future__ import annotations

import os
import subprocess

from .. import errors as _errors
from ..cache import last_json, last_line
from ..errors import ArtifactError, TvmedgeError

__all__ = ["GUEST_UNSET", "host_environ", "qemu_prefix", "board_error", "json_report"]

# Host environment variables that would leak into the guest (qemu-user passes its environment through).
GUEST_UNSET = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE",
               "PYTHONSAFEPATH", "VIRTUAL_ENV", "PYTHONINSPECT", "PYTHONBREAKPOINT")


# What a signal from the board-side runtime most often means.
_SIGNAL_HINTS = {
    4: " (SIGILL: the code uses an instruction this board's CPU lacks — built for another ISA, e.g. RVV for a "
       "board without V?)",
    11: " (SIGSEGV)",
    9: " (SIGKILL: out of memory?)",
}


def qemu_prefix(qemu: str, sysroot, cpu=None) -> list[str]:
    """``qemu-<arch> -L <sysroot> [-cpu CPU] -U <host variables>...``, to which a program and its arguments are added."""
    command = [qemu, "-L", str(sysroot)]
    if cpu:
        command += ["-cpu", cpu]
    for name in GUEST_UNSET:
        command += ["-U", name]
    return command


def host_environ() -> dict[str, str]:
    """A small, clean environment for the qemu process (qemu-user hands its environment to the guest)."""
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    keep.setdefault("PATH", "/usr/bin:/bin")
    keep["LANG"] = "C.UTF-8"
    return keep


def board_error(board_name: str, proc: subprocess.CompletedProcess) -> TvmedgeError:
    """The exception for a failed board-side run: ``Error: <msg>`` becomes the tvmedge error it names."""
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith("Error: "):
            message = line[len("Error: "):].strip()
            cls: type = TvmedgeError
            # "Error: InputError: ..." names the class (the C++ loader does); the Python runtime prints the
            # message alone.
            head, sep, rest = message.partition(": ")
            named = getattr(_errors, head, None) if sep and head.isidentifier() else None
            if isinstance(named, type) and issubclass(named, TvmedgeError):
                cls, message = named, rest
            return cls(message)
    code = proc.returncode
    how = f"was killed by signal {-code}{_SIGNAL_HINTS.get(-code, '')}" if code < 0 else f"exited with code {code}"
    return ArtifactError(f"emulated board {board_name}: the runtime {how}: {last_line(proc.stderr) or '<no stderr>'}")


def json_report(board_name: str, proc: subprocess.CompletedProcess, what: str) -> dict:
    """The JSON object a board-side command printed last; its error (:func:`board_error`) if it failed, an
    ArtifactError if it printed none."""
    if proc.returncode != 0:
        raise board_error(board_name, proc)
    report = last_json(proc.stdout)
    if report is None:
        raise ArtifactError(f"emulated board {board_name}: {what} printed no JSON result "
                            f"(last output line: {last_line(proc.stdout) or '<empty>'})")
    return report
