"""Private store servers for runs that stop a database: each on its own port with its data in a
temporary directory, so stopping it touches no shared dev server. ``stop()`` is a SIGKILL (no clean
shutdown), ``start()`` again serves the same data. Fails with a message, never skips, when the
binaries are missing.

- :class:`PrivatePostgres`: ``initdb`` and ``postgres`` from Debian's /usr/lib/postgresql, run as
  the ``postgres`` user, trust authentication on loopback.
- :class:`PrivateFerretDB`: the dev services' FerretDB runner (``tools/ferretrunner``, built by
  ``ops/dev/services up ferretdb``) on its SQLite handler.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FERRETRUNNER = Path(os.environ.get("WORKUP_CACHE", Path.home() / ".cache" / "workup")) / "bin" / "ferretrunner"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """One server process: :meth:`argv` says how to run it, :meth:`answers` when it is up."""

    user: str | None = None

    def __init__(self, prefix: str) -> None:
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.log = os.path.join(self.dir, "server.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         user=self.user, group=self.user, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log, errors="replace") as log:
                    tail = log.read()[-1500:]
                pytest.fail(f"private {type(self).__name__} on port {self.port} did not start:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGKILL, no clean shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None
            self._after_kill()

    def _after_kill(self) -> None:
        pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres(_Server):
    user = "postgres"

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found or os.geteuid() != 0:
            pytest.fail("a private PostgreSQL needs root and Debian's postgresql (`bash ops/dev/services up postgres`)")
        super().__init__("workup-pg-")
        self.bin = os.path.dirname(found[-1])
        self.data = os.path.join(self.dir, "data")
        shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/initdb", "-D", self.data, "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def argv(self) -> list[str]:
        return [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off", "-c", "max_connections=200"]

    def answers(self) -> bool:
        return subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def _after_kill(self) -> None:
        time.sleep(0.5)   # the backends see the postmaster gone and exit; then its lock files go
        for stale in (os.path.join(self.data, "postmaster.pid"), os.path.join(self.dir, f".s.PGSQL.{self.port}.lock")):
            if os.path.exists(stale):
                os.remove(stale)


class PrivateFerretDB(_Server):
    def __init__(self) -> None:
        if not FERRETRUNNER.exists():
            pytest.fail(f"a private FerretDB needs {FERRETRUNNER} (`bash ops/dev/services up ferretdb` builds it)")
        super().__init__("workup-ferret-")
        os.makedirs(os.path.join(self.dir, "data"))

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def argv(self) -> list[str]:
        return [str(FERRETRUNNER), "-listen-addr", f"127.0.0.1:{self.port}", "-handler", "sqlite",
                "-sqlite-url", f"file:{self.dir}/data/"]
