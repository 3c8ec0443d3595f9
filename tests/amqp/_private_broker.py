"""A private RabbitMQ node for tests that kill the broker: its own node name, port and data
directory, so killing it touches no other test's broker. Needs root (the node runs as the
``rabbitmq`` user, like the one ops/dev/services starts) and Debian's rabbitmq-server; without
them the test fails with a message, never skips."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ..conftest import servicecheck

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
BASE = Path("/var/lib/rabbitmq")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _amqp_answers(port: int) -> bool:
    """The broker's AMQP listener answers with connection.start (the dev services' own check)."""
    return servicecheck.ping_amqp("127.0.0.1", port) is None


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class PrivateBroker:
    """``tls=True`` adds an ``amqps`` listener on :attr:`tls_port` with a server certificate for
    ``localhost``/127.0.0.1 issued by a fresh test CA (:attr:`ca_file`); ``client_certs=True``
    makes that listener require a client certificate from the same CA (``client.pem`` and
    ``client.key`` in :attr:`dir`); ``external=True`` also enables SASL EXTERNAL (the certificate's
    common name is the user: create it with :meth:`ctl`)."""

    def __init__(self, *, tls: bool = False, client_certs: bool = False, external: bool = False) -> None:
        if os.geteuid() != 0 or not os.path.exists(SERVER) or shutil.which("runuser") is None:
            pytest.fail("a private RabbitMQ node needs root and Debian's rabbitmq-server "
                        "(`bash ops/dev/services up rabbitmq` installs it)")
        tag = uuid.uuid4().hex[:8]
        self.port = _free_port()
        self.node = f"workup-test-{tag}@localhost"
        self.dir = BASE / f"workup-test-{tag}"
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        self.config: Path | None = None
        self.plugins: Path | None = None
        self.tls_port = _free_port() if tls else None
        if tls:
            self._write_tls_config(client_certs or external)
        if external:
            self.plugins = self.dir / "enabled_plugins"
            self.plugins.write_text("[rabbitmq_auth_mechanism_ssl].\n")
            with open(self.config, "a") as conf:  # type: ignore[arg-type]
                conf.write("auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = EXTERNAL\n"
                           "ssl_cert_login_from = common_name\n")
            shutil.chown(self.plugins, "rabbitmq", "rabbitmq")

    def _write_tls_config(self, client_certs: bool) -> None:
        from ._certs import write_ca_and_server
        self.ca_file, cert, key = write_ca_and_server(self.dir, "localhost",
                                                      client="workup-client" if client_certs else None)
        self.config = self.dir / "rabbitmq.conf"
        self.config.write_text(
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
            f"ssl_options.cacertfile = {self.ca_file}\n"
            f"ssl_options.certfile = {cert}\n"
            f"ssl_options.keyfile = {key}\n"
            + ("ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n" if client_certs
               else "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"))
        for path in (self.ca_file, cert, key, self.config):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 120.0) -> None:
        dist = _free_port()
        env = [f"HOME={BASE}", f"RABBITMQ_NODENAME={self.node}", f"RABBITMQ_NODE_PORT={self.port}",
               "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", f"RABBITMQ_DIST_PORT={dist}",
               f"RABBITMQ_MNESIA_BASE={self.dir}/mnesia", f"RABBITMQ_LOG_BASE={self.dir}",
               f"RABBITMQ_PID_FILE={self.dir}/pid", "RABBITMQ_LOGS=-",
               "ERL_EPMD_ADDRESS=127.0.0.1",
               "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"]
        if self.config is not None:
            env.append(f"RABBITMQ_CONFIG_FILE={self.config}")
        if self.plugins is not None:
            env.append(f"RABBITMQ_ENABLED_PLUGINS_FILE={self.plugins}")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["runuser", "-u", "rabbitmq", "--", "env", *env, SERVER],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _amqp_answers(self.port) or (self.tls_port and not _listens(self.tls_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.kill()
                pytest.fail(f"private RabbitMQ node {self.node} did not start on port {self.port} "
                            f"within {timeout:.0f} s; log {self.log}:\n{tail}")
            time.sleep(0.3)

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl args`` against this node (as the rabbitmq user, bounded); its output."""
        result = subprocess.run(["runuser", "-u", "rabbitmq", "--", "env", f"HOME={BASE}",
                                 f"RABBITMQ_NODENAME={self.node}", "/usr/lib/rabbitmq/bin/rabbitmqctl", *args],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            pytest.fail(f"rabbitmqctl {' '.join(args)} on {self.node} failed: {result.stderr.strip()}")
        return result.stdout

    def kill(self) -> None:
        """SIGKILL the whole node (wrapper, beam and its helpers): no clean shutdown."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 30
        while _amqp_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
