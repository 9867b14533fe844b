"""Things tvmedge builds once per machine and keeps under ``$TVMEDGE_CACHE`` (default ``~/.cache/tvmedge``).

Emulated board roots (``boards/<arch>/``) and cross-built TVM runtimes (``runtime/<arch>/``) are made the same
way: under a lock, in a temporary folder next to the final one, renamed into place when complete, with a
``ready.json`` stamp written last. An interrupted build never leaves a half result; a second process waits
for the first instead of building the same thing again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import ConfigError, ToolchainError

__all__ = ["cache_dir", "cache_path", "build_once", "read_stamp", "write_stamp", "run_step", "tree_size",
           "last_line", "last_json"]

STAMP = "ready.json"


def cache_dir() -> Path:
    """``$TVMEDGE_CACHE`` or ``~/.cache/tvmedge``."""
    env = os.environ.get("TVMEDGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tvmedge"


def cache_path(kind: str, name: str) -> Path:
    """``<cache>/<kind>/<name>`` for a name that must not escape the folder (an architecture, a board)."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"invalid {kind} name {name!r}")
    return cache_dir() / kind / name


def read_stamp(root: Path, valid: Callable[[dict], bool]) -> Optional[dict]:
    """``root/ready.json`` if it exists and ``valid(info)`` accepts it, else None."""
    try:
        info = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and valid(info) else None


def write_stamp(root: Path, info: dict) -> None:
    stamp = root / STAMP
    stamp.with_suffix(".tmp").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(stamp.with_suffix(".tmp"), stamp)  # written last: its presence marks a complete build


def build_once(root: Path, valid: Callable[[dict], bool], build: Callable[[Path], dict], *,
               force: bool = False) -> dict:
    """Return the stamp of ``root``, building it first with ``build(tmp_dir) -> info`` if needed.

    ``build`` fills the empty folder it is given; its returned ``info`` becomes ``ready.json``.
    """
    if not force:
        info = read_stamp(root, valid)
        if info is not None:
            return info
    root.parent.mkdir(parents=True, exist_ok=True)
    with _lock(root.parent / f".{root.name}.lock"):
        if not force:  # another process may have finished while we waited
            info = read_stamp(root, valid)
            if info is not None:
                return info
        _remove_stale_temps(root)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            info = build(tmp)
            write_stamp(tmp, info)
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            if root.exists():
                os.rename(root, old)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return info


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temps(root: Path) -> None:
    """Leftovers of builds that were killed (their pid is gone). Called under the lock."""
    for path in root.parent.glob(f".{root.name}.*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_step(what: str, step: str, command: Sequence, *, cwd: Optional[Path] = None, timeout: float = 1800,
             env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run one command of a build; a failure is a one-line ToolchainError naming ``what``, the step and the
    command's last line of error output."""
    try:
        proc = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env=env)
    except FileNotFoundError as err:
        raise ToolchainError(f"{what} failed at step '{step}': {command[0]} not found") from err
    except subprocess.TimeoutExpired as err:
        raise ToolchainError(f"{what} failed at step '{step}': timed out after {timeout:g} s") from err
    if proc.returncode != 0:
        tail = _error_line(proc.stderr) or last_line(proc.stdout) or "<no output>"
        raise ToolchainError(f"{what} failed at step '{step}' (exit {proc.returncode}): {tail[:200]}")
    return proc


def _error_line(text: str) -> str:
    """The first line that says 'error' (compilers print the cause first and notes after), else the last line."""
    for line in (text or "").splitlines():
        if "error" in line.lower():
            return line.strip()[:300]
    return last_line(text)


def tree_size(path: Path) -> int:
    """Bytes in a file or folder (symlinks counted as links)."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def last_json(text: str) -> Optional[dict]:
    """The JSON object on the last line of ``text`` that starts with ``{`` (None if it is not one)."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None
