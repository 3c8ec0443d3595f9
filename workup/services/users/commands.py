"""The users service's command handlers.

Every command acts on the envelope's caller. The gateway checks roles first; the handlers check
them again (a command may arrive from elsewhere than the gateway), and a closed or unknown account
is 401. Changes are read-modify-write of the one user document with a compare-and-set on its
version (retried on a lost race), then the cached views of that user are invalidated
(``m.user_cache_key``; the gateway serves them, a read here fills them).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

import msgspec

from ...cache import CacheUnavailable, closed_account_key
from ...ids import USER_IDS, derived_id, now_ms, rfc3339
from ...messages import contracts as contracts_msg
from ...messages import payments as payments_msg
from ...messages import users as m
from ...problems import ProblemError, conflict, forbidden, not_found, unauthorized, unavailable
from ...runtime.inbox import Replayed, kept, record, recorded_in
from ...runtime.readcache import fill, invalidate
from ...runtime.service import Runtime
from . import service
from .deps import Ctx, UsersDeps
from .records import (ListFull, UserRecord, add_item, add_to_set, apply_patch, email_key, remove_from_set,
    remove_item, update_item)
from .store import EmailTaken

__all__ = ["current_user", "deliver_wallet", "revoke_tokens"]

log = logging.getLogger("workup.users")
T = TypeVar("T")

_SAVE_ATTEMPTS = 8
_WALLET_TIMEOUT = 3.0


async def current_user(ctx: Ctx, *roles: str) -> UserRecord:
    """The caller's open account, checking its role (403) and that it still exists (401)."""
    caller = ctx.caller
    if caller.user_id is None:
        raise unauthorized()
    if roles and caller.role not in roles:
        raise forbidden(f"this needs the role {' or '.join(roles)}")
    user = await ctx.deps.store.get(caller.user_id)
    if user is None or user.closed or user.role != caller.role:
        raise unauthorized("the account is closed or unknown")
    return user


async def modify(ctx: Ctx, roles: tuple[str, ...], change: Callable[[UserRecord], tuple[UserRecord | None, T]]) -> T:
    """Apply ``change`` (pure: ``user -> (new user or None for no change, answer)``) to the caller's
    document and commit it, retrying when a concurrent write won the compare-and-set. For a
    ``once`` command the answer is saved in the same document (its inbox)."""
    deps, once = ctx.deps, ctx.once
    for _ in range(_SAVE_ATTEMPTS):
        user = await current_user(ctx, *roles)
        if once is not None and (first := recorded_in(user.inbox, once.key.id)) is not None:
            raise Replayed(first)   # a delivery of the same command saved first (we lost the race)
        try:
            new, answer = change(user)
        except ListFull as exc:
            raise conflict(str(exc)) from None
        if new is None or new == user:  # nothing changed: no write, no invalidation ...
            if once is None:
                return answer
            new = user   # ... but a once command's row: a repeat after a later change must not apply
        if once is not None:   # a once command: its answer goes in the same document write
            new = msgspec.structs.replace(new, inbox=kept(new.inbox, once.record(answer), now_ms()))
        try:
            saved = await deps.store.save(new)
        except EmailTaken:
            raise conflict("this email is already registered") from None
        if saved:
            await _user_changed(deps, new.id, new.version)
            return answer
    raise unavailable("too many concurrent changes to this account; retry")


def _fail(problem: ProblemError) -> Any:
    raise problem


async def _user_changed(deps: UsersDeps, user_id: str, version: int) -> None:
    """After committing ``version`` of the user: every cached view of it goes."""
    await invalidate(deps.cache, [m.user_cache_key(view, user_id) for view in m.CACHED_VIEWS], version)


async def _filled(ctx: Ctx, view: str, user: UserRecord, body: T) -> T:
    return await fill(ctx.deps.cache, m.user_cache_key(view, user.id), user.version, body)


# --- accounts -----------------------------------------------------------------------------------

RegisterRequest = m.RegisterClient | m.RegisterFreelancer


async def _register(ctx: Ctx, req: RegisterRequest, role: m.UserType, name: str, profile: dict[str, Any]) -> m.AuthAnswer:
    """Idempotent per request id: a redelivered registration (the worker died before acking)
    finds its own account and answers the same instead of 409, if the password matches too (the
    request id may come from the client, so a replay proves what a login proves)."""
    deps = ctx.deps
    key = email_key(req.email)
    user_id = derived_id(USER_IDS, ctx.request_id, "register", key)
    if (existing := await deps.store.find_by_email(key)) is not None:  # cheap early answer; the index decides
        return await _replayed_registration(ctx, req, existing, user_id)
    user = UserRecord(id=user_id, email=req.email, email_key=key, role=role, name=name,
                      password_hash=await deps.hash(req.password), created_at=rfc3339(now_ms()), wallet_pending=True,
                      **profile)
    try:
        await deps.store.insert(user)  # the user and its wallet outbox flag, in one document
    except EmailTaken:
        existing = await deps.store.find_by_email(key)
        if existing is None:  # its id was taken, not its email: same request id for another email
            raise conflict("this request id was already used for another registration") from None
        return await _replayed_registration(ctx, req, existing, user_id)
    await deliver_wallet(ctx, user)
    return m.AuthAnswer(user_id=user.id, user_type=role)


async def _replayed_registration(ctx: Ctx, req: RegisterRequest, existing: UserRecord,
                                 user_id: str) -> m.AuthAnswer:
    replay = existing.id == user_id and not existing.closed and existing.role == (
        "CLIENT" if isinstance(req, m.RegisterClient) else "FREELANCER")
    if not replay or not await ctx.deps.verify(req.password, existing.password_hash):
        raise conflict("this email is already registered")
    if existing.wallet_pending:
        await deliver_wallet(ctx, existing)
    return m.AuthAnswer(user_id=existing.id, user_type=existing.role)


async def deliver_wallet(rt: Runtime[UsersDeps], user: UserRecord, timeout: float = _WALLET_TIMEOUT) -> bool:
    """Ask payments for the user's wallet (idempotent there) and clear the outbox flag once it
    acknowledged. On failure the flag stays and the relay (``relay.py``) retries."""
    try:
        await rt.call("payments.CreateWallet", payments_msg.CreateWallet(user_id=user.id, role=user.role),
                      timeout=timeout)
    except ProblemError as exc:
        log.warning("wallet for %s not created yet (%s); the relay will retry", user.id, exc)
        return False
    await rt.deps.store.clear_pending("wallet_pending", user.id)
    return True


@service.command(m.RegisterClient, status=201)
async def register_client(ctx: Ctx, req: m.RegisterClient) -> m.AuthAnswer:
    return await _register(ctx, req, "CLIENT", req.client_name, dict(
        city=req.city, description=req.description, industry=req.industry, employee_count=req.employee_count))


@service.command(m.RegisterFreelancer, status=201)
async def register_freelancer(ctx: Ctx, req: m.RegisterFreelancer) -> m.AuthAnswer:
    return await _register(ctx, req, "FREELANCER", req.full_name, dict(
        city=req.city, job_title=req.job_title, birth_date=req.birth_date))


@service.command(m.Login)
async def login(ctx: Ctx, req: m.Login) -> m.AuthAnswer:
    """One answer for every failure, and one full hash on every path (unknown emails are checked
    against a dummy hash), so neither the body nor the timing tells whether the email exists."""
    user = await ctx.deps.store.find_by_email(req.email)
    ok = await ctx.deps.verify(req.password, user.password_hash if user else None)
    if not ok or user is None or user.closed:
        raise unauthorized("invalid email or password")
    return m.AuthAnswer(user_id=user.id, user_type=user.role)


def _me_view(user: UserRecord) -> m.Me:
    return m.Me(user_id=user.id, email=user.email, user_type=user.role, name=user.name)


@service.command(m.GetMe)
async def get_me(ctx: Ctx, req: m.GetMe) -> m.Me:
    user = await current_user(ctx)
    return await _filled(ctx, m.CACHED_ME, user, _me_view(user))


# once: a repeat would find the account closed (401) although closing it was its own effect
@service.command(m.DeleteMe, status=204, once=True)
async def delete_me(ctx: Ctx, req: m.DeleteMe) -> None:
    """Close the account: refuse while it has an ACTIVE contract or money in its wallet; then its
    tokens (the gateway's closed-account flag) and its login stop working; its email stays taken."""
    try:
        user = await current_user(ctx, "CLIENT", "FREELANCER")
    except ProblemError:
        # closed by a copy of this very command that raced us: its answer, not a 401
        if ctx.once is not None and (first := await ctx.deps.store.first_answer(ctx.once.key)) is not None:
            raise Replayed(first) from None
        raise
    if not await ctx.deps.verify(req.password, user.password_hash):
        raise unauthorized("wrong password")
    if await _has_active_contract(ctx, user.id):
        raise conflict("the account is a party to an ACTIVE contract")
    # payments checks the balance is zero and closes the wallet in one transaction, so a deposit
    # or payment racing with this close cannot land in a closed account's wallet
    await _close_wallet(ctx, user.id)

    version = await ctx.deps.store.close(user.id, record(ctx.once, None))  # closed + revoke_pending + answer, one write
    if version is not None:
        await _user_changed(ctx.deps, user.id, version)
    await revoke_tokens(ctx, user.id)


async def revoke_tokens(rt: Runtime[UsersDeps], user_id: str) -> bool:
    """Write the gateway's closed-account flag and clear the outbox flag; on a cache outage the
    flag stays and the relay retries."""
    try:
        await rt.deps.cache.set_flag(closed_account_key(user_id))
    except CacheUnavailable as exc:
        log.error("closed-account flag for %s not written yet (%s); the relay will retry", user_id, exc)
        return False
    await rt.deps.store.clear_pending("revoke_pending", user_id)
    return True


async def _has_active_contract(ctx: Ctx, user_id: str) -> bool:
    try:
        body = await ctx.call("contracts.HasActiveContract", contracts_msg.HasActiveContract(user_id=user_id))
    except ProblemError as exc:
        raise unavailable(f"cannot check the account's contracts now ({exc.problem.detail}); retry") from None
    return msgspec.convert(body, contracts_msg.ActiveContractAnswer).active


async def _close_wallet(ctx: Ctx, user_id: str) -> None:
    try:
        await ctx.call("payments.CloseWallet", payments_msg.CloseWallet(user_id=user_id))
    except ProblemError as exc:
        if exc.status == 409:  # money in it: the account stays open
            raise conflict(exc.problem.detail or "the wallet balance is not zero") from None
        raise unavailable(f"cannot close the account's wallet now ({exc.problem.detail}); retry") from None


# --- profiles -----------------------------------------------------------------------------------

def _client_profile(u: UserRecord) -> m.ClientProfile:
    return m.ClientProfile(name=u.name, email=u.email, city=u.city, description=u.description,
                           industry=u.industry, employee_count=u.employee_count, photo_link=u.photo_link)


def _freelancer_profile(u: UserRecord) -> m.FreelancerProfile:
    return m.FreelancerProfile(full_name=u.name, email=u.email, city=u.city, job_title=u.job_title,
                               description=u.description, birth_date=u.birth_date, skills=list(u.skills),
                               languages=list(u.languages), photo_link=u.photo_link, resume_link=u.resume_link)


def _public_profile(u: UserRecord) -> m.PublicFreelancer:
    return m.PublicFreelancer(id=u.id, full_name=u.name, city=u.city, job_title=u.job_title,
                              description=u.description, skills=list(u.skills), languages=list(u.languages),
                              photo_link=u.photo_link)


def _photo(u: UserRecord) -> m.PhotoLink:
    return m.PhotoLink(photo_link=u.photo_link)


def _resume(u: UserRecord) -> m.ResumeLink:
    return m.ResumeLink(resume_link=u.resume_link)


def _brief(u: UserRecord) -> m.FreelancerBrief:
    return m.FreelancerBrief(full_name=u.name, email=u.email)


@service.command(m.GetPublicFreelancer)
async def get_public_freelancer(ctx: Ctx, req: m.GetPublicFreelancer) -> m.PublicFreelancer:
    await current_user(ctx)
    user = await ctx.deps.store.get(req.freelancer_id)
    if user is None or user.closed or user.role != "FREELANCER":
        raise not_found("freelancer")
    return await _filled(ctx, m.CACHED_FREELANCER_PUBLIC, user, _public_profile(user))


# (role, get request, set request, view, cached view name or None)
_PROFILE_VIEWS = [
    ("CLIENT", m.GetClientProfile, m.SetClientProfile, _client_profile, m.CACHED_CLIENT_PROFILE),
    ("CLIENT", m.GetClientPhoto, m.SetClientPhoto, _photo, None),
    ("FREELANCER", m.GetFreelancerProfile, m.SetFreelancerProfile, _freelancer_profile, m.CACHED_FREELANCER_PROFILE),
    ("FREELANCER", m.GetFreelancerPhoto, m.SetFreelancerPhoto, _photo, None),
    ("FREELANCER", m.GetFreelancerResume, m.SetFreelancerResume, _resume, None),
    ("FREELANCER", m.GetFreelancerBrief, None, _brief, None),
]


def _profile_commands(role: str, get_t: type, set_t: type | None, view: Callable[[UserRecord], Any],
                      cached: str | None) -> None:
    @service.command(get_t)
    async def get(ctx: Ctx, req: Any) -> Any:
        user = await current_user(ctx, role)
        if cached is None:
            return view(user)
        return await _filled(ctx, cached, user, view(user))

    if set_t is not None:
        @service.command(set_t, once=True)   # a repeat after a later change would put these values back
        async def set_(ctx: Ctx, req: Any) -> Any:
            def change(u: UserRecord) -> tuple[UserRecord, Any]:
                new = apply_patch(u, req)
                return new, view(new)
            return await modify(ctx, (role,), change)


# --- freelancer lists ---------------------------------------------------------------------------

def _item_commands(kind: str, add_t: type[msgspec.Struct], update_t: type[msgspec.Struct], list_t: type[msgspec.Struct],
                   remove_t: type[msgspec.Struct]) -> None:
    id_field = remove_t.__struct_fields__[0]
    what = f"{kind} item"

    @service.command(add_t, status=201, once=True)   # a repeat after a removal would add it again
    async def add(ctx: Ctx, req: Any) -> Any:
        item_id = derived_id(USER_IDS, ctx.request_id, "add", kind)  # a redelivered add adds nothing more
        return await modify(ctx, ("FREELANCER",), lambda u: add_item(u, kind, req, item_id))

    @service.command(list_t)
    async def list_(ctx: Ctx, req: Any) -> Any:
        return getattr(await current_user(ctx, "FREELANCER"), kind)

    @service.command(update_t, once=True)   # a repeat after a later change would put these values back
    async def update(ctx: Ctx, req: Any) -> Any:
        return await modify(ctx, ("FREELANCER",), lambda u: update_item(u, kind, req) or _fail(not_found(what)))

    @service.command(remove_t, status=204, once=True)   # a repeat would find nothing to remove (404)
    async def remove(ctx: Ctx, req: Any) -> None:
        item_id = getattr(req, id_field)
        await modify(ctx, ("FREELANCER",), lambda u: (remove_item(u, kind, item_id) or _fail(not_found(what)), None))


def _set_commands(kind: str, add_t: type[msgspec.Struct], list_t: type[msgspec.Struct],
                  remove_t: type[msgspec.Struct]) -> None:
    add_field, remove_field = add_t.__struct_fields__[0], remove_t.__struct_fields__[0]
    what = kind[:-1]  # "skill", "language"

    @service.command(add_t, status=201, once=True)   # a repeat after a removal would add it again
    async def add(ctx: Ctx, req: Any) -> str:
        value = getattr(req, add_field)
        return await modify(ctx, ("FREELANCER",), lambda u: (add_to_set(u, kind, value), value))

    @service.command(list_t)
    async def list_(ctx: Ctx, req: Any) -> list[str]:
        return list(getattr(await current_user(ctx, "FREELANCER"), kind))

    @service.command(remove_t, status=204, once=True)   # a repeat would find nothing to remove (404)
    async def remove(ctx: Ctx, req: Any) -> None:
        value = getattr(req, remove_field)
        await modify(ctx, ("FREELANCER",),
                     lambda u: (remove_from_set(u, kind, value) or _fail(not_found(what)), None))


# the commands alike but for their types: registered from the tables above and in messages.users
for _spec in _PROFILE_VIEWS:
    _profile_commands(*_spec)
for _kind, (_item, _add, _update, _list, _remove) in m.ITEM_KINDS.items():
    _item_commands(_kind, _add, _update, _list, _remove)
_set_commands("skills", m.AddSkill, m.ListSkills, m.RemoveSkill)
_set_commands("languages", m.AddLanguage, m.ListLanguages, m.RemoveLanguage)
