"""HTTP routes of the payments service (``/api/v1/payments``, API.md "Payments").

Each handler checks the role first, then the path id, the ``Idempotency-Key`` header and the body,
then forwards a command that carries no user id (the service acts on the envelope's caller). The
routes are declared as data (:data:`ROUTES`) so the OpenAPI document can be generated from the
same structs that validate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from quart import Blueprint, Response
from quart import request as http_request

from ...messages import payments as m
from ...problems import FieldError, ProblemError
from ..kit import cached_forward, forward, json_body, require_role

__all__ = ["blueprint", "ROUTES", "Route"]

blueprint = Blueprint("payments", __name__)

P = "/api/v1/payments"
CLIENT, FREELANCER, PARTY = ("CLIENT",), ("FREELANCER",), ("CLIENT", "FREELANCER")
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    roles: tuple[str, ...]
    command: type                     # the payments command it forwards
    source: str = "none"              # "body" (MoneyBody), "id" (path id), "none"
    status: int = 200
    reply: Any = None                 # reply type (OpenAPI)
    cached: str | None = None         # "wallet" | "request": served from the read cache
    idempotent: bool = False          # honours the Idempotency-Key header


def _me(me: str, roles: tuple[str, ...]) -> list[Route]:
    base = f"{P}/{me}"
    return [
        Route("GET", f"{base}/wallet", roles, m.GetMyWallet, reply=m.WalletBalance, cached="wallet"),
        Route("POST", f"{base}/wallet/deposit", roles, m.Deposit, "body", reply=m.WalletBalance, idempotent=True),
        Route("POST", f"{base}/wallet/withdraw", roles, m.Withdraw, "body", reply=m.WalletBalance, idempotent=True),
        Route("GET", f"{base}/wallet/transactions", roles, m.ListWalletTransactions, reply=list[m.WalletTransaction]),
        Route("GET", f"{base}/wallet/transactions/<id>", roles, m.GetWalletTransaction, "id",
              reply=m.WalletTransaction),
        Route("GET", f"{base}/requests", roles, m.ListMyRequests, reply=list[m.PaymentRequest]),
        Route("GET", f"{base}/transactions", roles, m.ListMyTransactions, reply=list[m.PaymentTransaction]),
    ]


ROUTES: list[Route] = [
    *_me("clients/me", CLIENT),
    *_me("freelancers/me", FREELANCER),
    Route("GET", f"{P}/requests/<id>", PARTY, m.GetPaymentRequest, "id", reply=m.PaymentRequest, cached="request"),
    Route("POST", f"{P}/requests/<id>/pay", CLIENT, m.PayRequest, "id", reply=m.PayResult, idempotent=True),
]


def path_id(raw: str) -> str:
    """A path id in the service's form (32 lower-case hex); any UUID spelling is accepted (an
    unknown one is then 404), anything else is 400."""
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        raise ProblemError(400, "bad id format", errors=[FieldError(field="id", message="must be a UUID")]) from None


def idempotency_key() -> str | None:
    key = http_request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > m.MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ProblemError(400, f"{IDEMPOTENCY_HEADER} must be 1 to {m.MAX_IDEMPOTENCY_KEY} printable characters",
                           errors=[FieldError(field=IDEMPOTENCY_HEADER, message="bad value")])
    return key


async def _command(route: Route, id: str | None, key: str | None) -> Any:
    extra = {"idempotency_key": key} if route.idempotent else {}
    if route.source == "id":
        return route.command(id=path_id(id or ""), **extra)
    if route.source == "body":
        body = await json_body(m.MoneyBody)
        return route.command(amount=body.money(), description=body.description, **extra)
    return route.command(**extra)


def _handler(route: Route) -> Callable[..., Awaitable[Response]]:
    name = f"payments.{route.command.__name__}"

    async def handle(id: str | None = None) -> Response:
        caller = require_role(*route.roles)     # first: a wrong role is 403 whatever the input
        key = idempotency_key() if route.idempotent else None
        try:
            command = await _command(route, id, key)
        except ProblemError as exc:
            if key is None or not 400 <= exc.status < 500:
                raise
            # API.md: the first answer for a key, whatever its status, is the answer for every
            # retry; the service keeps it (or returns an earlier one for that key)
            return await forward("payments.RecordRefusal", m.RecordRefusal(
                route=m.idempotency_route(route.command, id), idempotency_key=key, problem=exc.problem))
        if route.cached == "wallet":
            return await cached_forward(m.wallet_cache_key(caller.user_id), name, command)
        if route.cached == "request":
            return await cached_forward(m.request_cache_key(command.id, caller.user_id), name, command)
        return await forward(name, command)

    return handle


for _route in ROUTES:
    blueprint.add_url_rule(_route.path, endpoint=f"{_route.method.lower()}{_route.path[len(P):]}".replace("/", "_"),
                           view_func=_handler(_route), methods=[_route.method])
