"""The users service with the real payments and contracts services (embedded stores) behind the
real gateway: the wallet is created at registration, and closing an account consults both."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ._http import PASSWORD, users_system

U, W = "/api/v1/users", "/api/v1/payments"


@pytest.fixture
async def sys(tmp_path):
    async with users_system(str(tmp_path), "sqlite", peers="real") as s:
        yield s


def wallet_role(data_dir: str, user_id: str) -> str | None:
    """Read straight from payments' store: the wallet row and the role CreateWallet gave it
    (a wallet made on first use by payments itself has no role)."""
    with sqlite3.connect(Path(data_dir) / "payments.sqlite3") as db:
        row = db.execute("SELECT role FROM wallets WHERE user_id = ?", (user_id,)).fetchone()
    return None if row is None else row[0]


async def test_registration_creates_the_wallet_in_payments(sys):
    client, freelancer = await sys.register("CLIENT"), await sys.register("FREELANCER")
    assert wallet_role(sys.settings.data_dir, client["userId"]) == "CLIENT"
    assert wallet_role(sys.settings.data_dir, freelancer["userId"]) == "FREELANCER"
    r = await sys.http.get(f"{W}/clients/me/wallet", headers=client["auth"])
    assert r.status_code == 200 and r.json()["balance"] == 0


async def test_close_needs_an_empty_wallet(sys):
    f = await sys.register("FREELANCER")
    auth = f["auth"]
    r = await sys.http.post(f"{W}/freelancers/me/wallet/deposit", json={"amount": 12.5}, headers=auth)
    assert r.status_code == 200, r.text
    r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth)
    assert r.status_code == 409, r.text
    r = await sys.http.post(f"{W}/freelancers/me/wallet/withdraw", json={"amount": 12.5}, headers=auth)
    assert r.status_code == 200 and r.json()["balance"] == 0
    r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth)
    assert r.status_code == 204, r.text
    # the token is dead on every route family, not only users
    assert (await sys.http.get(f"{W}/freelancers/me/wallet", headers=auth)).status_code == 401
    assert (await sys.http.get(f"{U}/me", headers=auth)).status_code == 401
