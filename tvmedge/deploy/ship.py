"""``tvmedge deploy``: copy an artifact and the board's runtime bundle to a board, verify them on arrival.

Destinations:

* ``emu:NAME`` — the emulated board's disk, ``<cache>/devices/NAME/`` (what it runs is what a board would get);
* a directory — a mounted SD card, an NFS export, a board's root file system image;
* ``user@host:path`` — a real board over SSH, copied with the system's ``rsync`` (or ``scp``), verified there
  with ``sha256sum -c`` (coreutils, on every Linux board). SSH runs with ``BatchMode=yes``: set up key-based
  login (``ssh-copy-id user@host``) so that nothing waits for a password it cannot ask for.

What arrives, side by side::

    DEST/
        tvmedge-runtime-<board>/     the unpacked bundle (tvmedge.deploy.bundle); --no-runtime skips it
        <artifact name>/             manifest.json + libraries, unchanged
        SHA256SUMS                   every file above, checked after the copy
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..cache import cache_path
from ..devices.board import Board, emulated_board_name, load_board
from ..errors import ConfigError, DeployError, ToolchainError
from ..runtime.manifest import Manifest, machine_arch, sha256_file
from ..runtime.trust import trusted_keys, verify_signature
from .bundle import SUMS, bundle_contents, bundle_kind, bundle_top

__all__ = ["Deployment", "deploy", "parse_destination", "emulated_home"]

Progress = Optional[Callable[[str], None]]
_SSH_HOST = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_][A-Za-z0-9._-]*")
_REMOTE_PATH = re.compile(r"[A-Za-z0-9_./~+-]+")


@dataclass(frozen=True)
class Destination:
    kind: str  # "emu" | "dir" | "ssh"
    path: str  # the folder (on the remote host for ssh)
    host: str = ""  # user@host for ssh
    board: str = ""  # board name for emu

    def describe(self) -> str:
        return {"emu": f"emu:{self.board} ({self.path})", "dir": self.path,
                "ssh": f"{self.host}:{self.path}"}[self.kind]


@dataclass
class Deployment:
    """What was shipped where, and how to run it there."""

    destination: str
    board: str
    artifact: str  # the artifact's folder at the destination
    runtime: Optional[str]  # the bundle's folder at the destination (None with --no-runtime)
    kind: str  # bundle kind: python | cpp
    files: int
    bytes: int
    verified: bool
    run_command: str  # on the board, from the destination folder
    host_command: str = ""  # from this machine (emulated boards)
    check: dict = field(default_factory=dict)  # the smoke run's report, if asked for

    def to_json(self) -> dict:
        return dict(self.__dict__)


def emulated_home(board_name: str) -> Path:
    """The emulated board's disk: ``<cache>/devices/<board>/``."""
    return cache_path("devices", board_name)


def parse_destination(spec: str) -> Destination:
    """``emu:NAME``, ``user@host:path`` / ``host:path`` (SSH), or a local directory."""
    if not spec:
        raise ConfigError("no destination given: use emu:NAME, a directory or user@host:path")
    kind, sep, rest = spec.partition(":")
    if sep and kind == "emu":
        name = emulated_board_name(spec, what="destination")
        return Destination("emu", str(emulated_home(name)), board=name)
    # host:path the way scp and rsync read it: a colon before any slash, and not a path that exists here
    if sep and "/" not in kind and kind and not Path(spec).exists():
        if not rest:
            raise ConfigError(f"destination '{spec}' has no remote path (e.g. {kind}:/opt/tvmedge)")
        # the host is an ssh argument (a leading '-' would be an option) and the path passes through the board's
        # shell and rsync/scp's own parsing: both are held to plain characters rather than quoted three ways
        if not _SSH_HOST.fullmatch(kind):
            raise ConfigError(f"destination host '{kind[:80]}' is not a host name (user@host, letters, digits, '.', '-', '_')")
        if not _REMOTE_PATH.fullmatch(rest):
            raise ConfigError(f"remote path '{rest[:80]}' may hold only letters, digits and / . _ - + ~ (no spaces, quotes or ';')")
        return Destination("ssh", rest, host=kind)
    return Destination("dir", str(Path(spec).expanduser().resolve()))


def deploy(artifact, destination: str, *, board: Optional[str] = None, runtime: bool = True,
           loader: Optional[str] = None, check: bool = False, progress: Progress = None, trust=None) -> Deployment:
    """Copy ``artifact`` (and the runtime bundle for its board) to ``destination`` and verify every file there.

    ``board`` overrides the board named in the manifest (same architecture). ``check`` runs the artifact once
    at the destination with the shipped runtime (emulated boards, and SSH boards).

    Raises
    ------
    ArtifactError
        The artifact is damaged before it leaves (its manifest check fails here, nothing is copied).
    ConfigError
        Bad destination, unknown board, or a board of another architecture than the artifact.
    DeployError
        A copy failed, or a file arrived different from what was sent (named in the message).
    """
    say = progress or (lambda message: None)
    source = Path(artifact).resolve()
    manifest = Manifest.read(source)
    keys = trusted_keys(trust)
    if keys is not None:  # never ship an unsigned or forged artifact to a board that trusts these keys
        verify_signature(source, manifest.digest, keys, recorded_key=(manifest.provenance or {}).get("key_id"))
    manifest.verify(source)  # never ship a damaged artifact
    dest = parse_destination(destination)
    target = load_board(dest.board or board or manifest.board)
    if target.arch != manifest.arch:
        raise ConfigError(f"artifact {artifact} is built for {manifest.arch}, board {target.name} is {target.arch}")
    kind = bundle_kind(target, loader)
    if dest.kind in ("emu", "dir"):  # fail before building anything when the destination cannot be written
        try:
            Path(dest.path).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DeployError(f"cannot create {dest.describe()}: {err.strerror or err}") from err
        if not os.access(dest.path, os.W_OK):
            raise DeployError(f"cannot write to {dest.describe()}: permission denied")
    name = source.name
    if dest.kind == "ssh" and not _REMOTE_PATH.fullmatch(name):
        raise ConfigError(f"artifact folder name '{name[:80]}' may hold only letters, digits and . _ - + ~ to be "
                          "shipped over ssh; rename the folder")
    top = bundle_top(target)

    with tempfile.TemporaryDirectory(prefix="tvmedge-deploy-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        shutil.copytree(source, stage / name)
        sums = _sums(stage / name, prefix=name)
        if runtime:  # the bundle laid out unpacked (no archive to write and read back); its sums are known
            say(f"collecting the {kind} runtime bundle for {target.name}")
            contents = bundle_contents(target, loader=kind, progress=say)
            contents.write_to(stage)
            sums.update({f"{top}/{rel}": digest for rel, digest in contents.all_sums().items()})
        (stage / SUMS).write_text("".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items())))
        size = sum((stage / rel).stat().st_size for rel in sums)
        say(f"copying {len(sums)} files ({size / 1e6:.1f} MB) to {dest.describe()}")
        _transfer(stage, dest)
    say("verifying every file's sha256 on arrival")
    _verify(dest, sums)

    runtime_dir = f"./{top}" if runtime else f"<runtime>/{top}"
    # every word quoted once, and the remote command quoted again as one word of the ssh line (a nested quote
    # by hand let a "'" in --to run commands on this machine when the line was pasted)
    run_command = f"cd {shlex.quote(dest.path)} && {shlex.join([f'{runtime_dir}/run.sh', f'./{name}', '--json'])}"
    result = Deployment(
        destination=dest.describe(), board=target.name, artifact=str(Path(dest.path) / name),
        runtime=str(Path(dest.path) / top) if runtime else None, kind=kind, files=len(sums), bytes=size,
        verified=True, run_command=run_command if dest.kind != "ssh" else shlex.join(["ssh", dest.host, run_command]))
    if dest.kind == "emu":
        result.host_command = shlex.join(["tvmedge", "run", result.artifact, "--board", f"emu:{target.name}"])
    if check:
        if not runtime:
            raise ConfigError("--check runs the shipped runtime: it needs the runtime bundle (drop --no-runtime)")
        say("running the artifact once with the shipped runtime")
        result.check = _smoke_run(dest, target, top, name, kind)
    return result


# --------------------------------------------------------------------------------------------------------------


def _sums(folder: Path, prefix: str) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed ``prefix/<path inside folder>``."""
    sums = {}
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            sums[f"{prefix}/{path.relative_to(folder)}"] = sha256_file(path)
    return sums


def _transfer(stage: Path, dest: Destination) -> None:
    """Copy the staged entries into the destination. Each shipped folder (the artifact, the runtime) replaces
    its older copy there, so no stale file of a previous deploy survives; other folders are left alone."""
    entries = sorted(stage.iterdir())
    if dest.kind in ("emu", "dir"):
        root = Path(dest.path)
        try:
            root.mkdir(parents=True, exist_ok=True)
            for entry in entries:
                if entry.is_dir():
                    shutil.rmtree(root / entry.name, ignore_errors=True)
                    shutil.copytree(entry, root / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, root / entry.name)
        except OSError as err:
            raise DeployError(f"cannot copy to {dest.describe()}: {err.strerror or err}") from err
        return
    base = dest.path.rstrip("/")
    _ssh(dest, f"mkdir -p {shlex.quote(base)}", "create the destination folder")
    # rsync needs rsync on both ends (many board images lack it): scp otherwise
    if shutil.which("rsync") and _ssh(dest, "command -v rsync >/dev/null", "look for rsync", check=False).returncode == 0:
        for entry in entries:  # --delete within each shipped folder only
            source, target = (f"{entry}/", f"{base}/{entry.name}/") if entry.is_dir() else (str(entry), f"{base}/")
            _command(["rsync", "-a", "--delete", "--compress", "-e", "ssh -o BatchMode=yes", source,
                      f"{dest.host}:{target}"], f"copy {entry.name} to {dest.describe()}")
    elif shutil.which("scp"):
        old = " ".join(shlex.quote(f"{base}/{entry.name}") for entry in entries if entry.is_dir())
        _ssh(dest, f"rm -rf {old}", "remove the previous copies")
        _command(["scp", "-q", "-r", "-o", "BatchMode=yes", *map(str, entries), f"{dest.host}:{base}/"],
                 f"copy to {dest.describe()}")
    else:
        raise ToolchainError("neither rsync nor scp found; install the Debian package rsync or openssh-client")


def _verify(dest: Destination, sums: dict[str, str]) -> None:
    if dest.kind == "ssh":
        # sha256sum on the board reads what actually arrived; --quiet prints only the failures
        proc = _ssh(dest, f"cd {shlex.quote(dest.path)} && sha256sum -c --quiet {SUMS}", "verify", check=False)
        if proc.returncode != 0:
            bad = [line.split(":")[0] for line in proc.stdout.splitlines() if line.rstrip().endswith("FAILED")]
            what = ", ".join(bad[:3]) or (proc.stderr.strip().splitlines() or ["sha256sum failed"])[-1]
            raise DeployError(f"files arrived corrupted at {dest.describe()} (sha256 differs): {what}; deploy again")
        return
    root = Path(dest.path)
    for rel, digest in sorted(sums.items()):
        path = root / rel
        if not path.is_file():
            raise DeployError(f"{rel} is missing at {dest.describe()} after the copy")
        if sha256_file(path) != digest:
            raise DeployError(f"{rel} arrived corrupted at {dest.describe()} (sha256 differs); deploy again")
    recorded = (root / SUMS).read_text() if (root / SUMS).is_file() else ""
    if any(f"{digest}  {rel}" not in recorded for rel, digest in sums.items()):
        raise DeployError(f"{SUMS} at {dest.describe()} does not list what was sent; deploy again")


def _smoke_run(dest: Destination, board: Board, top: str, name: str, kind: str) -> dict:
    """Run the deployed artifact once, the way the board would: the shipped run.sh, the shipped runtime."""
    from ..cache import last_json

    if dest.kind == "ssh":
        proc = _ssh(dest, f"cd {shlex.quote(dest.path)} && {shlex.join([f'./{top}/run.sh', f'./{name}', '--json'])}", "run",
                    check=False)
    else:
        root = Path(dest.path)
        env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
        if board.arch != machine_arch():
            from ..emulator import setup_board

            emulated = setup_board(board)
            if kind == "python":  # the board's own python3, under qemu: nothing but the bundle on its path
                env["PYTHON"] = " ".join([*emulated.qemu_prefix(), str(emulated.python)])
                command = ["sh", str(root / top / "run.sh"), str(root / name), "--json"]
            else:  # the shipped C++ loader, with the board's libc/libstdc++ and ISA
                command = [*emulated.qemu_prefix(), str(root / top / "bin" / "tvmedge-run"), str(root / name), "--json"]
        else:
            command = ["sh", str(root / top / "run.sh"), str(root / name), "--json"]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, timeout=600)
    report = last_json(proc.stdout)
    if proc.returncode != 0 or report is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"the deployed artifact did not run at {dest.describe()}: {tail[:300]}")
    return report


def _ssh(dest: Destination, remote_command: str, what: str, *, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("ssh") is None:
        raise ToolchainError("ssh not found; install the Debian package openssh-client")
    command = ["ssh", "-o", "BatchMode=yes", "--", dest.host, remote_command]
    return _command(command, f"{what} on {dest.host}", check=check)


def _command(command: list, what: str, *, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as err:
        raise DeployError(f"{what}: timed out") from err
    if check and proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise DeployError(f"{what} failed: {tail[:300]}")
    return proc
