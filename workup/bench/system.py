"""The system a load bench talks to: an embedded ``workup up`` it starts itself (a child process
on free ports with a fresh data directory), or one already running at a given URL.

The child inherits the environment, so with ``WORKUP_AMQP_URL`` and the other server URLs set it
runs distributed (services on RabbitMQ, stores on their servers) and :func:`mode_of` says so.
Its CPU time (the child and every process under it) is read with psutil, so a report can put the
system's CPU per request next to the load generator's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["System", "start_embedded", "attach", "mode_of", "SERVER_VARIABLES"]

# The settings that turn the embedded defaults into servers (workup/settings.py).
SERVER_VARIABLES = ("WORKUP_AMQP_URL", "WORKUP_REDIS_URL", "WORKUP_USERS_MONGO_URL",
                    "WORKUP_PAYMENTS_POSTGRES_URL", "WORKUP_CASSANDRA_HOSTS")


def mode_of(environ: Mapping[str, str]) -> str:
    """``distributed`` when the services talk over RabbitMQ, else ``embedded``."""
    return "distributed" if environ.get("WORKUP_AMQP_URL") else "embedded"


class System(msgspec.Struct, kw_only=True):
    """Where the API is (``base_url``) and, when we started it, how to read and stop it."""
    base_url: str
    mode: str
    servers: list[str]                 # which of SERVER_VARIABLES were set (names only)
    pid: int | None = None
    data_dir: str | None = None
    log_path: str | None = None

    def cpu_seconds(self) -> float | None:
        """CPU time of the system's processes so far (``None`` when we did not start it)."""
        if self.pid is None:
            return None
        import psutil
        try:
            root = psutil.Process(self.pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
                except psutil.Error:
                    continue
            return total
        except psutil.Error:
            return None

    def rss_bytes(self) -> int | None:
        if self.pid is None:
            return None
        import psutil
        try:
            root = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(base_url: str) -> bool:
    import httpx
    try:
        return httpx.get(base_url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def attach(base_url: str) -> System:
    """A system someone else runs; its mode is what the environment of this process says."""
    if not _healthy(base_url.rstrip("/")):
        raise RuntimeError(f"{base_url}/health does not answer 200")
    return System(base_url=base_url.rstrip("/"), mode=mode_of(os.environ),
                  servers=[v for v in SERVER_VARIABLES if os.environ.get(v)])


class _Embedded:
    """Context manager: ``workup up`` as a child; SIGTERM (then SIGKILL) and the data removed on exit."""

    def __init__(self, *, startup_timeout: float, extra_env: Mapping[str, str], keep_data: bool) -> None:
        self.startup_timeout, self.extra_env, self.keep_data = startup_timeout, extra_env, keep_data
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="workup-bench-"))

    def __enter__(self) -> System:
        port, media_port = _free_port(), _free_port()
        env = dict(os.environ, WORKUP_LOG_LEVEL="WARNING", **self.extra_env)
        log_path = self.tmp / "workup-up.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workup", "up", "--port", str(port), "--media-port", str(media_port),
                 "--data-dir", str(self.tmp / "data")],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        system = System(base_url=f"http://127.0.0.1:{port}", mode=mode_of(env),
                        servers=[v for v in SERVER_VARIABLES if env.get(v)], pid=self.proc.pid,
                        data_dir=str(self.tmp), log_path=str(log_path))
        deadline = time.monotonic() + self.startup_timeout
        while not _healthy(system.base_url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"workup up did not answer GET /health within {self.startup_timeout:.0f} s "
                                   f"(exit code {self.proc.returncode}):\n{system.log_tail()}")
            time.sleep(0.2)
        return system

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.keep_data:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_embedded(*, startup_timeout: float = 120.0, extra_env: Mapping[str, str] | None = None,
                   keep_data: bool = False) -> _Embedded:
    """``with start_embedded() as system:`` runs ``workup up`` for the block."""
    return _Embedded(startup_timeout=startup_timeout, extra_env=extra_env or {}, keep_data=keep_data)
