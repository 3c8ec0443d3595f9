"""A private PostgreSQL server for runs that stop the payments database: ``initdb`` into a temporary
directory and ``postgres`` on its own port (Debian's binaries under /usr/lib/postgresql, run as the
``postgres`` user), trust authentication on loopback, so stopping it touches no shared server.
Fails with a message, never skips, when the binaries are missing."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found or os.geteuid() != 0:
            pytest.fail("a private PostgreSQL needs root and Debian's postgresql (`bash ops/dev/services up postgres`)")
        self.bin = os.path.dirname(found[-1])
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="workup-pg-")
        self.data = os.path.join(self.dir, "data")
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.proc: subprocess.Popen[bytes] | None = None

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def answers(self) -> bool:
        return subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "server.log"), "ab"), user="postgres", group="postgres",
            cwd=self.dir)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.dir, "server.log"), errors="replace") as log:
                    tail = log.read()[-1500:]
                pytest.fail(f"private PostgreSQL on port {self.port} did not start:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGKILL the postmaster, no clean shutdown; its backends see it gone and exit."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None
        time.sleep(0.5)
        for stale in (os.path.join(self.data, "postmaster.pid"), os.path.join(self.dir, f".s.PGSQL.{self.port}.lock")):
            if os.path.exists(stale):
                os.remove(stale)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
