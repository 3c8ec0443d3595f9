"""HTTP routes of the payments service (``/api/v1/payments``, docs/api.md "Payments"): a table of
:class:`~workup.gateway.routing.Route`, written out per role for ``clients/me`` and
``freelancers/me``. Money-moving routes honour the ``Idempotency-Key`` header through their hook
:func:`idempotent`."""

from __future__ import annotations

from typing import cast

from quart import Blueprint

from ...messages import payments as m
from ...messages import Message
from ...problems import FieldError, ProblemError
from ...transport.envelope import command_name
from ..routing import CALLER, Answer, Body, CacheKey, Route, RouteCall, forward, mount, request_header

__all__ = ["blueprint", "ROUTES", "idempotent", "IDEMPOTENCY_HEADER"]

blueprint = Blueprint("payments", __name__)

P = "/api/v1/payments"
CLIENT, FREELANCER, PARTY = ("CLIENT",), ("FREELANCER",), ("CLIENT", "FREELANCER")
IDEMPOTENCY_HEADER = "Idempotency-Key"
ID = {"id": "id"}
WALLET = "Every client and freelancer has a wallet from sign-up; amounts are JSON numbers."
ONCE = (f"With an `{IDEMPOTENCY_HEADER}` header, the first answer for the key, whatever its status, is "
        "the answer to every retry with that key (same user, same route) for at least 24 hours, and "
        "the money moves once.")


def idempotency_key() -> str | None:
    key = request_header(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > m.MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ProblemError(400, f"{IDEMPOTENCY_HEADER} must be 1 to {m.MAX_IDEMPOTENCY_KEY} printable characters",
                           errors=[FieldError(field=IDEMPOTENCY_HEADER, message="bad value")])
    return key


async def idempotent(served: RouteCall) -> Answer:
    """The command carries the ``Idempotency-Key`` header; a request refused for its input (4xx)
    with a key is recorded as that key's answer."""
    key = idempotency_key()
    try:
        command = await served.command(idempotency_key=key)
    except ProblemError as exc:
        if key is None or not 400 <= exc.status < 500:
            raise
        # docs/api.md: the first answer for a key, whatever its status, is the answer for every
        # retry; the service keeps it (or returns an earlier one for that key)
        route = m.idempotency_route(served.mounted.route.command, served.params.get("id"))
        refusal = m.RecordRefusal(route=route, idempotency_key=key, problem=exc.problem)
        return await forward(command_name("payments", m.RecordRefusal), refusal)
    return await served.forward(command)


def _money(body: Message) -> dict[str, object]:
    """Deposit and Withdraw fields from the money body (the amount exact and checked)."""
    money = cast(m.MoneyBody, body)   # the Body this is declared with
    return {"amount": money.money(), "description": money.description}


MONEY = Body(m.MoneyBody, fields=_money)


def _me(me: str, roles: tuple[str, ...]) -> list[Route]:
    base = f"{P}/{me}"
    whose = "client" if roles == CLIENT else "freelancer"
    return [
        Route("GET", f"{base}/wallet", roles, m.GetMyWallet, reply=m.WalletBalance,
              cache=CacheKey(m.wallet_cache_key, (CALLER,)),
              summary=f"The {whose}'s wallet balance", description=WALLET),
        Route("POST", f"{base}/wallet/deposit", roles, m.Deposit, MONEY, reply=m.WalletBalance, hook=idempotent,
              summary=f"Deposit into the {whose}'s wallet",
              description=f"`amount` and an optional `description`; the answer is the new balance. {ONCE}"),
        Route("POST", f"{base}/wallet/withdraw", roles, m.Withdraw, MONEY, reply=m.WalletBalance, hook=idempotent,
              summary=f"Withdraw from the {whose}'s wallet",
              description="`amount` and an optional `description`; the balance never goes below zero, "
                          f"also under concurrent withdrawals (409 insufficient balance). {ONCE}"),
        Route("GET", f"{base}/wallet/transactions", roles, m.ListWalletTransactions, reply=list[m.WalletTransaction],
              summary=f"The {whose}'s wallet transactions", description="Credits and debits, newest first."),
        Route("GET", f"{base}/wallet/transactions/<id>", roles, m.GetWalletTransaction, ids=ID,
              reply=m.WalletTransaction,
              summary=f"One transaction of the {whose}'s wallet", description="Of the caller's own wallet only, else 404."),
        Route("GET", f"{base}/requests", roles, m.ListMyRequests, reply=list[m.PaymentRequest],
              summary=f"Payment requests of the {whose}",
              description=f"The requests where the caller is the {whose}."),
        Route("GET", f"{base}/transactions", roles, m.ListMyTransactions, reply=list[m.PaymentTransaction],
              summary=f"Payments of the {whose}", description="The payment transactions of the caller's requests."),
    ]


ROUTES: list[Route] = [
    *_me("clients/me", CLIENT),
    *_me("freelancers/me", FREELANCER),
    Route("GET", f"{P}/requests/<id>", PARTY, m.GetPaymentRequest, ids=ID, reply=m.PaymentRequest,
          cache=CacheKey(m.request_cache_key, ("id", CALLER)),
          summary="A payment request", description="For the request's client or freelancer."),
    Route("POST", f"{P}/requests/<id>/pay", CLIENT, m.PayRequest, ids=ID, reply=m.PayResult, hook=idempotent,
          summary="Pay a payment request",
          description="For the client who owes it. In one database transaction the client is debited, the "
                      "freelancer credited, the transactions recorded and the request marked PAID; the "
                      "milestone becomes PAID shortly after. 409 when it is already paid, cancelled, or the "
                      f"balance is short (nothing changes then). {ONCE}"),
]

mount(blueprint, "payments", ROUTES)
