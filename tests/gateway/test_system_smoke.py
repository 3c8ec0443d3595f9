"""The system helper itself: every service up behind the gateway, accounts through the API
(the distributed mode is exercised by test_e2e)."""

import pytest

from workup.testing import running_system


async def test_running_system_registers_accounts():
    async with running_system("embedded") as sys:
        client = await sys.register_client()
        freelancer = await sys.register_freelancer()
        admin = await sys.admin()
        for account, role in ((client, "CLIENT"), (freelancer, "FREELANCER"), (admin, "ADMIN")):
            r = await sys.http.get("/api/v1/users/me", headers=account.auth)
            assert r.status_code == 200, r.text
            assert r.json()["userType"] == role and r.json()["userId"] == account.id
        r = await sys.http.get("/api/v1/payments/clients/me/wallet", headers=client.auth)
        assert r.status_code == 200, r.text
        assert r.json() == {"balance": 0}
