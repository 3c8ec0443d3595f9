"""HTTP routes of the users service (``/api/v1/users``, API.md "Users").

Each handler checks the role first, then validates its input into the service's command struct
(the structs carry no user id: the service acts on the envelope's caller), then forwards. The
routes are declared as data (:data:`ROUTES`) so the OpenAPI document can be generated from the
same structs that validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec
from quart import Blueprint, Response

from ...cache import cache_key
from ...problems import FieldError, ProblemError
from ...messages import users as m
from ..kit import (account_closed, cached_forward, call, forward, issue_token, json_body, query_params,
                   require_auth, require_role, respond)

__all__ = ["blueprint", "ROUTES", "Route"]

blueprint = Blueprint("users", __name__)

P = "/api/v1/users"
CLIENT, FREELANCER = ("CLIENT",), ("FREELANCER",)
ANY: tuple[str, ...] = ()        # any authenticated role
PUBLIC = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    roles: tuple[str, ...] | None     # None: public; (): any role
    command: type                     # the users command (its struct is the body or query)
    source: str = "none"              # "body", "query", "none" (input of the command)
    status: int = 200                 # success status
    reply: Any = None                 # reply type (OpenAPI)
    cached: str | None = None         # cache entity keyed by the caller's id
    errors: tuple[int, ...] = ()      # route-specific error statuses (OpenAPI), beyond the generic ones


def _kinds() -> list[Route]:
    routes = []
    for kind, (item_t, add_t, update_t, list_t, remove_t) in m.ITEM_KINDS.items():
        path = f"{P}/freelancer/{kind}"
        routes += [
            Route("POST", path, FREELANCER, add_t, "body", 201, item_t),
            Route("GET", path, FREELANCER, list_t, reply=list[item_t]),
            Route("PUT", path, FREELANCER, update_t, "body", reply=item_t, errors=(404,)),
            Route("DELETE", path, FREELANCER, remove_t, "query", 204, errors=(404,)),
        ]
    for kind, add_t, list_t, remove_t in (("skills", m.AddSkill, m.ListSkills, m.RemoveSkill),
                                          ("languages", m.AddLanguage, m.ListLanguages, m.RemoveLanguage)):
        path = f"{P}/freelancer/{kind}"
        routes += [
            Route("POST", path, FREELANCER, add_t, "body", 201, str),
            Route("GET", path, FREELANCER, list_t, reply=list[str]),
            Route("DELETE", path, FREELANCER, remove_t, "query", 204, errors=(404,)),
        ]
    return routes


def _profile(path: str, roles: tuple[str, ...], get_t: type, set_t: type, reply: type,
             cached: str | None = None) -> list[Route]:
    """GET, PUT and its POST alias (409: the new email is taken)."""
    errors = (409,) if "email" in set_t.__struct_fields__ else ()
    return [Route("GET", f"{P}{path}", roles, get_t, reply=reply, cached=cached),
            Route("PUT", f"{P}{path}", roles, set_t, "body", reply=reply, errors=errors),
            Route("POST", f"{P}{path}", roles, set_t, "body", reply=reply, errors=errors)]


ROUTES: list[Route] = [
    Route("POST", f"{P}/clients/register", PUBLIC, m.RegisterClient, "body", 201, m.TokenAnswer, errors=(409,)),
    Route("POST", f"{P}/freelancers/register", PUBLIC, m.RegisterFreelancer, "body", 201, m.TokenAnswer,
          errors=(409,)),
    Route("POST", f"{P}/login", PUBLIC, m.Login, "body", 200, m.TokenAnswer),
    Route("GET", f"{P}/me", ANY, m.GetMe, reply=m.Me, cached=m.CACHED_ME),
    Route("DELETE", f"{P}/me", ("CLIENT", "FREELANCER"), m.DeleteMe, "body", 204, errors=(409, 503)),
    *_profile("/client/profile", CLIENT, m.GetClientProfile, m.SetClientProfile, m.ClientProfile,
              m.CACHED_CLIENT_PROFILE),
    *_profile("/client/photo", CLIENT, m.GetClientPhoto, m.SetClientPhoto, m.PhotoLink),
    *_profile("/freelancer/profile", FREELANCER, m.GetFreelancerProfile, m.SetFreelancerProfile,
              m.FreelancerProfile, m.CACHED_FREELANCER_PROFILE),
    Route("GET", f"{P}/freelancer/profile_briefs", FREELANCER, m.GetFreelancerBrief, reply=m.FreelancerBrief),
    *_profile("/freelancer/photo", FREELANCER, m.GetFreelancerPhoto, m.SetFreelancerPhoto, m.PhotoLink),
    *_profile("/freelancer/resume", FREELANCER, m.GetFreelancerResume, m.SetFreelancerResume, m.ResumeLink),
    *_kinds(),
]

_PUBLIC_PROFILE = Route("GET", f"{P}/freelancers/<id>", ANY, m.GetPublicFreelancer,
                        reply=m.PublicFreelancer, cached=m.CACHED_FREELANCER_PUBLIC, errors=(404,))
_AUTH_ANSWERS = (m.RegisterClient, m.RegisterFreelancer, m.Login)


def _command_name(t: type) -> str:
    return f"users.{t.__name__}"


def _check_role(route: Route) -> Any:
    if route.roles is None:
        return None
    return require_role(*route.roles) if route.roles else require_auth()


async def _input(route: Route) -> Any:
    if route.source == "body":
        return await json_body(route.command)
    if route.source == "query":
        return query_params(route.command)
    return route.command()


async def _with_token(route: Route, request: Any) -> Response:
    """Register and login answers, plus a fresh ``authToken`` on success."""
    reply = await call(_command_name(route.command), request)
    if reply.status >= 400:
        return respond(reply)
    answer = msgspec.json.decode(reply.body, type=m.AuthAnswer)
    body = {"authToken": issue_token(answer.user_id, answer.user_type),
            "userId": answer.user_id, "userType": answer.user_type}
    return Response(msgspec.json.encode(body), status=reply.status, content_type="application/json")


def _handler(route: Route) -> Callable[..., Awaitable[Response]]:
    command = _command_name(route.command)

    async def handle() -> Response:
        caller = _check_role(route)  # first: a wrong role is 403 whatever the input
        request = await _input(route)
        if route.command in _AUTH_ANSWERS:
            return await _with_token(route, request)
        if route.cached is not None:
            return await cached_forward(cache_key("users", route.cached, caller.user_id), command, request)
        response = await forward(command, request)
        if route.command is m.DeleteMe and response.status_code == 204:
            account_closed(caller.user_id)  # this instance refuses the old tokens at once
        return response

    return handle


for _route in ROUTES:
    blueprint.add_url_rule(_route.path, endpoint=f"{_route.method.lower()}_{_route.command.__name__}",
                           view_func=_handler(_route), methods=[_route.method])


@blueprint.get(_PUBLIC_PROFILE.path)
async def public_freelancer(id: str) -> Response:
    require_auth()
    try:
        request = msgspec.convert({"freelancerId": id}, m.GetPublicFreelancer)
    except msgspec.ValidationError as exc:
        raise ProblemError(400, "bad freelancer id", errors=[FieldError(field="id", message=str(exc))]) from None
    return await cached_forward(cache_key("users", m.CACHED_FREELANCER_PUBLIC, id),
                                _command_name(m.GetPublicFreelancer), request)


ROUTES.append(_PUBLIC_PROFILE)
