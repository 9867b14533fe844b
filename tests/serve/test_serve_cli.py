"""`tvmedge serve` refuses unsafe or broken settings in one line, before it listens (issue 7 §1).

The happy path (a real server, its --json start-up summary, SIGTERM) is in test_serve_load.py.
"""

import json
import re

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["serve", *[str(a) for a in args]])


@pytest.fixture
def models(tmp_path):
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


@pytest.mark.parametrize("extra, message", [
    (["--host", "0.0.0.0"], "binding to 0.0.0.0 exposes the service beyond this machine; pass --token (or TVMEDGE_SERVE_TOKEN) "
                            "so clients must authenticate"),
    (["--host", "192.168.1.20"], "binding to 192.168.1.20 exposes the service beyond this machine; ..."),
    (["--host", "::"], "binding to :: exposes the service beyond this machine; ..."),
    (["--token", "short"], "token is shorter than 16 characters; ..."),
    (["--offline", "--host", "0.0.0.0", "--token", "x" * 20], "offline mode serves loopback only; drop --host 0.0.0.0 or --offline"),
    (["--offline"], 'offline mode needs a profile: {models}/offline.json not found; write {{"models": ["name", ...]}} there or pass --profile'),
    (["--max-body", "10"], "max body of 10 bytes is too small; use at least 1024"),
])
def test_unsafe_settings_are_refused(models, extra, message):
    result = run("--models", models, *extra)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    expected = "Error: " + message.format(models=models)
    assert len(lines) == 1 and (lines[0].startswith(expected[:-3]) if expected.endswith("...") else lines[0] == expected), lines


def test_bad_directory_and_profile(models, tmp_path):
    result = run("--models", tmp_path / "missing")
    assert result.stderr.strip() == f"Error: models directory {tmp_path / 'missing'} does not exist; pass a directory of compiled artifacts"
    (models / "offline.json").write_text(json.dumps({"models": ["ghost"], "extra": 1}))
    result = run("--models", models, "--offline")
    assert result.exit_code == 1
    assert result.stderr.strip() == f'Error: profile {models / "offline.json"} must be {{"models": ["name", ...]}} and nothing else'
    (models / "offline.json").write_text(json.dumps({"models": ["ghost"]}))
    assert re.fullmatch(r"Error: no model 'ghost' under .*; available: none", run("--models", models, "--offline").stderr.strip())


def test_token_from_environment(models, monkeypatch):
    # A token in the environment keeps it out of `ps`; it satisfies the non-loopback rule like --token does.
    monkeypatch.setenv("TVMEDGE_SERVE_TOKEN", "short")
    assert run("--models", models, "--host", "0.0.0.0").stderr.startswith("Error: token is shorter than 16 characters")


def test_busy_port_is_one_line(models):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--models", models, "--port", port)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
