"""A private one-node Swarm and the WorkUp image for the autoscaler's tests, made by the project's
scripts: ``ops/docker/engine up DIR`` (dockerd with its state, socket and log in DIR, Swarm
initialised), ``ops/image/build`` (the image, imported into that engine), ``ops/docker/engine
down DIR`` afterwards, also when the test fails. A step that fails fails the test with the
script's own message, which names its log; nothing here skips.
"""

from __future__ import annotations

import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import docker
import msgspec
import pytest

from tests.scale._monitoring import ROOT

ENGINE = ROOT / "ops" / "docker" / "engine"
IMAGE_BUILD = ROOT / "ops" / "image" / "build"
DOCKER_CLI = "/usr/bin/docker"   # Debian's, the one the engine script installs
# cold: installing docker.io, debootstrap and the venv take minutes; warm: seconds
STEP_TIMEOUT = 1500


class Engine(msgspec.Struct, frozen=True):
    dir: Path
    host: str      # DOCKER_HOST for this engine
    image: str     # the WorkUp image's content-hash tag

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="1.41", timeout=30)

    def cli(self, *args: str, timeout: float = 120) -> str:
        """``docker ARGS`` against this engine; a failure fails the test with docker's message."""
        r = subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True, timeout=timeout,
                           env={"DOCKER_HOST": self.host, "PATH": "/usr/bin:/bin"})
        if r.returncode != 0:
            pytest.fail(f"docker {' '.join(args[:2])} failed (exit {r.returncode}): {r.stderr.strip()}; "
                        f"engine log: {self.dir / 'dockerd.log'}")
        return r.stdout.strip()

    def service_logs(self, name: str) -> str:
        """What the service's tasks wrote, stdout and stderr (the CLI passes each on as its own)."""
        r = subprocess.run([DOCKER_CLI, "service", "logs", "--raw", name], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60, env={"DOCKER_HOST": self.host})
        return r.stdout


def _step(what: str, args: list[str], env: dict[str, str] | None = None) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: no result after {STEP_TIMEOUT} s")
    if r.returncode != 0:
        pytest.fail(f"{what} failed (exit {r.returncode}): {r.stderr.strip()[-2000:]}")
    return r.stdout.strip()


@contextmanager
def swarm_engine() -> Iterator[Engine]:
    """dockerd + one-node Swarm + the image; the engine and its state are removed on exit."""
    import os
    # a short path: the engine's sockets live under it, and a unix socket path has 108 bytes at most
    run_dir = Path(tempfile.mkdtemp(prefix="wu-eng-", dir="/tmp"))
    try:
        _step("ops/docker/engine up", [str(ENGINE), "up", str(run_dir)])
        host = f"unix://{run_dir / 'docker.sock'}"
        image = _step("ops/image/build", [str(IMAGE_BUILD)], env={**os.environ, "DOCKER_HOST": host}).splitlines()[-1]
        yield Engine(run_dir, host, image)
    finally:
        _step("ops/docker/engine down", [str(ENGINE), "down", str(run_dir)])
