"""Private store servers for runs that stop a database: each on its own port with its data in a
temporary directory, so stopping it touches no shared dev server. ``stop()`` is a SIGKILL (no clean
shutdown), ``start()`` again serves the same data. Fails with a message, never skips, when the
binaries are missing.

- :class:`PrivatePostgres`: ``initdb`` and ``postgres`` from Debian's /usr/lib/postgresql, run as
  the ``postgres`` user, trust authentication on loopback.
- :class:`PrivateFerretDB`: the dev services' FerretDB runner (``tools/ferretrunner``, built by
  ``ops/dev/services up ferretdb``) on its SQLite handler.
- :class:`PrivateCassandra`: the JVM command of ``ops/dev/services``' ``start_cassandra`` (the
  cassandra-all jars it fetched, ``ops/dev/cassandra/*``), on a copy of ``cassandra.yaml`` with
  native and storage ports of its own, its own storage directory and a small heap.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("WORKUP_CACHE", Path.home() / ".cache" / "workup"))
FERRETRUNNER = CACHE / "bin" / "ferretrunner"
CASSANDRA_DEV = Path(__file__).resolve().parents[2] / "ops" / "dev" / "cassandra"
JAVA = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")    # ops/dev/services' JAVA_HOME


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
                why = "exited" if self.proc.poll() is not None else f"not answering after {timeout:.0f} s"
                pytest.fail(f"private {type(self).__name__} on port {self.port} did not start ({why}; "
                            f"log: {self.log}):\n{tail}")
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


class PrivateCassandra(_Server):
    """One node; :attr:`port` is its CQL port. The storage port is its own too, so it forms no
    ring with the shared node. A SIGKILLed node starts again on the same data (commit log replay)."""

    HEAP = "384m"
    START_S = 240.0     # a JVM boot on a loaded 2-core machine: about a minute, sometimes more

    def __init__(self) -> None:
        found = sorted(CACHE.glob("cassandra-*/lib/.complete"))
        if not found or not JAVA.exists():
            pytest.fail(f"a private Cassandra needs {JAVA} and the cassandra-all jars under {CACHE}/cassandra-*/lib "
                        "(`bash ops/dev/services up cassandra` installs both)")
        super().__init__("workup-cassandra-")
        self.lib = found[-1].parent
        self.storage_port = _free_port()
        yaml = (CASSANDRA_DEV / "cassandra.yaml").read_text()
        for key, port in (("storage_port", self.storage_port), ("native_transport_port", self.port)):
            yaml, n = re.subn(rf"^{key}:.*$", f"{key}: {port}", yaml, flags=re.M)
            assert n == 1, f"{key} not found once in {CASSANDRA_DEV / 'cassandra.yaml'}"
        yaml = yaml.replace('"127.0.0.1:7000"', f'"127.0.0.1:{self.storage_port}"')
        self.config = os.path.join(self.dir, "cassandra.yaml")
        Path(self.config).write_text(yaml)
        for sub in ("storage", "triggers"):
            os.makedirs(os.path.join(self.dir, sub))

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        flags = [line.strip() for line in (CASSANDRA_DEV / "jvm17.options").read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        jamm = sorted(self.lib.glob("jamm-*.jar"))[0]
        slack = [sys.executable, str(CASSANDRA_DEV / "timerslack.py"), "500000"]
        return [*slack, str(JAVA), "-cp", f"{self.lib}/*", f"-javaagent:{jamm}", *flags,
                f"-Xms{self.HEAP}", f"-Xmx{self.HEAP}", "-XX:+ExitOnOutOfMemoryError",
                f"-Dcassandra.config=file://{self.config}", f"-Dcassandra.storagedir={self.dir}/storage",
                f"-Dcassandra.triggers_dir={self.dir}/triggers",
                f"-Dlogback.configurationFile={CASSANDRA_DEV / 'logback.xml'}", "-Dcassandra-foreground=yes",
                "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.initial_token=0",
                "-Dcassandra.load_ring_state=false", "-Dcassandra.ring_delay_ms=1",
                "org.apache.cassandra.service.CassandraDaemon"]

    def answers(self) -> bool:
        # a CQL exchange: the native port may accept before the node serves queries
        from tests.conftest import servicecheck
        return servicecheck.ping_cassandra("127.0.0.1", self.port) is None

    def start(self, timeout: float = START_S) -> None:
        super().start(timeout)
