"""Abuse limits of the gateway, as pure decisions (no I/O): which counters an attempt counts
against, whether it may go on, and whether its outcome keeps it counted.

Counters are fixed windows kept in the cache (``Cache.count``: Redis when configured, so every
gateway shares them; the process's own cache embedded). An attempt is counted *before* it is
served, so a burst of concurrent guesses cannot all slip in under the limit; a login that
succeeds, and an answer the service never decided (5xx), are given back afterwards, so a valid
user never uses up a limit. Nothing here waits: a refused attempt is a 429 at once with
``Retry-After`` (the seconds left in the longest exceeded window), an allowed one goes on at once.
``tests/gateway/test_throttle.py`` checks every rule.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from typing import Iterable, Literal

import msgspec

from ..cache import cache_key
from ..settings import Settings

__all__ = ["Limit", "Count", "Decision", "Kind", "limits_from", "counter_key", "account_subject",
           "address_subject", "decide", "keeps_count"]

Kind = Literal["login", "register"]


class Limit(msgspec.Struct, frozen=True):
    """At most ``count`` attempts per ``window`` seconds for one subject of ``name``."""
    name: str            # "login-account", "login-address", "register-address"
    count: int
    window: float


class Count(msgspec.Struct, frozen=True):
    """A counter after this attempt was counted."""
    used: int            # attempts in the window, this one included
    remaining: float     # seconds until the window ends


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: int = 0  # whole seconds, at least 1, when refused


def limits_from(settings: Settings) -> dict[str, Limit]:
    """The three limits, by name, from the settings (``docs/configuration.md``)."""
    return {limit.name: limit for limit in (
        Limit("login-account", settings.login_limit_account, settings.login_window),
        Limit("login-address", settings.login_limit_address, settings.login_window),
        Limit("register-address", settings.register_limit_address, settings.register_window),
    )}


def counter_key(deployment: str, limit: Limit, subject: str) -> str:
    """``workup:gateway:<limit name>:<deployment>:<subject>``. ``deployment`` is the broker name
    prefix (``amqp_prefix``): two deployments sharing one Redis keep their own counters."""
    return cache_key("gateway", limit.name, f"{deployment}:{subject}")


def account_subject(email: str) -> str:
    """One subject per account whatever the spelling of its email (case, surrounding blanks), and
    no email in the cache's keys: a digest of the normalised address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def address_subject(host: str | None) -> str:
    """The client address a limit is kept for. An IPv6 client usually holds a whole /64, so the
    /64 is the subject (else one client has 2**64 fresh counters); an IPv4-mapped IPv6 address
    is its IPv4 address; anything that does not parse (a Unix socket) is kept as given."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
    return str(address)


def decide(counts: Iterable[tuple[Limit, Count]]) -> Decision:
    """Refused when any counter is over its limit; ``Retry-After`` is when the last of the
    exceeded windows ends (a window with no time left, or more than its length, is read as what
    the limit says: at least 1 s, at most the window)."""
    waits = [min(max(count.remaining, 0.0), limit.window)
             for limit, count in counts if count.used > limit.count]
    if not waits:
        return Decision(True)
    return Decision(False, max(1, math.ceil(max(waits))))


def keeps_count(kind: Kind, status: int) -> bool:
    """Does an attempt answered with ``status`` stay counted? Not when the service did not decide
    (5xx: unavailable, timed out), nor a login that succeeded; a failed login and every decided
    registration attempt do."""
    if status >= 500:
        return False
    if kind == "login":
        return status >= 400
    return True
