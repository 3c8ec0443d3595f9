"""503 and 504 on users routes: no users instance at all, and a users service slower than the
request deadline (a login costs a full scrypt hash, far more than a 20 ms deadline)."""

from __future__ import annotations

import pytest

from workup.testing import running_system

U = "/api/v1/users"


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_no_users_instance_is_503_with_retry_after(mode):
    async with running_system(mode, ["payments"]) as sys:
        r = await sys.http.post(f"{U}/login", json={"email": "a@example.com", "password": "password1"})
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json()["status"] == 503
        token = sys.token_for("0" * 32, "CLIENT")
        r = await sys.http.get(f"{U}/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_a_reply_after_the_deadline_is_504(mode):
    async with running_system(mode, ["users"], request_timeout=0.02) as sys:
        r = await sys.http.post(f"{U}/login", json={"email": "a@example.com", "password": "password1"})
        assert r.status_code == 504, r.text
        assert r.json()["status"] == 504
