"""What the children that die mid-command share (``tests/services/payments/_pay_then_die.py``,
``tests/services/users/_remove_then_die.py``, ``tests/services/contracts/_evaluate_then_die.py``
and ``_create_then_die.py``): one instance of a service on RabbitMQ, its
background tasks removed (the worst case: no relay finishes the work), ``ready`` printed once
it consumes. The parent's side: :func:`dying_child` starts one, :func:`read_line` reads what it
prints."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import IO, Iterator

import trio

from workup.runtime import Deps, Service, serve_service
from workup.settings import Settings
from workup.transport import AmqpTransport

ROOT = Path(__file__).parents[2]   # the children run as modules from the repository root


async def serve_alone(service: Service[Deps | None], settings: Settings, prefix: str) -> None:
    service.background.clear()
    assert settings.amqp_url is not None
    async with AmqpTransport.connect(settings.amqp_url, prefix=prefix) as transport:
        async with trio.open_nursery() as n:
            await n.start(lambda task_status: serve_service(service, settings, transport, concurrency=4,
                                                           control_secret="s", task_status=task_status))
            print("ready", flush=True)


@contextlib.contextmanager
def dying_child(module: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """The child ``python -m module args...`` with its stdout piped, killed on exit if still alive."""
    child = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


async def read_line(stream: IO[bytes] | None, timeout: float = 30.0) -> str:
    """The child's next line, stripped (fails after ``timeout`` seconds)."""
    assert stream is not None
    with trio.fail_after(timeout):
        return (await trio.to_thread.run_sync(stream.readline)).decode().strip()
