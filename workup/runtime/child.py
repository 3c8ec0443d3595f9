"""One worker process under the supervisor: ``python -m workup.runtime.child``.

The supervisor writes a :class:`ChildSpec` (JSON, one line) to our stdin, so no secret is in argv
or the environment; we answer ``READY`` on stdout once consuming. SIGTERM/SIGINT, or our stdin
closing (the supervisor died), drains the instance and exits.
"""

from __future__ import annotations

import os
import signal
import sys

import msgspec
import trio

from ..logs import configure_logging
from ..settings import Settings
from .control import ControlMessage

__all__ = ["ChildSpec", "main"]


class ChildSpec(msgspec.Struct, kw_only=True):
    """What a child needs beyond :class:`Settings` (which holds prefix, concurrency and grace)."""
    service: str
    settings: Settings
    control_secret: str                 # resolved once by the supervisor (it may be generated)
    supervisor: int                     # the supervisor's pid, for status replies
    replay: list[ControlMessage] = []   # configuration given to the siblings so far
    control_seen: dict[str, float] = {}  # nonces the supervisor accepted (and their expiry): replays


async def _watch_stdin() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        while await stdin.receive_some(1024):
            pass


async def run_child(spec: ChildSpec) -> None:
    from ..transport.identity import load_identity
    from ..transport.rabbitmq import AmqpTransport
    from .loader import load_service
    from .instance import serve_service

    service = load_service(spec.service)
    assert spec.settings.amqp_url is not None
    identity = load_identity(spec.settings, "service", create=True)  # the supervisor made them
    async with AmqpTransport.connect(spec.settings.amqp_url, prefix=spec.settings.amqp_prefix,
                                     identity=identity) as transport:
        async with trio.open_nursery() as nursery:
            instance = await nursery.start(lambda task_status: serve_service(
                service, spec.settings, transport, concurrency=spec.settings.concurrency,
                grace=spec.settings.grace,
                supervisor=spec.supervisor, control_secret=spec.control_secret, replay=spec.replay,
                control_seen=spec.control_seen,
                task_status=task_status))
            if spec.settings.metrics_port:   # runtime/metrics.py: off unless asked for
                instance.metrics.listen(spec.settings.host, spec.settings.metrics_port)
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as wait:
                    async def on_signal() -> None:
                        async for _ in signals:
                            break
                        wait.cancel_scope.cancel()

                    async def on_orphaned() -> None:
                        await _watch_stdin()
                        wait.cancel_scope.cancel()
                    wait.start_soon(on_signal)
                    wait.start_soon(on_orphaned)
                await instance.stop()  # still inside the receiver: a second signal is ignored
            nursery.cancel_scope.cancel()


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.readline(), type=ChildSpec)
    configure_logging("worker", level=spec.settings.log_level, fmt=spec.settings.log_format, service=spec.service)
    trio.run(run_child, spec)


if __name__ == "__main__":
    main()
