"""Through the real gateway and the real services, in-process and over RabbitMQ/Redis/the real
stores: token tampering on real routes, closed accounts, read-after-write on cached reads,
notifications fed by real service events."""

import base64
import json
import time

import pytest
import trio
from jwcrypto import jwk, jws
from trio_websocket import open_websocket_url

from workup.testing import PASSWORD, running_system


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(claims: dict, *, key: str | None = None, alg: str = "HS256", rsa: jwk.JWK | None = None) -> str:
    if alg == "none":
        return f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(json.dumps(claims).encode())}."
    token = jws.JWS(json.dumps(claims).encode())
    signer = rsa if rsa is not None else jwk.JWK(kty="oct", k=b64((key or "").encode()))
    token.add_signature(signer, alg=alg, protected={"alg": alg, "typ": "JWT"})
    return token.serialize(compact=True)


async def check_tampered_tokens_are_401_on_real_routes(sys):
    client = await sys.register_client()
    me = await sys.http.get("/api/v1/users/me", headers=client.auth)
    assert me.status_code == 200
    header, payload, signature = client.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    now = int(time.time())
    admin_claims = {**claims, "role": "ADMIN"}
    rsa = jwk.JWK.generate(kty="RSA", size=2048)
    bad = {
        "signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "payload swapped": f"{header}.{b64(json.dumps(admin_claims).encode())}.{signature}",
        "alg none": forged(admin_claims, alg="none"),
        "expired": forged({**claims, "iat": now - 7200, "exp": now - 3600}, key=sys.settings.jwt_key),
        "other key": forged(claims, key="another-key-of-plenty-length-0123456789"),
        "key confusion": forged(claims, key=rsa.export_to_pem().decode()),
        "rs256": forged(claims, alg="RS256", rsa=rsa),
    }
    for name, token in bad.items():
        auth = {"Authorization": f"Bearer {token}"}
        for method, path, body in (("GET", "/api/v1/users/me", None),
                                   ("POST", "/api/v1/users/login", {"email": client.email, "password": PASSWORD}),
                                   ("GET", "/api/v1/jobs/search?query=x", None)):
            r = await sys.http.request(method, path, headers=auth, json=body)
            assert r.status_code == 401, (name, path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    # the expired-token forgery would pass with a fresh exp: the key and claims are right
    fresh = forged({**claims, "iat": now, "exp": now + 60}, key=sys.settings.jwt_key)
    assert (await sys.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200


async def check_closed_account_tokens_stop_working(sys):
    freelancer = await sys.register_freelancer()
    assert (await sys.http.get("/api/v1/users/me", headers=freelancer.auth)).status_code == 200
    r = await sys.http.request("DELETE", "/api/v1/users/me", headers=freelancer.auth, json={"password": PASSWORD})
    assert r.status_code == 204, r.text
    for path in ("/api/v1/users/me", "/api/v1/users/freelancer/profile", "/api/v1/jobs/me/proposals"):
        assert (await sys.http.get(path, headers=freelancer.auth)).status_code == 401
    # and on a gateway that did not see the DELETE (it reads the flag from the shared cache)
    sys.app.gw.revocations._closed.clear()
    sys.app.gw.revocations._open_until.clear()
    assert (await sys.http.get("/api/v1/users/me", headers=freelancer.auth)).status_code == 401


async def check_read_after_write_never_sees_the_old_value(sys):
    client = await sys.register_client()
    for i in range(5):
        r = await sys.http.get("/api/v1/users/client/profile", headers=client.auth)
        assert r.status_code == 200
        city = f"City {i}"
        r = await sys.http.put("/api/v1/users/client/profile", headers=client.auth, json={"city": city})
        assert r.status_code == 200, r.text
        r = await sys.http.get("/api/v1/users/client/profile", headers=client.auth)
        assert r.json()["city"] == city


async def check_notifications_from_real_service_events(sys):
    client = await sys.register_client()
    freelancer = await sys.register_freelancer()
    r = await sys.http.post("/api/v1/jobs", headers=client.auth,
                            json={"title": "Paint a fence", "description": "white, two coats", "budget": 300})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    ws_base = sys.base_url.replace("http://", "ws://") + "/api/v1/notifications"
    with trio.fail_after(30):
        async with open_websocket_url(ws_base, extra_headers=[("Authorization", f"Bearer {client.token}")]) as cws, \
                open_websocket_url(f"{ws_base}?token={freelancer.token}") as fws:
            r = await sys.http.post(f"/api/v1/jobs/{job_id}/proposals", headers=freelancer.auth, json={
                "coverLetter": "I paint well", "jobDuration": "LESS_THAN_A_MONTH",
                "milestones": [{"description": "all", "amount": 300, "dueDate": "2030-01-01"}]})
            assert r.status_code == 201, r.text
            proposal_id = r.json()["id"]
            created = json.loads(await cws.get_message())
            assert created["type"] == "proposal.created"
            assert created["data"] == {"proposalId": proposal_id, "jobId": job_id}
            assert created["at"].endswith("Z")
            r = await sys.http.post(f"/api/v1/jobs/{job_id}/proposals/{proposal_id}/accept", headers=client.auth)
            assert r.status_code == 200, r.text
            accepted = json.loads(await fws.get_message())
            assert accepted["type"] == "proposal.accepted" and accepted["data"]["proposalId"] == proposal_id


CHECKS = [check_tampered_tokens_are_401_on_real_routes, check_closed_account_tokens_stop_working,
          check_read_after_write_never_sees_the_old_value, check_notifications_from_real_service_events]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_in_process(check):
    async with running_system("embedded") as sys:
        await check(sys)


async def test_over_rabbitmq_redis_and_the_real_stores():
    """One distributed system (setting up its databases and keyspaces takes most of the time)
    for every check."""
    async with running_system("distributed") as sys:
        for check in CHECKS:
            await check(sys)
