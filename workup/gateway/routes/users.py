"""HTTP routes of the users service (``/api/v1/users``, API.md "Users"): a table of
:class:`~workup.gateway.routing.Route`. The command structs are the bodies and queries themselves
(they carry no user id: the service acts on the envelope's caller). Two named hooks: register and
login answers get a token (:func:`with_token`), and a successful ``DELETE /me`` closes the
account on this gateway at once (:func:`closes_account`)."""

from __future__ import annotations

from functools import partial

import msgspec
from quart import Blueprint, Response

from ...messages import users as m
from ...messages import Message
from ..routing import (ANY, CALLER, Body, CacheKey, Query, Route, RouteCall, account_closed, issue_token, mount,
                       respond, throttled)

__all__ = ["blueprint", "ROUTES", "with_token", "closes_account"]

blueprint = Blueprint("users", __name__)

P = "/api/v1/users"
CLIENT, FREELANCER = ("CLIENT",), ("FREELANCER",)
PUBLIC = None
BODY, QUERY = Body(), Query()   # the command struct is the body / the query


async def with_token(served: RouteCall) -> Response:
    """Register and login answers, plus a fresh ``authToken`` on success. Both are attempts under
    the gateway's abuse limits (login per account and per client address, registration per
    client address): 429 with ``Retry-After`` past them."""
    command = await served.command()
    email = command.email if isinstance(command, m.Login) else None   # logins count per account too
    async with throttled("register" if email is None else "login", account=email) as attempt:
        reply = await served.call(command)
        attempt.answered(reply.status)
    if reply.status >= 400:
        return respond(reply)
    answer = msgspec.json.decode(reply.body, type=m.AuthAnswer)
    body = {"authToken": issue_token(answer.user_id, answer.user_type),
            "userId": answer.user_id, "userType": answer.user_type}
    # a bearer token must not be kept by a browser or a shared cache on the way
    return Response(msgspec.json.encode(body), status=reply.status, content_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def closes_account(served: RouteCall) -> Response:
    """``DELETE /me``: once it succeeded, this gateway instance refuses the account's tokens at
    once (the others within a second, from the cache flag)."""
    response = await served.forward(await served.command())
    if response.status_code == 204 and served.caller.user_id is not None:
        account_closed(served.caller.user_id)
    return response


def _cached(view: str, arg: str = CALLER) -> CacheKey:
    """The users service's cached ``view`` of a user (``messages.users.user_cache_key``)."""
    return CacheKey(partial(m.user_cache_key, view), (arg,))


def _kinds() -> list[Route]:
    routes = []
    for kind, (item_t, add_t, update_t, list_t, remove_t) in m.ITEM_KINDS.items():
        path = f"{P}/freelancer/{kind}"
        routes += [
            Route("POST", path, FREELANCER, add_t, BODY, status=201, reply=item_t),
            Route("GET", path, FREELANCER, list_t, reply=list[item_t]),  # type: ignore[valid-type]
            Route("PUT", path, FREELANCER, update_t, BODY, reply=item_t, errors=(404,)),
            Route("DELETE", path, FREELANCER, remove_t, QUERY, status=204, errors=(404,)),
        ]
    for kind, add, listed, remove in (("skills", m.AddSkill, m.ListSkills, m.RemoveSkill),
                                      ("languages", m.AddLanguage, m.ListLanguages, m.RemoveLanguage)):
        path = f"{P}/freelancer/{kind}"
        routes += [
            Route("POST", path, FREELANCER, add, BODY, status=201, reply=str),
            Route("GET", path, FREELANCER, listed, reply=list[str]),
            Route("DELETE", path, FREELANCER, remove, QUERY, status=204, errors=(404,)),
        ]
    return routes


def _profile(path: str, roles: tuple[str, ...], get_t: type[Message], set_t: type[Message], reply: type,
             cached: str | None = None) -> list[Route]:
    """GET, PUT and its POST alias (409: the new email is taken)."""
    errors = (409,) if "email" in set_t.__struct_fields__ else ()
    return [Route("GET", f"{P}{path}", roles, get_t, reply=reply, cache=_cached(cached) if cached else None),
            Route("PUT", f"{P}{path}", roles, set_t, BODY, reply=reply, errors=errors),
            Route("POST", f"{P}{path}", roles, set_t, BODY, reply=reply, errors=errors)]


ROUTES: list[Route] = [
    Route("POST", f"{P}/clients/register", PUBLIC, m.RegisterClient, BODY, status=201, reply=m.TokenAnswer,
          errors=(409, 429), hook=with_token),
    Route("POST", f"{P}/freelancers/register", PUBLIC, m.RegisterFreelancer, BODY, status=201, reply=m.TokenAnswer,
          errors=(409, 429), hook=with_token),
    Route("POST", f"{P}/login", PUBLIC, m.Login, BODY, reply=m.TokenAnswer, errors=(429,), hook=with_token),
    Route("GET", f"{P}/me", ANY, m.GetMe, reply=m.Me, cache=_cached(m.CACHED_ME)),
    Route("DELETE", f"{P}/me", ("CLIENT", "FREELANCER"), m.DeleteMe, BODY, status=204, errors=(409, 503),
          hook=closes_account),
    *_profile("/client/profile", CLIENT, m.GetClientProfile, m.SetClientProfile, m.ClientProfile,
              m.CACHED_CLIENT_PROFILE),
    *_profile("/client/photo", CLIENT, m.GetClientPhoto, m.SetClientPhoto, m.PhotoLink),
    *_profile("/freelancer/profile", FREELANCER, m.GetFreelancerProfile, m.SetFreelancerProfile,
              m.FreelancerProfile, m.CACHED_FREELANCER_PROFILE),
    Route("GET", f"{P}/freelancer/profile_briefs", FREELANCER, m.GetFreelancerBrief, reply=m.FreelancerBrief),
    *_profile("/freelancer/photo", FREELANCER, m.GetFreelancerPhoto, m.SetFreelancerPhoto, m.PhotoLink),
    *_profile("/freelancer/resume", FREELANCER, m.GetFreelancerResume, m.SetFreelancerResume, m.ResumeLink),
    *_kinds(),
    Route("GET", f"{P}/freelancers/<id>", ANY, m.GetPublicFreelancer, ids={"id": "freelancer_id"},
          cache=_cached(m.CACHED_FREELANCER_PUBLIC, "freelancer_id"), reply=m.PublicFreelancer, errors=(404,)),
]

mount(blueprint, "users", ROUTES)
