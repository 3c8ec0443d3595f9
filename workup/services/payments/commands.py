"""The payments commands. Identity always comes from the envelope's caller (set by the gateway
from the verified token), never from the request body; cross-service commands need ``SERVICE``."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Protocol, Sequence

import msgspec
import trio

from ...transport.envelope import Caller, encode_json
from ...messages import payments as m
from ...problems import FieldError, Problem, ProblemError, bad_request, forbidden, not_found
from ...runtime.context import after_reply
from ...runtime.readcache import fill, invalidate_each
from . import service
from .deps import Ctx, PaymentsDeps
from .ops import Changed, IdemKey, Outcome, Written
from .relay import HOLD, deliver

__all__ = ["account_holder", "require_service", "valid_amount", "idem_key", "inbox_key", "INBOX", "cache_keys",
           "answer"]

_ID = re.compile(m.ID_PATTERN)
_SIDE: dict[str | None, str] = {"CLIENT": "client", "FREELANCER": "freelancer"}


# --- decisions (pure) -----------------------------------------------------------------------------

class _Called(Protocol):
    """What the identity checks read of a context (a handler's, or a test's stand-in)."""
    @property
    def caller(self) -> Caller: ...


def account_holder(ctx: _Called) -> str:
    """The caller's user id when a CLIENT or FREELANCER (the wallet holders), else 403."""
    caller = ctx.caller
    if caller.role not in _SIDE or not caller.user_id:
        raise forbidden("payments are for client and freelancer accounts")
    return caller.user_id


def require_service(ctx: _Called) -> None:
    if ctx.caller.role != "SERVICE":
        raise forbidden("this command is for services only")


def valid_amount(amount: Decimal) -> Decimal:
    try:
        return m.check_amount(amount)
    except ValueError as exc:
        raise bad_request(str(exc), errors=[FieldError(field="amount", message=str(exc))]) from None


def idem_key(user_id: str, route: str, key: str | None) -> IdemKey | None:
    if key is None:
        return None
    if not 0 < len(key) <= m.MAX_IDEMPOTENCY_KEY:
        raise bad_request(f"Idempotency-Key must be 1 to {m.MAX_IDEMPOTENCY_KEY} characters")
    return IdemKey(user_id, route, key)


# The route prefix of the inbox rows: a client's key lives under the bare route, so they never meet.
INBOX = "inbox:"


def inbox_key(user_id: str, route: str, request_id: str, command: msgspec.Struct) -> IdemKey:
    """The row that makes a command without an Idempotency-Key apply at most once: the envelope's
    request id, which a redelivery keeps (``transport/rabbitmq.py`` re-publishes the same
    ``message_id``). The command's digest joins it because a client may send its own
    ``X-Request-Id``: one reused for a different operation must not get the first one's answer."""
    digest = hashlib.sha256(msgspec.json.encode(command)).hexdigest()[:16]
    return IdemKey(user_id, INBOX + route, f"{request_id}:{digest}")


def cache_keys(change: Changed) -> list[str]:
    if change.entity == "wallet":
        return [m.wallet_cache_key(change.id)]
    return [m.request_cache_key(change.id, reader) for reader in change.readers]


def answer(outcome: Outcome) -> msgspec.Raw:
    """The stored answer as this command's result: the body itself on success, its problem else."""
    if outcome.status < 400:
        return msgspec.Raw(outcome.body)
    p = msgspec.json.decode(outcome.body, type=Problem)
    raise ProblemError(p.status, p.detail, title=p.title, errors=p.errors)


# --- effects --------------------------------------------------------------------------------------

async def _invalidate(deps: PaymentsDeps, changes: Sequence[Changed]) -> None:
    """Every changed row's entries, each at its row's version, in one cache round trip."""
    await invalidate_each(deps.cache, [(key, change.version) for change in changes for key in cache_keys(change)])


async def _as_now(deps: PaymentsDeps, wallets: Sequence[str], request_id: str | None = None) -> list[Changed]:
    """The rows a replayed success had changed, at their current versions."""
    changes = []
    found = await deps.store.get_request(request_id) if request_id else None
    if found is not None:
        req, version = found
        changes.append(Changed("request", req.id, version, (req.client_id, req.freelancer_id)))
        wallets = [req.client_id, req.freelancer_id]
    for user_id in wallets:
        changes.append(Changed("wallet", user_id, (await deps.store.wallet(user_id))[1], (user_id,)))
    return changes


async def _deliver_after_reply(ctx: Ctx, written: Written | None) -> None:
    """The outbox rows this handler's transaction wrote (held for it), delivered by it after its
    reply (``relay.deliver``)."""
    if written is not None:
        await after_reply(ctx, lambda: deliver(ctx, written))


async def _settle(ctx: Ctx, outcome: Outcome, wallets: Sequence[str], request_id: str | None = None) -> msgspec.Raw:
    """After the commit and before the reply: invalidate what changed; the outbox rows go after
    the reply. A replayed success invalidates again (at the current versions): the first attempt
    may have died between its commit and its invalidation, and this reply must not be followed by
    a stale read."""
    changes: Sequence[Changed] = outcome.changed
    if outcome.replayed and outcome.status < 400:
        changes = await _as_now(ctx.deps, wallets, request_id)
    await _invalidate(ctx.deps, changes)
    if outcome.replayed and request_id is not None:
        # a pay's first attempt may have died before delivering its rows: they are the relay's
        # once their hold is over, and its slow poll might come much later
        ctx.deps.outbox_bell.ring_at(trio.current_time() + HOLD)
    await _deliver_after_reply(ctx, outcome.outbox)
    return answer(outcome)


# --- called by other services -------------------------------------------------------------------

@service.command(m.CreateWallet)
async def create_wallet(ctx: Ctx, req: m.CreateWallet) -> m.WalletBalance:
    require_service(ctx)
    role = req.role if req.role in _SIDE else None
    return m.WalletBalance(balance=await ctx.deps.store.ensure_wallet(req.user_id, role))


@service.command(m.GetWalletOf)
async def get_wallet_of(ctx: Ctx, req: m.GetWalletOf) -> m.WalletBalance:
    require_service(ctx)
    return m.WalletBalance(balance=await ctx.deps.store.balance(req.user_id))


@service.command(m.CloseWallet)
async def close_wallet(ctx: Ctx, req: m.CloseWallet) -> None:
    require_service(ctx)
    changed = await ctx.deps.store.close_wallet(req.user_id)
    await _invalidate(ctx.deps, [changed] if changed is not None else [])


@service.command(m.CreatePaymentRequest, status=201)
async def create_payment_request(ctx: Ctx, req: m.CreatePaymentRequest) -> m.PaymentRequestRef:
    require_service(ctx)
    req = msgspec.structs.replace(req, amount=valid_amount(req.amount))
    request_id, written = await ctx.deps.store.open_request(req, HOLD)
    await _deliver_after_reply(ctx, written)
    return m.PaymentRequestRef(id=request_id)


@service.command(m.CancelContractRequests)
async def cancel_contract_requests(ctx: Ctx, req: m.CancelContractRequests) -> None:
    require_service(ctx)
    await _invalidate(ctx.deps, await ctx.deps.store.cancel_contract_requests(req.contract_id))


# --- wallet ---------------------------------------------------------------------------------------

@service.command(m.GetMyWallet)
async def get_my_wallet(ctx: Ctx, req: m.GetMyWallet) -> m.WalletBalance:
    user = account_holder(ctx)
    balance, version = await ctx.deps.store.wallet(user)
    return await fill(ctx.deps.cache, m.wallet_cache_key(user), version, m.WalletBalance(balance=balance))


async def _refused(ctx: Ctx, idem: IdemKey | None, exc: ProblemError) -> msgspec.Raw:
    """A refusal before the transaction is still the key's first answer (docs/api.md: "whatever
    its status"); without a key it is just raised."""
    if idem is None:
        raise exc
    return answer(await ctx.deps.store.remember(idem, exc.status, encode_json(exc.problem)))


async def _move_money(ctx: Ctx, req: m.Deposit | m.Withdraw) -> msgspec.Raw:
    user = account_holder(ctx)
    route = m.idempotency_route(type(req))
    idem = idem_key(user, route, req.idempotency_key)
    try:
        amount = valid_amount(req.amount)
    except ProblemError as exc:
        return await _refused(ctx, idem, exc)
    op = ctx.deps.store.deposit if isinstance(req, m.Deposit) else ctx.deps.store.withdraw
    once = idem or inbox_key(user, route, ctx.request_id, req)
    return await _settle(ctx, await op(user, amount, req.description, once), [user])


@service.command(m.Deposit)
async def deposit(ctx: Ctx, req: m.Deposit) -> msgspec.Raw:
    return await _move_money(ctx, req)


@service.command(m.Withdraw)
async def withdraw(ctx: Ctx, req: m.Withdraw) -> msgspec.Raw:
    return await _move_money(ctx, req)


@service.command(m.RecordRefusal)
async def record_refusal(ctx: Ctx, req: m.RecordRefusal) -> msgspec.Raw:
    user = account_holder(ctx)
    if not 400 <= req.problem.status < 500:
        raise bad_request("only a refusal (4xx) can be recorded")
    if req.route.startswith(INBOX):   # the inbox rows are the service's own, never a client's key
        raise bad_request("not an Idempotency-Key route")
    idem = idem_key(user, req.route, req.idempotency_key)
    assert idem is not None
    return await _refused(ctx, idem, ProblemError(req.problem.status, req.problem.detail,
                                                  title=req.problem.title, errors=req.problem.errors))


@service.command(m.ListWalletTransactions)
async def list_wallet_transactions(ctx: Ctx, req: m.ListWalletTransactions) -> list[m.WalletTransaction]:
    return await ctx.deps.store.wallet_transactions(account_holder(ctx))


@service.command(m.GetWalletTransaction)
async def get_wallet_transaction(ctx: Ctx, req: m.GetWalletTransaction) -> m.WalletTransaction:
    user = account_holder(ctx)
    found = await ctx.deps.store.wallet_transaction(user, req.id) if _ID.match(req.id) else None
    if found is None:
        raise not_found("wallet transaction")
    return found


# --- payment requests -----------------------------------------------------------------------------

@service.command(m.ListMyRequests)
async def list_my_requests(ctx: Ctx, req: m.ListMyRequests) -> list[m.PaymentRequest]:
    user = account_holder(ctx)
    return await ctx.deps.store.requests_of(user, _SIDE[ctx.caller.role])


@service.command(m.ListMyTransactions)
async def list_my_transactions(ctx: Ctx, req: m.ListMyTransactions) -> list[m.PaymentTransaction]:
    user = account_holder(ctx)
    return await ctx.deps.store.transactions_of(user, _SIDE[ctx.caller.role])


@service.command(m.GetPaymentRequest)
async def get_payment_request(ctx: Ctx, req: m.GetPaymentRequest) -> m.PaymentRequest:
    user = account_holder(ctx)
    found = await ctx.deps.store.get_request(req.id) if _ID.match(req.id) else None
    if found is None:
        raise not_found("payment request")
    request, version = found
    if user not in (request.client_id, request.freelancer_id):
        raise forbidden("only the request's client or freelancer can read it")
    return await fill(ctx.deps.cache, m.request_cache_key(request.id, user), version, request)


@service.command(m.PayRequest)
async def pay(ctx: Ctx, req: m.PayRequest) -> msgspec.Raw:
    user = account_holder(ctx)
    if ctx.caller.role != "CLIENT":
        raise forbidden("only the request's client can pay it")
    route = m.idempotency_route(m.PayRequest, req.id)
    idem = idem_key(user, route, req.idempotency_key)
    if not _ID.match(req.id):
        return await _refused(ctx, idem, not_found("payment request"))
    once = idem or inbox_key(user, route, ctx.request_id, req)
    return await _settle(ctx, await ctx.deps.store.pay(req.id, user, once, HOLD), [], req.id)
