"""HTTP cases that need a peer in a given state: payments/contracts doubles that record calls and
report an ACTIVE contract or a balance, or no peers at all (503). On both users stores."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ._http import PASSWORD, users_system

U = "/api/v1/users"


@pytest.fixture(params=["sqlite", "mongo"])
def store_kind(request):
    return request.param


async def test_close_is_refused_while_a_party_to_an_active_contract(store_kind, tmp_path):
    async with users_system(str(tmp_path), store_kind) as sys:
        client = await sys.register("CLIENT")
        assert [(c.user_id, c.role) for c in sys.payments.created] == [(client["userId"], "CLIENT")]
        sys.contracts.active.add(client["userId"])
        r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=client["auth"])
        assert r.status_code == 409 and "ACTIVE" in r.json()["detail"]
        sys.payments.balances[client["userId"]] = Decimal("0.01")
        sys.contracts.active.clear()
        r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=client["auth"])
        assert r.status_code == 409 and "balance" in r.json()["detail"]
        sys.payments.balances[client["userId"]] = Decimal("0")
        r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=client["auth"])
        assert r.status_code == 204


async def test_close_is_503_when_the_peers_do_not_answer(store_kind, tmp_path):
    async with users_system(str(tmp_path), store_kind, peers="none") as sys:
        client = await sys.register("CLIENT")  # 201 even with payments down (the outbox keeps it)
        r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=client["auth"])
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert (await sys.http.get(f"{U}/me", headers=client["auth"])).status_code == 200
