"""Requests through the real gateway that survive a broken back end: each one retried on a
connection error, a timeout or a 502/503/504 until an answer comes, with the ``Idempotency-Key``
where the API has one (deposit, withdraw, pay) and, for the other writes, a read that tells
whether the uncertain attempt took effect before it is sent again. Figures are counted in
:class:`Tally`."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from workup.bench.http import Client, HttpError, Response

API = "/api/v1"
PASSWORD = "reliability-pass-1"
RETRYABLE = frozenset({502, 503, 504})


class Tally(msgspec.Struct):
    requests: int = 0
    uncertain: int = 0                        # answers 502/503/504, timeouts, broken connections
    by_status: dict[str, int] = {}
    longest_s: float = 0.0                    # the slowest single answer
    resolved_by_read: int = 0                 # an uncertain write found applied by a read
    # a 409 to a write whose effect the read shows applied: a redelivery after a kill answering
    # "differently" (docs/payments.md, Exactly once without a key), by route
    answered_409_applied: dict[str, int] = {}
    uncertain_writes: dict[str, int] = {}     # "POST /jobs 504": writes whose answer was uncertain

    def count(self, what: str) -> None:
        self.by_status[what] = self.by_status.get(what, 0) + 1


def _route(path: str) -> str:
    """``/api/v1/jobs/<id>/proposals`` → ``/jobs/{}/proposals``: ids (32 hex) left out."""
    return "/".join("{}" if len(p) == 32 else p for p in path.removeprefix(API).split("/"))


class Unexpected(Exception):
    """An answer the contract does not allow here: the run's failure."""


Resolve = Callable[[], Awaitable[Any]]


class Api:
    def __init__(self, base_url: str, tally: Tally, *, give_up_after: float = 180.0, timeout: float = 30.0) -> None:
        self.http = Client(base_url, timeout=timeout)
        self.tally = tally
        self.give_up_after = give_up_after

    async def aclose(self) -> None:
        await self.http.aclose()

    async def attempt(self, method: str, path: str, *, token: str | None = None, body: object = None,
                      headers: dict[str, str] | None = None) -> tuple[Response | None, str]:
        """One request: the answer (``None`` when none came) and its outcome: the status, or
        ``hang`` (no answer within the client's timeout) or ``connection`` (refused, broken)."""
        self.tally.requests += 1
        t0 = trio.current_time()
        try:
            r = await self.http.request(method, path, body=body, token=token, headers=headers)
        except (HttpError, trio.TooSlowError) as exc:
            self.tally.uncertain += 1
            outcome = "hang" if isinstance(exc, trio.TooSlowError) else "connection"
            self.tally.count(outcome)
            return None, outcome
        finally:
            self.tally.longest_s = max(self.tally.longest_s, trio.current_time() - t0)
        self.tally.count(str(r.status))
        if r.status in RETRYABLE:
            self.tally.uncertain += 1
        return r, str(r.status)

    async def once(self, method: str, path: str, *, token: str | None = None, body: object = None,
                   headers: dict[str, str] | None = None) -> Response | None:
        """One attempt: the answer, or ``None`` when it is uncertain (no answer, 502/503/504)."""
        r, _ = await self.attempt(method, path, token=token, body=body, headers=headers)
        return None if r is None or r.status in RETRYABLE else r

    async def send(self, method: str, path: str, expect: int | tuple[int, ...], *, token: str | None = None,
                   body: object = None, idempotent: bool = False, resolve: Resolve | None = None,
                   key: bool | str = False) -> Any:
        """Until a certain answer: its JSON (or text). A write keeps one ``X-Request-Id`` over its
        attempts. ``idempotent``: resend as is; ``key``: resend
        with the same Idempotency-Key (this one when a string); ``resolve``: after an uncertain attempt, a read that returns
        the result when the write took effect (then it is not sent again); a 409 that the read
        shows applied is counted and taken as the answer."""
        expected = (expect,) if isinstance(expect, int) else expect
        headers = {"Idempotency-Key": key if isinstance(key, str) else secrets.token_hex(16)} if key else {}
        if method != "GET":
            # one request id for every attempt: a service derives what it creates from it and answers
            # a repeat with the first answer (docs/payments.md, Exactly once without a key)
            headers["X-Request-Id"] = secrets.token_hex(16)
        deadline = trio.current_time() + self.give_up_after
        uncertain = False
        while True:
            if uncertain and resolve is not None:
                found = await resolve()
                if found is not None:
                    self.tally.resolved_by_read += 1
                    return found
            r, outcome = await self.attempt(method, path, token=token, body=body, headers=headers)
            if r is not None and r.status not in RETRYABLE:
                if r.status == 409 and 409 not in expected and resolve is not None \
                        and (found := await resolve()) is not None:
                    route = _route(path)
                    self.tally.answered_409_applied[route] = self.tally.answered_409_applied.get(route, 0) + 1
                    return found
                if r.status not in expected:
                    raise Unexpected(f"{method} {path}: HTTP {r.status} {r.body[:300]!r} (expected {expected}"
                                     f"{', after an uncertain attempt' if uncertain else ''})")
                ctype = r.headers.get("content-type", "")
                return r.json() if ctype.startswith("application/") and r.body else r.body.decode()
            if not (idempotent or key or resolve):
                raise Unexpected(f"{method} {path}: uncertain answer to a write that cannot be retried")
            if trio.current_time() > deadline:
                raise Unexpected(f"{method} {path}: no certain answer within {self.give_up_after:.0f} s")
            uncertain = True
            if method != "GET":
                what = f"{method} {_route(path)} {outcome}"
                self.tally.uncertain_writes[what] = self.tally.uncertain_writes.get(what, 0) + 1
            # after a 504 (or no answer) the command may still be running: the worker drops only
            # work whose deadline passed before it began; give it time before reading the outcome
            await trio.sleep(0.3 if outcome in ("503", "connection") else 5.0)

    async def get(self, path: str, token: str) -> Any:
        return await self.send("GET", path, 200, token=token, idempotent=True)

    async def until(self, what: str, read: Resolve, within: float) -> Any:
        """Poll ``read`` until it returns something (not ``None``); :class:`Unexpected` after ``within`` s."""
        deadline = trio.current_time() + within
        while (found := await read()) is None:
            if trio.current_time() > deadline:
                raise Unexpected(f"stuck: {what} not seen within {within:.0f} s")
            await trio.sleep(0.2)
        return found

    async def register(self, role: str, email: str) -> tuple[str, str]:
        """(token, user id) of a new account; an uncertain registration that took effect is 409
        when sent again, and the account is then logged in."""
        kind, name = ("clients", {"clientName": "Rel Client"}) if role == "CLIENT" else \
            ("freelancers", {"fullName": "Rel Freelancer"})
        login = {"email": email, "password": PASSWORD}
        body = await self.send("POST", f"{API}/users/{kind}/register", (201, 409), body={**login, **name},
                               idempotent=True)
        if "authToken" not in body:
            body = await self.send("POST", f"{API}/users/login", 200, body=login, idempotent=True)
        return body["authToken"], body["userId"]
