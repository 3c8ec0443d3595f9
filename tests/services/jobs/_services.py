"""The jobs and contracts services for tests, on ``workup.testing.running_system``.

``payments`` is a fake peer (``workup.testing.fake_service``): idempotent ``CreatePaymentRequest``
on the milestone id and a record of ``CancelContractRequests``. Stores are SQLite in a temporary
data dir unless the given settings name Cassandra (see ``_fixtures.store_settings``); the
transport is RabbitMQ when they name a broker.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from workup.messages.payments import CancelContractRequests, CreatePaymentRequest, PaymentRequestRef
from workup.runtime import Context
from workup.settings import Settings
from workup.testing import System, fake_service, running_system
from workup.transport import LocalTransport


def new_id() -> str:
    return uuid.uuid4().hex


class FakePayments:
    """The payments peer, reduced to what contracts calls."""

    def __init__(self) -> None:
        self.requests: dict[str, CreatePaymentRequest] = {}
        self.ids: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.service = fake_service("payments", status={"CreatePaymentRequest": 201},
                                    CreatePaymentRequest=self._create, CancelContractRequests=self._cancel)

    async def _create(self, ctx: Context[None], req: CreatePaymentRequest) -> PaymentRequestRef:
        assert ctx.caller.role == "SERVICE"
        self.requests[req.milestone_id] = req
        return PaymentRequestRef(id=self.ids.setdefault(req.milestone_id, req.id or new_id()))   # as payments does

    async def _cancel(self, ctx: Context[None], req: CancelContractRequests) -> None:
        self.cancelled.append(req.contract_id)


@asynccontextmanager
async def running(data_dir: Path, names: tuple[str, ...] = ("jobs", "contracts", "payments"),
                  settings: Settings | None = None, transport: LocalTransport | None = None, *,
                  payments: FakePayments | None = None, gateway: bool = False,
                  jwt_key: str | None = None) -> AsyncIterator[System]:
    """``names`` started (``payments`` = the fake ``payments``, which ``start("payments")`` also
    starts later); embedded, or distributed when ``settings.amqp_url`` is set."""
    settings = settings or Settings(data_dir=str(data_dir))
    fake = payments or FakePayments()
    fakes = {"payments": fake.service} if "payments" in names else {}
    async with running_system("distributed" if settings.amqp_url else "embedded",
                              [n for n in names if n != "payments"], fakes=fakes, settings=settings,
                              transport=transport, gateway=gateway, jwt_key=jwt_key, concurrency=16) as h:
        h.fakes.setdefault("payments", fake.service)
        yield h
