"""What the children that die mid-command share (``tests/services/payments/_pay_then_die.py``,
``tests/services/users/_remove_then_die.py``): one instance of a service on RabbitMQ, its
background tasks removed (the worst case: no relay finishes the work), ``ready`` printed once
it consumes."""

from __future__ import annotations

import trio

from workup.runtime import Deps, Service, serve_service
from workup.settings import Settings
from workup.transport import AmqpTransport


async def serve_alone(service: Service[Deps | None], settings: Settings, prefix: str) -> None:
    service.background.clear()
    assert settings.amqp_url is not None
    async with AmqpTransport.connect(settings.amqp_url, prefix=prefix) as transport:
        async with trio.open_nursery() as n:
            await n.start(lambda task_status: serve_service(service, settings, transport, concurrency=4,
                                                           control_secret="s", task_status=task_status))
            print("ready", flush=True)
