"""The jobs and contracts services behind the real gateway on a free port, for HTTP tests.

``"distributed"`` runs on the real RabbitMQ (unique names), Cassandra (the session's unique
keyspace prefix) and Redis (the cache); ``"embedded"`` on the embedded defaults (in-process
transport, SQLite, in-process cache). Tokens are minted with the test signing key (the users
service is not needed to be someone).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest

from workup.gateway import TokenService
from workup.settings import Settings
from workup.testing import System as Services

from ._services import FakePayments, new_id, running

KEY = "jobs-contracts-test-key-" + "j" * 24
MILESTONES = [{"description": "design", "amount": 100.5, "dueDate": "2030-01-01"},
              {"description": "build", "amount": 200, "dueDate": "2030-02-01"}]
_tokens = TokenService([KEY])


class User:
    def __init__(self, role: str) -> None:
        self.id, self.role = new_id(), role
        self.auth = {"Authorization": f"Bearer {_tokens.issue(self.id, role)}"}


class System:
    def __init__(self, http: httpx.AsyncClient, services: Services, payments: FakePayments) -> None:
        self.http, self.services, self.payments = http, services, payments

    async def job(self, client: User, **fields: Any) -> dict:
        body = {"title": "Python developer", "description": "Build an API", **fields}
        r = await self.http.post("/api/v1/jobs", json=body, headers=client.auth)
        assert r.status_code == 201, r.text
        return r.json()

    async def proposal(self, freelancer: User, job_id: str, **fields: Any) -> dict:
        body = {"coverLetter": "Hire me", "jobDuration": "LESS_THAN_A_MONTH", "milestones": MILESTONES, **fields}
        r = await self.http.post(f"/api/v1/jobs/{job_id}/proposals", json=body, headers=freelancer.auth)
        assert r.status_code == 201, r.text
        return r.json()

    async def accept(self, client: User, job_id: str, proposal_id: str) -> httpx.Response:
        return await self.http.post(f"/api/v1/jobs/{job_id}/proposals/{proposal_id}/accept", headers=client.auth)

    async def contract(self) -> tuple[User, User, dict]:
        """A fresh ACTIVE contract with the two MILESTONES: (client, freelancer, contract)."""
        client, freelancer = User("CLIENT"), User("FREELANCER")
        job = await self.job(client)
        p = await self.proposal(freelancer, job["id"])
        r = await self.accept(client, job["id"], p["id"])
        assert r.status_code == 200, r.text
        c = await self.http.get(f"/api/v1/contracts/{r.json()['contractId']}", headers=client.auth)
        return client, freelancer, c.json()


def system_settings(data_dir: Path, mode: str, request: pytest.FixtureRequest) -> Settings:
    if mode == "embedded":
        return Settings(data_dir=str(data_dir))
    return Settings(data_dir=str(data_dir), cassandra_hosts=request.getfixturevalue("cassandra_hosts"),
                    cassandra_keyspace_prefix=request.getfixturevalue("keyspace_prefix"),
                    redis_url=request.getfixturevalue("redis_url"), amqp_url=request.getfixturevalue("amqp_url"))


@asynccontextmanager
async def jobs_system(data_dir: Path, settings: Settings) -> AsyncIterator[System]:
    payments = FakePayments()
    async with running(data_dir, settings=settings, payments=payments, gateway=True, jwt_key=KEY) as services:
        yield System(services.http, services, payments)
