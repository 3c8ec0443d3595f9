"""HTTP routes of the users service (``/api/v1/users``, docs/api.md "Users"): a table of
:class:`~workup.gateway.routing.Route`. The command structs are the bodies and queries themselves
(they carry no user id: the service acts on the envelope's caller). Two named hooks: register and
login answers get a token (:func:`with_token`), and a successful ``DELETE /me`` closes the
account on this gateway at once (:func:`closes_account`)."""

from __future__ import annotations

from functools import partial

import msgspec
from quart import Blueprint

from ...messages import users as m
from ...messages import Message
from ..routing import (ANY, CALLER, Answer, Body, CacheKey, Query, Route, RouteCall, account_closed, issue_token,
                       mount, respond, throttled)

__all__ = ["blueprint", "ROUTES", "with_token", "closes_account"]

blueprint = Blueprint("users", __name__)

P = "/api/v1/users"
CLIENT, FREELANCER = ("CLIENT",), ("FREELANCER",)
PUBLIC = None
BODY, QUERY = Body(), Query()   # the command struct is the body / the query
SIGN_UP = ("The email is a valid address, unique across both roles in any case (else 409). The answer "
           "carries a bearer token; sign-ups from one address are limited (429 with `Retry-After`).")
PUT_ALIAS = "POST is accepted as an alias of PUT."
OWN_LIST = "Lists are the caller's own; a new freelancer's are empty."


async def with_token(served: RouteCall) -> Answer:
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
    return Answer(reply.status, msgspec.json.encode(body), "application/json", {"Cache-Control": "no-store"})


async def closes_account(served: RouteCall) -> Answer:
    """``DELETE /me``: once it succeeded, this gateway instance refuses the account's tokens at
    once (the others within a second, from the cache flag)."""
    response = await served.forward(await served.command())
    if response.status == 204 and served.caller.user_id is not None:
        account_closed(served.caller.user_id)
    return response


def _cached(view: str, arg: str = CALLER) -> CacheKey:
    """The users service's cached ``view`` of a user (``messages.users.user_cache_key``)."""
    return CacheKey(partial(m.user_cache_key, view), (arg,))


def _kinds() -> list[Route]:
    routes = []
    for kind, (item_t, add_t, update_t, list_t, remove_t) in m.ITEM_KINDS.items():
        path = f"{P}/freelancer/{kind}"
        item = remove_t.__struct_encode_fields__[0]   # the query parameter that names the item
        routes += [
            Route("POST", path, FREELANCER, add_t, BODY, status=201, reply=item_t,
                  summary=f"Add to the caller's {kind}",
                  description=f"The first field is required, the others optional; the server assigns the "
                              f"item's `id`. {OWN_LIST}"),
            Route("GET", path, FREELANCER, list_t, reply=list[item_t],  # type: ignore[valid-type]
                  summary=f"The caller's {kind}", description=OWN_LIST),
            Route("PUT", path, FREELANCER, update_t, BODY, reply=item_t, errors=(404,),
                  summary=f"Change an item of the caller's {kind}",
                  description=f"The body has the item's `id` and the fields to change; an item not in the "
                              f"caller's list is 404. {OWN_LIST}"),
            Route("DELETE", path, FREELANCER, remove_t, QUERY, status=204, errors=(404,),
                  summary=f"Remove an item of the caller's {kind}",
                  description=f"The item named by `{item}`; one not in the caller's list is 404."),
        ]
    for kind, add, listed, remove in (("skills", m.AddSkill, m.ListSkills, m.RemoveSkill),
                                      ("languages", m.AddLanguage, m.ListLanguages, m.RemoveLanguage)):
        path = f"{P}/freelancer/{kind}"
        routes += [
            Route("POST", path, FREELANCER, add, BODY, status=201, reply=str,
                  summary=f"Add to the caller's {kind}",
                  description=f"A set of strings: adding one twice keeps one. {OWN_LIST}"),
            Route("GET", path, FREELANCER, listed, reply=list[str],
                  summary=f"The caller's {kind}", description="An array of strings."),
            Route("DELETE", path, FREELANCER, remove, QUERY, status=204, errors=(404,),
                  summary=f"Remove one of the caller's {kind}",
                  description=f"The one named by `{remove.__struct_encode_fields__[0]}`; one not in the list is 404."),
        ]
    return routes


def _profile(path: str, roles: tuple[str, ...], get_t: type[Message], set_t: type[Message], reply: type,
             what: str, cached: str | None = None) -> list[Route]:
    """GET, PUT and its POST alias (409: the new email is taken)."""
    errors = (409,) if "email" in set_t.__struct_fields__ else ()
    change = (f"Only the fields given change. {PUT_ALIAS}"
              + (" A new `email` must be free across both roles (else 409)." if errors else ""))
    return [Route("GET", f"{P}{path}", roles, get_t, reply=reply, cache=_cached(cached) if cached else None,
                  summary=f"The caller's {what}", description="Of the caller's own account."),
            Route("PUT", f"{P}{path}", roles, set_t, BODY, reply=reply, errors=errors,
                  summary=f"Change the caller's {what}", description=change),
            Route("POST", f"{P}{path}", roles, set_t, BODY, reply=reply, errors=errors,
                  summary=f"Change the caller's {what} (alias of PUT)", description=change)]


ROUTES: list[Route] = [
    Route("POST", f"{P}/clients/register", PUBLIC, m.RegisterClient, BODY, status=201, reply=m.TokenAnswer,
          errors=(409, 429), hook=with_token,
          summary="Sign up as a client",
          description=f"`email`, `password` (8 characters or more) and `clientName`; `industry`, `city`, "
                      f"`description` and `employeeCount` optional. {SIGN_UP}"),
    Route("POST", f"{P}/freelancers/register", PUBLIC, m.RegisterFreelancer, BODY, status=201, reply=m.TokenAnswer,
          errors=(409, 429), hook=with_token,
          summary="Sign up as a freelancer",
          description=f"`email`, `password` (8 characters or more) and `fullName`; `jobTitle`, `city` and "
                      f"`birthDate` optional. {SIGN_UP}"),
    Route("POST", f"{P}/login", PUBLIC, m.Login, BODY, reply=m.TokenAnswer, errors=(429,), hook=with_token,
          summary="Log in",
          description="`email` and `password` give a bearer token. A wrong password and an unknown email "
                      "get the same 401; repeated failures per account and per address are 429 with "
                      "`Retry-After`."),
    Route("GET", f"{P}/me", ANY, m.GetMe, reply=m.Me, cache=_cached(m.CACHED_ME),
          summary="Who the caller is", description="The account's id, email, role and name."),
    Route("DELETE", f"{P}/me", ("CLIENT", "FREELANCER"), m.DeleteMe, BODY, status=204, errors=(409, 503),
          hook=closes_account,
          summary="Close the caller's account",
          description="With the account's `password` (else 401). Its tokens and its login stop working "
                      "at once; its email stays taken. 409 while it is a party to an ACTIVE contract or "
                      "its wallet is not empty."),
    *_profile("/client/profile", CLIENT, m.GetClientProfile, m.SetClientProfile, m.ClientProfile,
              "client profile", m.CACHED_CLIENT_PROFILE),
    *_profile("/client/photo", CLIENT, m.GetClientPhoto, m.SetClientPhoto, m.PhotoLink, "photo link"),
    *_profile("/freelancer/profile", FREELANCER, m.GetFreelancerProfile, m.SetFreelancerProfile,
              m.FreelancerProfile, "freelancer profile", m.CACHED_FREELANCER_PROFILE),
    Route("GET", f"{P}/freelancer/profile_briefs", FREELANCER, m.GetFreelancerBrief, reply=m.FreelancerBrief,
          summary="The caller's name and email", description="A short form of the freelancer profile."),
    *_profile("/freelancer/photo", FREELANCER, m.GetFreelancerPhoto, m.SetFreelancerPhoto, m.PhotoLink, "photo link"),
    *_profile("/freelancer/resume", FREELANCER, m.GetFreelancerResume, m.SetFreelancerResume, m.ResumeLink,
              "resume link"),
    *_kinds(),
    Route("GET", f"{P}/freelancers/<id>", ANY, m.GetPublicFreelancer, ids={"id": "freelancer_id"},
          cache=_cached(m.CACHED_FREELANCER_PUBLIC, "freelancer_id"), reply=m.PublicFreelancer, errors=(404,),
          summary="A freelancer's public profile",
          description="What any signed-in account may see of a freelancer: no email, no birth date."),
]

mount(blueprint, "users", ROUTES)
