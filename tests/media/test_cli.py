"""`workup media` on the command line: refusing bad configuration with one line and exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import NamedTuple


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """A real process: exactly what an operator sees."""
    e = {k: v for k, v in os.environ.items() if "UPLOAD_" not in k}
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "workup", "media", *args], capture_output=True, text=True, env=e, timeout=60)
    return Result(r.returncode, r.stdout, r.stderr)


def run_in_process(monkeypatch, capsys, *args: str, env: dict[str, str] | None = None) -> Result:
    """The same entry point in this process (spawning Pythons is slow on a busy machine)."""
    from workup.cli import main

    for key in [k for k in os.environ if "UPLOAD_" in k]:
        monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    try:
        main(["media", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def assert_one_line_exit_2(r: Result, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_refuses_to_start_without_credentials(tmp_path, monkeypatch, capsys):
    assert_one_line_exit_2(run("--data-dir", str(tmp_path)), "UPLOAD_USER")
    assert_one_line_exit_2(run_in_process(monkeypatch, capsys, "--data-dir", str(tmp_path), env={"UPLOAD_USER": "u"}), "UPLOAD_PASSWORD")
    assert_one_line_exit_2(run_in_process(monkeypatch, capsys, "--data-dir", str(tmp_path), env={"WORKUP_UPLOAD_PASSWORD": "p"}), "UPLOAD_USER")
    assert not (tmp_path / "media").exists()


def test_bad_config_and_port_are_one_line_errors(tmp_path, monkeypatch, capsys):
    creds = {"UPLOAD_USER": "u", "WORKUP_UPLOAD_PASSWORD": "p"}

    def run(*args, env):
        return run_in_process(monkeypatch, capsys, *args, env=env)

    bad = tmp_path / "groups.json"
    bad.write_text('{"groups": [{"name": "x", "mime_types": ["text/html"]}]}')
    assert_one_line_exit_2(run("--config", str(bad), "--data-dir", str(tmp_path), env=creds), "unsupported MIME type")
    assert_one_line_exit_2(run("--max-upload-mb", "0", "--data-dir", str(tmp_path), env=creds), "max upload size")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert_one_line_exit_2(run("--port", port, "--data-dir", str(tmp_path), env=creds), "cannot listen")


def test_help_lists_the_flags(monkeypatch, capsys):
    r = run_in_process(monkeypatch, capsys, "--help")
    assert r.returncode == 0
    for flag in ("--host", "--port", "--storage-dir", "--config", "--max-upload-mb"):
        assert flag in r.stdout
